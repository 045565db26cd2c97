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


def wants_html(request: Request | None) -> bool:
    """Did the client ask for a page: ``?format=html``, or ``Accept`` leading with text/html?"""
    if request is None:
        return False
    if request.query_params.get("format") == "html":
        return True
    return request.headers.get("accept", "").lstrip().lower().startswith("text/html")


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


def storage_fault(exc: BaseException) -> tuple[int, str]:
    """(status, cause) of a storage failure: 507 when the disk is full (nothing will change until
    space is freed), else 503 (a busy, unreadable or read-only registry or results root)."""
    if isinstance(exc, OSError) and exc.errno in _FULL or isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in str(exc)):
        return 507, f"no space left on the device holding the results or the registry ({exc})"
    if isinstance(exc, OSError) and exc.errno in _REFUSED:
        return 503, f"the results root or the registry refuses writes ({exc})"
    if isinstance(exc, sqlite3.Error):
        return 503, f"the sweep registry cannot be used now ({type(exc).__name__}: {exc})"
    return 503, f"the results store cannot be used now ({type(exc).__name__}: {exc})"


def install(app: FastAPI) -> None:
    from service.data import RegistryUnavailable
    from service.guard import BodyTimeoutError

    @app.exception_handler(BodyTimeoutError)
    async def body_timeout(request: Request, exc: BodyTimeoutError):
        return response(408, [("body", str(exc), "timeout")], {"Connection": "close"}, request=request)

    @app.exception_handler(RegistryUnavailable)
    async def registry_unavailable(request: Request, exc: RegistryUnavailable):
        """A read that needs the registry while it cannot be read: 503, never a guessed status."""
        _, cause = storage_fault(exc.cause)
        return response(503, [("registry", f"the sweep registry cannot be read, so the status of sweeps is "
                                           f"unknown; retry in {RETRY_AFTER_S} s (cause: {cause})", "unavailable")],
                        {"Retry-After": str(RETRY_AFTER_S)}, request=request)

    @app.exception_handler(OSError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, exc: Exception):
        """A write (or read) the disk refused: 507 when full, else 503, naming the cause."""
        code, cause = storage_fault(exc)
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
