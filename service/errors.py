"""Every error answer of the API carries ``message``, the one line to show a person; field errors
come as ``{"detail": [{"loc", "field", "msg", "type"}...], "message": "field: msg; ..."}``, others as
``{"detail": "what is wrong", "message": "what is wrong"}``. Nothing the client
sends can produce a traceback; an unexpected server fault answers 500 in the same shape and is
logged with its traceback.

A browser gets the same error as a page: when the request asks for HTML (``?format=html``, or an
``Accept`` header that leads with ``text/html``, as a browser's address bar sends), every error of
every route answers an HTML page (:func:`dashboards.error_page`) with the same status and message,
so a mistyped id in ``/sweeps/{id}/report?format=html`` is a readable 404, not a JSON body."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service")


class ApiError(Exception):
    """An answer with ``status`` and errors ``[(field, message, type)]``."""

    def __init__(self, status: int, errors: list[tuple[str, str, str]], headers: dict | None = None):
        self.status, self.errors, self.headers = status, errors, headers
        super().__init__("; ".join(f"{f}: {m}" for f, m, _ in errors))


def field_name(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def accept_ranges(accept: str | None) -> list[tuple[str, float]]:
    """``Accept`` as [(media range, q)] in the order given (a malformed q counts as 0)."""
    out = []
    for item in (accept or "").split(","):
        media, *params = [p.strip() for p in item.split(";")]
        if not media:
            continue
        q = 1.0
        for p in params:
            k, _, v = p.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = min(max(float(v), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        out.append((media.lower(), q))
    return out


def prefers_html(accept: str | None) -> bool:
    """Whether ``Accept`` asks for HTML over JSON: text/html named with q > 0, and at least as
    wanted as application/json (``text/html;q=0`` means "not HTML")."""
    ranges = accept_ranges(accept)
    html = max((q for m, q in ranges if m == "text/html"), default=0.0)
    json_q = max((q for m, q in ranges if m in ("application/json", "application/*")), default=0.0)
    return html > 0 and html >= json_q


def wants_html(request: Request | None) -> bool:
    """Did the client ask for a page: ``?format=html``, or ``Accept`` leading with text/html (q > 0)?"""
    if request is None:
        return False
    if request.query_params.get("format") == "html":
        return True
    ranges = accept_ranges(request.headers.get("accept"))
    return bool(ranges) and ranges[0][0] == "text/html" and ranges[0][1] > 0


def as_page(status: int, message: str, details: list[dict] | None = None, headers: dict | None = None) -> HTMLResponse:
    """The HTML error page for ``status`` and ``message`` (field errors listed below it)."""
    from dashboards import error_page  # the service's pages are the dashboards'; imported lazily

    return HTMLResponse(error_page(status, message, details=details or ()), status_code=status, headers=headers)


def response(status: int, errors: list[tuple[str, str, str]], headers: dict | None = None,
             locs: list | None = None, request: Request | None = None) -> JSONResponse | HTMLResponse:
    detail = [{"loc": (locs[i] if locs else [f]), "field": f, "msg": m, "type": t} for i, (f, m, t) in enumerate(errors)]
    message = "; ".join(f"{f}: {m}" for f, m, _ in errors)
    if wants_html(request):
        return as_page(status, message, [{"field": d["field"], "msg": d["msg"]} for d in detail], headers)
    return JSONResponse({"detail": detail, "message": message}, status_code=status, headers=headers)


RETRY_AFTER_S = 10  # what a 503 for an unreadable registry or store asks clients to wait
_FULL = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)


FULL_BELOW_BYTES = 1 << 20  # a filesystem with less free space than this counts as full


def _full_filesystem(paths) -> str | None:
    """The first of ``paths`` (files or directories) whose filesystem is (nearly) full."""
    for p in paths:
        d = p
        while d and not os.path.exists(d):
            d = os.path.dirname(d)
        try:
            if d and shutil.disk_usage(d).free < FULL_BELOW_BYTES:
                return d
        except OSError:
            continue
    return None


def storage_fault(exc: BaseException, paths=()) -> tuple[int, str]:
    """(status, cause) of a storage failure: 507 when the disk is full (``exc`` says so, or a
    filesystem of ``paths`` has under 1 MiB free: SQLite reports a full disk as an I/O error),
    else 503 (a busy, unreadable or read-only registry or results root)."""
    full = isinstance(exc, OSError) and exc.errno in _FULL or "No space left" in str(exc) or \
        isinstance(exc, sqlite3.Error) and (getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
                                            or "disk is full" in str(exc))
    where = _full_filesystem(paths)
    if full or where:
        return 507, (f"no space left on the device holding {where or 'the results or the registry'} "
                     f"({type(exc).__name__}: {exc}); free some space")
    if isinstance(exc, OSError) and exc.errno in _REFUSED:
        return 503, f"the results root or the registry refuses writes ({exc})"
    if isinstance(exc, sqlite3.Error):
        return 503, f"the sweep registry cannot be used now ({type(exc).__name__}: {exc})"
    return 503, f"the results store cannot be used now ({type(exc).__name__}: {exc})"


def _storage_paths(request: Request) -> tuple[str, ...]:
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return ()
    results = str(settings.results).removeprefix("file://")
    return (str(settings.registry),) + (() if "://" in results else (results,))


WRITES = ("POST", "PUT", "PATCH", "DELETE")


def install(app: FastAPI) -> None:
    from service.data import RegistryUnavailable
    from service.guard import BodyTimeoutError

    @app.exception_handler(BodyTimeoutError)
    async def body_timeout(request: Request, exc: BodyTimeoutError):
        return response(408, [("body", str(exc), "timeout")], {"Connection": "close"}, request=request)

    @app.exception_handler(RegistryUnavailable)
    async def registry_unavailable(request: Request, exc: RegistryUnavailable):
        """The registry cannot be read: a read answers 503 (never a guessed status); a write 507
        when the disk is full, else 503."""
        code, cause = storage_fault(exc.cause, _storage_paths(request))
        if request.method not in WRITES:
            code = 503
        return response(code, [("registry", f"the sweep registry cannot be read, so the status of sweeps is "
                                            f"unknown; retry in {RETRY_AFTER_S} s (cause: {cause})",
                                "insufficient_storage" if code == 507 else "unavailable")],
                        {"Retry-After": str(RETRY_AFTER_S)}, request=request)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, exc: Exception):
        """A write (or read) the disk refused: 507 when full, else 503, naming the cause."""
        code, cause = storage_fault(exc, _storage_paths(request))
        log.warning("%s %s: %s", request.method, request.url.path, cause)
        return response(code, [("storage", cause, "insufficient_storage" if code == 507 else "unavailable")],
                        {"Retry-After": str(RETRY_AFTER_S)}, request=request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return response(exc.status, exc.errors, exc.headers, request=request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors, locs = [], []
        for e in exc.errors():
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":
                msg = "unknown key (check the spelling; see sweeps/specs/*.yaml)"
            loc = list(e.get("loc", []))
            where = loc[0] if loc else "body"
            errors.append((field_name(loc[1:] if where in ("query", "path", "header") else loc), msg,
                           str(e.get("type"))))
            locs.append(loc)
        return response(422, errors, locs=locs, request=request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if isinstance(exc.detail, list):  # field errors
            errs = [(field_name(d.get("loc", [])), d.get("msg", ""), d.get("type", "error")) for d in exc.detail]
            return response(exc.status_code, errs, getattr(exc, "headers", None), request=request)
        if wants_html(request):
            return as_page(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))
        return JSONResponse({"detail": exc.detail, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return response(500, [("server", f"internal error ({type(exc).__name__}); the server log has the "
                                         "details", "internal")], request=request)
