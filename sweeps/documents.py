"""Reading a spec document (YAML or JSON) into plain data, within limits, or failing with one line.

A spec is JSON-like data: mappings with string keys, lists, strings, numbers, booleans, null. What
this reader does beyond ``yaml.safe_load``:

* **Bounded.** Size, nesting depth, value count (aliases count as the size of what they repeat, so an
  alias bomb is refused after a few thousand values, not after expanding to billions), alias count,
  and wall time are checked *while* the events stream in (``sweeps/limits.py``).
* **Never recursive.** Values are built from the parser's event stream with an explicit stack: a
  document nested a thousand levels deep is refused at the depth limit; it never reaches Python's
  recursion limit. A self-referencing alias (``&a [*a]``) is refused.
* **JSON types only.** Explicit tags other than the core ones (``!!binary``, ``!!set``, ``!!omap``,
  ``!!timestamp``, ``!!python/...``, custom tags) are refused naming the tag and line. Unquoted dates
  and timestamps (``2024-05-01``) stay strings, as JSON would have them. Plain scalars follow YAML
  1.2's core schema (``1e-3`` is a float, ``no`` a string, ``017`` seventeen). Duplicate keys are
  refused.

Errors are :class:`DocumentError` with a one-line message naming the line and the fix.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import yaml
from yaml import events as ev

from sweeps.limits import Limits

CORE = "tag:yaml.org,2002:"
# YAML 1.2's core schema (what JSON-minded editors assume): `yes`/`no`/`on`/`off` stay strings,
# `017` is seventeen, `1e-3` is a float, dates are strings. (PyYAML implements YAML 1.1.)
_IMPLICIT = (
    ("null", re.compile(r"^(?:~|null|Null|NULL|)$")),
    ("bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    ("int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")),
    ("float", re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")),
    ("merge", re.compile(r"^<<$")),
)
_SCALAR_TAGS = {CORE + t for t in ("str", "int", "float", "bool", "null", "merge")}


def _resolve(value: str, plain: bool) -> str:
    if plain:
        for name, rx in _IMPLICIT:
            if rx.match(value):
                return CORE + name
    return CORE + "str"


def _construct(tag: str, value: str) -> Any:
    """A core-schema scalar's value (raises ValueError when ``value`` is not one of ``tag``)."""
    kind = tag[len(CORE):]
    if kind in ("str", "merge"):
        return value
    if kind == "null":
        if value not in ("~", "null", "Null", "NULL", ""):
            raise ValueError("not null")
        return None
    if kind == "bool":
        if value.lower() not in ("true", "false"):
            raise ValueError("not true/false")
        return value.lower() == "true"
    if kind == "int":
        if value.startswith(("0x", "0o")):
            return int(value[2:], 16 if value[1] == "x" else 8)
        return int(value, 10)
    low = value.lower().lstrip("+")
    if low in (".inf", "-.inf", ".nan"):
        return float(low.replace(".", ""))
    return float(value)


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's event parser when available


class DocumentError(ValueError):
    """A document that is not valid, not JSON-like, or over a limit. ``str(e)`` is one line."""

    def __init__(self, message: str, *, status: int = 422):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int
    max_depth: int
    max_nodes: int
    max_aliases: int
    max_seconds: float

    @classmethod
    def of(cls, limits: Limits) -> "DocumentLimits":
        return cls(limits.max_body_bytes, limits.max_document_depth, limits.max_document_nodes,
                   limits.max_document_aliases, limits.parse_seconds)


DEFAULT_LIMITS = DocumentLimits.of(Limits())


def _where(mark) -> str:
    return f"line {mark.line + 1}" if mark is not None else "the document"


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(CORE):] if tag.startswith(CORE) else tag


