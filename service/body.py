"""Reading a spec from a request body, within the limits, off the event loop.

* **Content type first.** Writes take ``application/json`` or a YAML type (``application/yaml``,
  ``application/x-yaml``, ``text/yaml``); anything else, ``text/plain`` included, is 415. A
  ``text/plain`` POST is a "simple" cross-site request browsers send without asking; refusing it
  means another web page cannot submit sweeps to a service left without a token.
* **Size before content.** A declared ``Content-Length`` over ``MUTRANSFER_MAX_BODY_BYTES`` is 413
  before a byte is read; a body streamed without one is cut off at the limit.
* **Parsing in worker processes, bounded** by ``sweeps/documents.py`` (depth, values, aliases) and
  by a hard time limit (``MUTRANSFER_PARSE_SECONDS``; a worker past it is killed and replaced). A
  parse is CPU work on untrusted input: in a process of its own it cannot hold this process's GIL,
  so other requests (``/health``, status polls) are not slowed by it. (Measured: parsing in a
  thread here put /health's p50 at ~140 ms while large documents were refused.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from typing import Any

from fastapi import Request

from service.errors import ApiError
from sweeps.documents import DocumentLimits, load_document
from sweeps.limits import Limits
from sweeps.spec import SpecError, SweepSpec, parse_spec

MAX_ERRORS = 50  # field errors listed in one answer (a document of 9000 unknown keys names 50)

MEDIA_TYPES = {"application/json": "json", "application/yaml": "yaml", "application/x-yaml": "yaml",
               "text/yaml": "yaml", "text/x-yaml": "yaml"}
ACCEPTED = "application/json or application/yaml"


def media_kind(content_type: str | None) -> str:
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    kind = MEDIA_TYPES.get(ctype) or ("json" if ctype.startswith("application/") and ctype.endswith("+json") else None)
    if kind is None:
        raise ApiError(415, [("Content-Type", f"{ctype or '(none)'} is not accepted for a spec; send {ACCEPTED}",
                              "media_type")])
    return kind


async def read_body(request: Request, limits: Limits) -> bytes:
    cap = limits.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, [("Content-Length", f"not a number: {declared[:40]!r}", "header")]) from None
        if n > cap:
            raise ApiError(413, [("body", f"{n} bytes exceeds the limit of {cap} (MUTRANSFER_MAX_BODY_BYTES)",
                                  "too_large")])
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise ApiError(413, [("body", f"more than {cap} bytes (MUTRANSFER_MAX_BODY_BYTES)", "too_large")])
    return bytes(body)


class Parsers:
    """A few parsing worker processes (``python -m sweeps.documents``: they import only the document
    reader). Each request takes an idle worker; one that runs past the time limit, or dies, is killed
    and replaced, and the request is refused."""

    def __init__(self, workers: int = 2):
        self.workers = workers
        self._idle: asyncio.Queue | None = None
        self._loop = None
        self._procs: set = set()

    async def _spawn(self):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sweeps.documents", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=2**24)
        self._procs.add(proc)
        return proc

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._idle is not None and self._loop is not loop:  # pipes belong to the loop that made them
            self._kill_all()
        if self._idle is None:
            self._loop, self._idle = loop, asyncio.Queue()
            for _ in range(self.workers):
                self._idle.put_nowait(await self._spawn())

    def _kill_all(self) -> None:
        for proc in self._procs:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
        self._procs.clear()
        self._idle = None

    async def _replace(self, proc) -> None:
        self._procs.discard(proc)
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        self._idle.put_nowait(await self._spawn())

    async def parse(self, body: bytes, kind: str, limits: Limits) -> Any:
        await self.start()
        doc = DocumentLimits.of(limits)
        header = json.dumps({"kind": kind, "n": len(body), "limits": dataclasses.asdict(doc)}).encode()
        proc = await self._idle.get()
        try:
            proc.stdin.write(header + b"\n" + body)
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=limits.parse_seconds + 1.0)
            if not line:
                raise ConnectionError("parser exited")
        except asyncio.TimeoutError:
            await self._replace(proc)
            raise ApiError(413, [("body", f"took longer than {limits.parse_seconds:g} s to parse "
                                          "(MUTRANSFER_PARSE_SECONDS)", "too_slow")]) from None
        except (ConnectionError, OSError):
            await self._replace(proc)
            raise ApiError(422, [("body", "could not be parsed", "document")]) from None
        self._idle.put_nowait(proc)
        answer = json.loads(line)
        if answer[0] == "error":
            _, status, message = answer
            raise ApiError(status, [("body", message.removeprefix("body: ").removeprefix("body "), "document")])
        return answer[1]

    async def close(self) -> None:
        procs = list(self._procs)
        self._kill_all()
        for proc in procs:
            await proc.wait()


def validate(data: Any) -> SweepSpec:
    """Parsed document → spec, or ApiError 422 naming the fields (at most MAX_ERRORS of them)."""
    try:
        return parse_spec(data)
    except SpecError as e:
        errors = [(f, m, "spec") for f, m in e.errors[:MAX_ERRORS]]
        if len(e.errors) > MAX_ERRORS:
            errors.append(("spec", f"... and {len(e.errors) - MAX_ERRORS} more errors", "spec"))
        raise ApiError(422, errors) from None


async def read_spec(request: Request, limits: Limits, parsers: Parsers) -> SweepSpec:
    kind = media_kind(request.headers.get("content-type"))
    body = await read_body(request, limits)
    data = await parsers.parse(body, kind, limits)
    return await asyncio.to_thread(validate, data)
