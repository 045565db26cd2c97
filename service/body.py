"""Reading a spec from a request body, within the limits, off the event loop.

* **Content type first.** Writes take ``application/json`` or a YAML type (``application/yaml``,
  ``application/x-yaml``, ``text/yaml``); anything else, ``text/plain`` included, is 415. A
  ``text/plain`` POST is a "simple" cross-site request browsers send without asking; refusing it
  means another web page cannot submit sweeps to a service left without a token.
* **Size before content.** A declared ``Content-Length`` over ``MUTRANSFER_MAX_BODY_BYTES`` is 413
  before a byte is read; a body streamed without one is cut off at the limit.
* **Parsing in a worker thread, bounded** by ``sweeps/documents.py`` (depth, values, aliases, wall
  time), so a hostile document neither blocks other requests nor runs long.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from service.errors import ApiError
from sweeps.documents import DocumentError, DocumentLimits, load_json, load_yaml
from sweeps.limits import Limits
from sweeps.spec import SpecError, SweepSpec, parse_spec

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


def parse(body: bytes, kind: str, limits: Limits) -> SweepSpec:
    """Body bytes → validated spec, or ApiError (413 for limits, 422 for content)."""
    doc_limits = DocumentLimits.of(limits)
    try:
        data = load_json(body, doc_limits, "body") if kind == "json" else load_yaml(body, doc_limits, "body")
    except DocumentError as e:
        raise ApiError(e.status, [("body", str(e).removeprefix("body: ").removeprefix("body "), "document")]) from None
    try:
        return parse_spec(data)
    except SpecError as e:
        raise ApiError(422, [(f, m, "spec") for f, m in e.errors]) from None


async def read_spec(request: Request, limits: Limits) -> SweepSpec:
    kind = media_kind(request.headers.get("content-type"))
    body = await read_body(request, limits)
    return await asyncio.to_thread(parse, body, kind, limits)