class _Builder:
    """Plain data from YAML events, with an explicit stack (no recursion) and running limits."""

    def __init__(self, loader, limits: DocumentLimits, where: str):
        self.loader, self.limits, self.where = loader, limits, where
        self.deadline = time.monotonic() + limits.max_seconds
        self.nodes = self.aliases = 0
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, its size in values)
        # frames: [container, anchor, node count at its start, pending key, start mark, explicit keys]
        self.stack: list[list] = []
        self.open_anchors: set[str] = set()

    def fail(self, msg: str, mark=None) -> DocumentError:
        return DocumentError(f"{self.where}: {_where(mark)}: {msg}")

    def count(self, n: int, mark) -> None:
        self.nodes += n
        if self.nodes > self.limits.max_nodes:
            raise self.fail(f"more than {self.limits.max_nodes} values (MUTRANSFER_MAX_DOCUMENT_NODES); "
                            "a sweep spec has a few dozen", mark)

    def scalar(self, e: ev.ScalarEvent) -> Any:
        tag = e.tag
        if tag in (None, "!"):  # as yaml's composer does: plain scalars resolve, quoted ones are strings
            tag = _resolve(e.value, e.tag is None and e.implicit[0])
        if tag not in _SCALAR_TAGS:
            raise self.fail(f"the tag {_tag_name(tag)} is not allowed: a spec holds only mappings, lists, "
                            "strings, numbers, booleans and null (quote the value to make it a string)",
                            e.start_mark)
        try:
            return _construct(tag, e.value)
        except ValueError:
            raise self.fail(f"cannot read {e.value[:40]!r} as {_tag_name(tag)}", e.start_mark) from None

    def add(self, value: Any, mark, key_mark=None) -> None:
        if not self.stack:
            self.root = value
            self.done = True
            return
        frame = self.stack[-1]
        container = frame[0]
        if isinstance(container, list):
            container.append(value)
            return
        if frame[3] is _NO_KEY:  # this value is a key
            if not isinstance(value, str):
                raise self.fail("mapping keys must be plain strings", mark)
            if value in frame[5]:
                raise self.fail(f"duplicate key {value!r}", mark)
            if value != "<<":
                frame[5].add(value)
            frame[3] = value
            return
        key = frame[3]
        frame[3] = _NO_KEY
        if key == "<<":  # YAML merge key: explicit keys win, then the first mapping merged
            for src in value if isinstance(value, list) else [value]:
                if not isinstance(src, dict):
                    raise self.fail("a merge (<<) takes a mapping or a list of mappings", mark)
                for k, v in src.items():
                    if k not in frame[5]:
                        container.setdefault(k, v)
            return
        container[key] = value

    def run(self, stream: str) -> Any:
        self.done, self.root = False, None
        loader = self.loader
        i = 0
        while loader.check_event():
            e = loader.get_event()
            i += 1
            if not i % 256 and time.monotonic() > self.deadline:
                raise DocumentError(f"{self.where}: took longer than {self.limits.max_seconds:g} s to parse "
                                    "(MUTRANSFER_PARSE_SECONDS)", status=413)
            if isinstance(e, (ev.StreamStartEvent, ev.StreamEndEvent, ev.DocumentEndEvent)):
                continue
            if isinstance(e, ev.DocumentStartEvent):
                if self.done:
                    raise self.fail("more than one document (---); send one spec per request", e.start_mark)
                continue
            if isinstance(e, ev.AliasEvent):
                self.aliases += 1
                if self.aliases > self.limits.max_aliases:
                    raise self.fail(f"more than {self.limits.max_aliases} aliases "
                                    "(MUTRANSFER_MAX_DOCUMENT_ALIASES)", e.start_mark)
                if e.anchor in self.open_anchors:
                    raise self.fail(f"the alias *{e.anchor} refers to a value that contains it (recursive)",
                                    e.start_mark)
                if e.anchor not in self.anchors:
                    raise self.fail(f"unknown alias *{e.anchor}", e.start_mark)
                value, size = self.anchors[e.anchor]
                self.count(size, e.start_mark)
                self.add(value, e.start_mark)
                continue
            if isinstance(e, ev.ScalarEvent):
                self.count(1, e.start_mark)
                value = self.scalar(e)
                if e.anchor:
                    self.anchors[e.anchor] = (value, 1)
                self.add(value, e.start_mark)
                continue
            if isinstance(e, (ev.SequenceStartEvent, ev.MappingStartEvent)):
                is_seq = isinstance(e, ev.SequenceStartEvent)
                want = CORE + ("seq" if is_seq else "map")
                if e.tag not in (None, "!", want):
                    raise self.fail(f"the tag {_tag_name(e.tag)} is not allowed: a spec holds only mappings, "
                                    "lists, strings, numbers, booleans and null", e.start_mark)
                if self.stack and not isinstance(self.stack[-1][0], list) and self.stack[-1][3] is _NO_KEY:
                    raise self.fail("mapping keys must be plain strings", e.start_mark)
                if len(self.stack) >= self.limits.max_depth:
                    raise self.fail(f"nested deeper than {self.limits.max_depth} levels "
                                    "(MUTRANSFER_MAX_DOCUMENT_DEPTH)", e.start_mark)
                self.count(1, e.start_mark)
                if e.anchor:
                    self.open_anchors.add(e.anchor)
                self.stack.append([[] if is_seq else {}, e.anchor, self.nodes, _NO_KEY, e.start_mark, set()])
                continue
            if isinstance(e, (ev.SequenceEndEvent, ev.MappingEndEvent)):
                container, anchor, start, _, mark, _ = self.stack.pop()
                if anchor:
                    self.open_anchors.discard(anchor)
                    self.anchors[anchor] = (container, self.nodes - start + 1)
                self.add(container, mark)
        return self.root


