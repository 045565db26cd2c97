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

import logging

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


def install(app: FastAPI) -> None:
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
