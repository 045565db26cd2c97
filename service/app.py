"""The mutransfer HTTP service: ``service.app:app`` (started by ``mutransfer serve``).

Sweeps are driven by detached driver processes (see :mod:`service.launcher`), never in a request
handler, so restarting this process loses nothing. A supervisor task (:mod:`service.supervisor`)
notices within a second when a driver is gone and relaunches it (or records the sweep as failed
with its log), and quarantines and recomputes stored parts that fail verification.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from service import errors, supervisor
from service.body import Parsers
from service.guard import SWITCH_INTERVAL_S, BodyTimeout, PageGate
from service.data import SweepData
from service.deps import strict_query
from service.models import Health
from service.routers import pages, sweeps
from service.settings import Settings, from_env
from sweeps.spec import SweepSpec


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(supervisor.run(settings, app.state.data))
        await app.state.parsers.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await app.state.parsers.close()

    app = FastAPI(title="mutransfer", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,  # /docs: pages.py, offline
                  description="Hyperparameter-transfer sweeps for local learning algorithms. Statuses of sweeps "
                              "and of their cells share one vocabulary: queued, running, finished, failed, "
                              "cancelled. Unknown query parameters are refused (422).")
    app.state.settings = settings
    app.state.data = SweepData(settings)
    app.state.parsers = Parsers()  # worker processes for request bodies (service/body.py)
    errors.install(app)
    app.add_middleware(BodyTimeout, timeout_s=settings.limits.body_timeout_s)
    app.add_middleware(PageGate)

    probe = _HealthProbe(app.state.data)

    @app.get("/health", tags=["service"], response_model=Health, dependencies=[Depends(strict_query)])
    async def health() -> dict:
        """On the event loop (not the worker threads page renders and table reads queue for), with the
        registry probed in a thread of its own at most once a second: busy pages cannot starve it."""
        reason = await probe.check()
        return {"status": "degraded" if reason else "ok", "registry": reason is None,
                "results": str(settings.results), "reason": reason}

    app.include_router(sweeps.router)
    app.include_router(pages.router)

    def openapi() -> dict:
        """The generated schema plus the spec's (the submit route reads its body itself, within limits)."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            spec = SweepSpec.model_json_schema(ref_template="#/components/schemas/{model}")
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            comps.update(spec.pop("$defs", {}))
            comps["SweepSpec"] = spec
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


class _HealthProbe:
    """Whether the registry can be read: a one-row query, its answer kept for ``ttl_s`` seconds."""

    def __init__(self, data: SweepData, ttl_s: float = 1.0):
        self.data, self.ttl_s = data, ttl_s
        self.at, self.reason = -1e9, None
        self.lock = asyncio.Lock()

    def _probe(self) -> str | None:
        try:
            self.data.registry.ping()
            return None
        except Exception as e:
            return f"the sweep registry cannot be read: {type(e).__name__}: {e}"

    async def check(self) -> str | None:
        async with self.lock:
            now = time.monotonic()
            if now - self.at > self.ttl_s:
                self.reason = await asyncio.to_thread(self._probe)
                self.at = time.monotonic()
            return self.reason


class _LazyApp:
    """``service.app:app`` for uvicorn: built from the environment on first use, so importing this
    module (e.g. for tests with their own settings) has no side effects."""

    _app: FastAPI | None = None

    async def __call__(self, scope, receive, send):
        if self._app is None:
            # A served process: the event loop (/health) gets the GIL back sooner from page-rendering
            # threads (service/guard.py). Not done by create_app: tests build apps in their own process.
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            self._app = create_app()
        await self._app(scope, receive, send)


app = _LazyApp()