_NO_KEY = object()


def load_yaml(text: str | bytes, limits: DocumentLimits = DEFAULT_LIMITS, where: str = "spec") -> Any:
    """YAML (or JSON, which is YAML) → plain data, within ``limits``; raises :class:`DocumentError`."""
    if isinstance(text, bytes):
        text = _decode(text, where)
    _check_size(len(text.encode("utf-8", "surrogatepass")), limits, where)
    loader = _Loader(text)
    try:
        return _Builder(loader, limits, where).run(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = (e.problem or e.context or "syntax error").strip()
        ctx = e.context_mark
        if ctx is not None and mark is not None and ctx.line < mark.line and e.context:
            # An unclosed bracket or quote is found lines later: name the line where it opened.
            raise DocumentError(f"{where} is not valid YAML/JSON: {_where(ctx)}: {problem} "
                                f"({e.context.strip()} opened here; noticed at {_where(mark)})") from None
        raise DocumentError(f"{where} is not valid YAML/JSON: {_where(mark)}: {problem}") from None
    except yaml.YAMLError as e:
        raise DocumentError(f"{where} is not valid YAML/JSON: {str(e).splitlines()[0]}") from None
    except RecursionError:  # not expected (the builder is iterative); never a traceback
        raise DocumentError(f"{where}: nested too deeply") from None
    finally:
        loader.dispose()


def load_json(data: str | bytes, limits: DocumentLimits = DEFAULT_LIMITS, where: str = "body") -> Any:
    """JSON → plain data, within ``limits`` (NaN/Infinity and duplicate keys refused)."""
    if isinstance(data, bytes):
        data = _decode(data, where)
    _check_size(len(data.encode("utf-8", "surrogatepass")), limits, where)

    def no_constants(name: str):
        raise DocumentError(f"{where}: {name} is not JSON; use a finite number")

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise DocumentError(f"{where}: duplicate key {k!r}")
            out[k] = v
        return out

    try:
        value = json.loads(data, parse_constant=no_constants, object_pairs_hook=pairs)
    except json.JSONDecodeError as e:
        raise DocumentError(f"{where} is not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        raise DocumentError(f"{where}: nested deeper than {limits.max_depth} levels "
                            "(MUTRANSFER_MAX_DOCUMENT_DEPTH)") from None
    _check_shape(value, limits, where)
    return value


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{where}: not UTF-8 text (byte {e.start}); send the spec as UTF-8") from None


def _check_size(n: int, limits: DocumentLimits, where: str) -> None:
    if n > limits.max_bytes:
        raise DocumentError(f"{where}: {n} bytes exceeds the limit of {limits.max_bytes} "
                            "(MUTRANSFER_MAX_BODY_BYTES)", status=413)


def _check_shape(value: Any, limits: DocumentLimits, where: str) -> None:
    """Depth and value count of parsed JSON, walked iteratively."""
    todo, nodes = [(value, 1)], 0
    while todo:
        v, depth = todo.pop()
        nodes += 1
        if nodes > limits.max_nodes:
            raise DocumentError(f"{where}: more than {limits.max_nodes} values (MUTRANSFER_MAX_DOCUMENT_NODES)")
        if isinstance(v, (dict, list)):
            if depth > limits.max_depth:
                raise DocumentError(f"{where}: nested deeper than {limits.max_depth} levels "
                                    "(MUTRANSFER_MAX_DOCUMENT_DEPTH)")
            todo.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))


def load_document(data: bytes, kind: str, limits: DocumentLimits) -> list:
    """``load_json``/``load_yaml`` as plain values, for a worker process: ``["ok", value]`` or
    ``["error", status, message]``."""
    try:
        value = load_json(data, limits, "body") if kind == "json" else load_yaml(data, limits, "body")
        return ["ok", value]
    except DocumentError as e:
        return ["error", e.status, str(e)]


def serve(stdin=None, stdout=None) -> None:
    """A parsing worker (``python -m sweeps.documents``), used by the service so that parsing untrusted
    documents never runs in, or holds the GIL of, the web process. Each request is one JSON line
    ``{"kind": "json"|"yaml", "n": BYTES, "limits": {...}}`` followed by the body's bytes; each answer
    is one JSON line (:func:`load_document`'s list)."""
    import sys

    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    while True:
        header = stdin.readline()
        if not header:
            return
        req = json.loads(header)
        body = stdin.read(req["n"])
        answer = load_document(body, req["kind"], DocumentLimits(**req["limits"]))
        stdout.write(json.dumps(answer).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    serve()
