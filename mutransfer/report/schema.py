"""The JSON Schema (draft 2020-12) of the report on the wire, generated from the typed report
(:mod:`.model`), and written once to ``mutransfer/report/schema.json`` (``python -m
mutransfer.report.schema`` rewrites it; a test checks the file equals what the classes generate).

Numbers follow the report's encoding: a number field is a JSON number, the string ``"inf"`` /
``"-inf"`` (diverged), or ``null`` where the field may be unavailable. A reason or a missing entry
is one schema per kind (``oneOf`` on ``code`` / ``kind``) listing exactly the keys that kind carries.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Union

from . import model as M

SCHEMA_PATH = Path(__file__).with_name("schema.json")
_NUMBER: dict[str, Any] = {"anyOf": [{"type": "number"}, {"enum": ["inf", "-inf"]}]}


def _type(hint: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = type(None) in typing.get_args(hint)
        inner = _type(arms[0], defs) if len(arms) == 1 else (
            _NUMBER if set(arms) <= {int, float} else {"anyOf": [_type(a, defs) for a in arms]})
        return {"anyOf": [inner, {"type": "null"}]} if nullable else inner
    if origin is tuple:
        return {"type": "array", "items": _type(typing.get_args(hint)[0], defs)}
    if origin is Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin is not None and origin.__name__ == "Mapping":
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [m.value for m in hint]}
    if dataclasses.is_dataclass(hint):
        _define(hint, defs)
        return {"$ref": f"#/$defs/{hint.__name__}"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return _NUMBER
    if hint is bool:
        return {"type": "boolean"}
    if hint is str:
        return {"type": "string"}
    return {}


def _object(cls: type, names: tuple[str, ...], defs: dict[str, Any], tag: tuple[str, str] | None = None) -> dict:
    hints = M.hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    props = {n: _type(hints[n], defs) for n in names}
    if tag is not None:
        props[tag[0]] = {"const": tag[1]}
    required = [n for n in names if not fields[n].metadata.get("optional")]
    out = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    if cls.__doc__ and tag is None:
        out["description"] = " ".join(cls.__doc__.split())
    return out


def _define(cls: type, defs: dict[str, Any]) -> None:
    if cls.__name__ in defs:
        return
    defs[cls.__name__] = {}  # a placeholder against recursion
    if cls._VARIANTS is None:
        defs[cls.__name__] = _object(cls, cls.wire_fields(), defs)
        return
    tag, table = cls._VARIANTS
    defs[cls.__name__] = {
        "description": " ".join((cls.__doc__ or "").split()),
        "oneOf": [_object(cls, cls.wire_fields(kind), defs, (tag, kind)) for kind in table],
    }


def report_schema() -> dict[str, Any]:
    """The JSON Schema of :meth:`.model.Report.to_json` (what ``GET /sweeps/{id}/report`` and
    ``mutransfer report --json`` return)."""
    defs: dict[str, Any] = {}
    root = _type(M.Report, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:mutransfer:report",
        "title": "mutransfer optimum-shift report",
        **root,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    return json.dumps(report_schema(), indent=2, ensure_ascii=False) + "\n"


def validate(report: Mapping[str, Any]) -> None:
    """Validate a report's JSON against the schema (needs the ``jsonschema`` package; a
    ``jsonschema.ValidationError`` names the failing path)."""
    import jsonschema

    jsonschema.validate(report, report_schema())


def main(argv: list[str] | None = None) -> int:
    """Rewrite schema.json from the classes (``--check``: exit 1 when the file is stale)."""
    argv = sys.argv[1:] if argv is None else argv
    text = schema_text()
    if "--check" in argv:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != text:
            print(f"{SCHEMA_PATH} is stale: run python -m mutransfer.report.schema", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
