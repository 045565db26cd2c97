"""The mutransfer HTTP service: ``service.app:app`` (started by ``mutransfer serve``).

Sweeps are driven by detached driver processes (see :mod:`service.launcher`), never in a request
handler, so restarting this process loses nothing; at start-up it relaunches drivers for sweeps
whose driver is gone.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service import launcher
from service.data import SweepData
from service.routers import pages, sweeps
from service.settings import Settings, from_env


def _field(loc) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if settings.launch_drivers:
            launcher.adopt_orphans(settings)
        yield

    app = FastAPI(title="mutransfer", version="0.1.0", lifespan=lifespan,
                  description="Hyperparameter-transfer sweeps for local learning algorithms.")
    app.state.settings = settings
    app.state.data = SweepData(settings)

    @app.middleware("http")
    async def yaml_bodies(request: Request, call_next):
        """Accept YAML specs: parsed with the safe loader (no tags, no code) into JSON."""
        ctype = request.headers.get("content-type", "")
        if request.method == "POST" and ("yaml" in ctype or ctype.startswith("text/plain")):
            body = await request.body()
            try:
                parsed = yaml.safe_load(body.decode("utf-8") or "null")
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                return JSONResponse({"detail": [{"loc": ["body"], "msg": f"not valid YAML: {e}",
                                                 "type": "yaml"}], "message": "body: not valid YAML"}, 422)
            new = json.dumps(parsed, allow_nan=True).encode()
            request._body = new
            headers = [(k, v) for k, v in request.scope["headers"] if k not in (b"content-type", b"content-length")]
            request.scope["headers"] = headers + [(b"content-type", b"application/json"),
                                                  (b"content-length", str(len(new)).encode())]
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = []
        for e in exc.errors():
            msg = str(e.get("msg", "")).removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":
                msg = "unknown key (check the spelling; see sweeps/specs/*.yaml)"
            errors.append({"loc": list(e.get("loc", [])), "field": _field(e.get("loc", [])), "msg": msg,
                           "type": e.get("type")})
        text = "; ".join(f"{e['field']}: {e['msg']}" for e in errors)
        return JSONResponse({"detail": errors, "message": text}, status_code=422)

    @app.get("/health", tags=["service"])
    def health() -> dict:
        reg_ok = True
        try:
            app.state.data.registry.sweeps()
        except Exception:
            reg_ok = False
        return {"status": "ok" if reg_ok else "degraded", "registry": reg_ok, "results": str(settings.results)}

    app.include_router(sweeps.router)
    app.include_router(pages.router)
    return app


class _LazyApp:
    """``service.app:app`` for uvicorn: built from the environment on first use, so importing this
    module (e.g. for tests with their own settings) has no side effects."""

    _app: FastAPI | None = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


app = _LazyApp()
