"""The sweeps API (docs/guide/service.md#http-api): submit, list, inspect, cancel, pull tables, report, progress events.

Every route refuses query parameters it does not take (422 naming them and the accepted ones);
statuses are one vocabulary (``sweeps.registry.Status``) for sweeps and cells, enumerated in the
OpenAPI schema."""

from __future__ import annotations

import asyncio
import io
import json
import math
from typing import Literal

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from mutransfer.algorithms import ALGORITHMS
from mutransfer.parametrization import PARAMETRIZATIONS
from mutransfer.report import DIVERGED_POLICIES, METRICS
from mutransfer.results import RUN_STATUSES, with_settings
from service import launcher
from service.body import read_spec
from service.data import RegistryUnavailable, SweepData
from service.deps import get_data, get_settings, require_writer, shutting_down, strict_query, sweep_id
from service.errors import ApiError, prefers_html
from service.models import Cancelled, SweepList, SweepState, Submitted
from service.settings import Settings
from sweeps import locks
from sweeps.bookkeeping import save_spec
from sweeps.registry import ACTIVE, TERMINAL, Status
from sweeps.spec import SweepSpec, count_runs

router = APIRouter(prefix="/sweeps", tags=["sweeps"], dependencies=[Depends(strict_query)])

Parametrization = Literal[tuple(sorted(PARAMETRIZATIONS))]
Algorithm = Literal[tuple(sorted(ALGORITHMS))]
RunStatus = Literal[RUN_STATUSES]
Metric = Literal[tuple(METRICS)]
Diverged = Literal[tuple(DIVERGED_POLICIES)]


def _links(sid: str) -> dict:
    base = f"/sweeps/{sid}"
    return {"self": base, "runs": f"{base}/runs", "curves": f"{base}/curves", "report": f"{base}/report",
            "contours": f"{base}/contours", "events": f"{base}/events"}


def _limit_error(field: str, value, limit, setting: str) -> ApiError:
    return ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT,
                    [(field, f"{value:,} exceeds this service's limit of {limit:,} ({setting})", "limit")])


def _check_limits(spec: SweepSpec, settings: Settings) -> None:
    """The operator's limits, checked arithmetically from the spec (no run is built)."""
    lim = settings.limits
    if max(spec.widths) > lim.max_width:
        raise _limit_error("widths", max(spec.widths), lim.max_width, "MUTRANSFER_MAX_WIDTH")
    if max(spec.depths) > lim.max_depth:
        raise _limit_error("depths", max(spec.depths), lim.max_depth, "MUTRANSFER_MAX_DEPTH")
    if spec.training.epochs > lim.max_epochs:
        raise _limit_error("training.epochs", spec.training.epochs, lim.max_epochs, "MUTRANSFER_MAX_EPOCHS")
    n = count_runs(spec)
    if n > lim.max_runs:
        raise _limit_error("runs", n, lim.max_runs, "MUTRANSFER_MAX_RUNS")
    if spec.decide is not None:  # the decide loop's runs count too: the most its limits allow
        from sweeps.decide import most_runs

        if most_runs(spec) > lim.max_runs:
            raise _limit_error("decide.max_runs", most_runs(spec), lim.max_runs, "MUTRANSFER_MAX_RUNS")
    from sweeps.cost import refusals  # the cost bound: one run's memory, the sweep's compute, runnable at all

    found = refusals(spec, lim)
    if found:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, [(f, m, "cost") for f, m in found])


def _check_dataset(spec: SweepSpec) -> None:
    """The dataset must be installed here before a sweep is accepted (MUTRANSFER_CHECK_DATASETS=0
    where only the cluster's workers have it)."""
    from mutransfer.data import DatasetNotFoundError, locate

    try:
        locate(spec.dataset.name, data_dir=spec.dataset.data_dir)
    except DatasetNotFoundError as e:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, [("dataset.name", str(e), "dataset")]) from None


def _submit(spec: SweepSpec, data: SweepData, settings: Settings) -> dict:
    _check_limits(spec, settings)
    if settings.check_datasets:
        _check_dataset(spec)
    sid = spec.default_sweep_id()
    # One submission at a time (threads and worker processes): the concurrency limit holds, and a
    # sweep's driver is launched once however many identical submissions race (see launcher).
    with locks.exclusive(locks.lock_path(settings.registry, "_submit")):
        existing = data.row(sid)
        if existing and existing["status"] in ACTIVE and (
                launcher.driver_alive(settings, sid) or not settings.launch_drivers):
            return {"id": sid, "status": existing["status"], "resubmitted": False, "links": _links(sid)}
        active = [r for r in data.sweep_rows() if r["status"] in ACTIVE and r["sweep_id"] != sid]
        if len(active) >= settings.limits.max_concurrent:
            raise ApiError(status.HTTP_429_TOO_MANY_REQUESTS, [(
                "sweeps", f"{len(active)} sweeps already queued/running; the limit is "
                          f"{settings.limits.max_concurrent} (MUTRANSFER_MAX_CONCURRENT)", "too_many")])
        from sweeps.plan import trials as plan_trials

        planned = plan_trials(spec)
        save_spec(data.store, sid, spec)  # beside the results: the registry can be rebuilt from it
        data.registry.register(sid, spec.name, spec.canonical(), spec.spec_hash(),
                               [(t.part, t.cell.cell_id, len(t.runs)) for t in planned], settings.ray_address,
                               owner="service", fresh=True)
        if settings.launch_drivers:
            launcher.launch(settings, sid, registry=data.registry)
    data.invalidate(sid)
    return {"id": sid, "status": "queued", "resubmitted": existing is not None and bool(existing),
            "links": _links(sid)}


def _spec_body() -> dict:
    schema = {"$ref": "#/components/schemas/SweepSpec"}
    return {"requestBody": {"required": True, "description": "A sweep spec (`mutransfer schema` prints its JSON Schema)",
                            "content": {"application/json": {"schema": schema},
                                        "application/yaml": {"schema": schema}}}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_writer)],
             response_model=Submitted, openapi_extra=_spec_body(),
             responses={413: {"description": "body or document over a limit"},
                        415: {"description": "not application/json or a YAML type"},
                        422: {"description": "invalid spec, or over a limit; names the field"},
                        429: {"description": "too many sweeps queued/running"}},
             summary="Submit a sweep spec (JSON, or YAML with Content-Type: application/yaml)")
async def submit(request: Request, data: SweepData = Depends(get_data),
                 settings: Settings = Depends(get_settings)) -> dict:
    spec = await read_spec(request, settings.limits, request.app.state.parsers)
    return await asyncio.to_thread(_submit, spec, data, settings)


@router.post("/{sweep_id}/decide", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_writer)],
             response_model=Submitted,
             responses={422: {"description": "invalid limits, or over a limit; names the field"},
                        429: {"description": "too many sweeps queued/running"}},
             summary="Resubmit a sweep with decide: {max_runs, max_seeds, max_rounds} (the decide loop)")
async def decide_sweep(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
                       settings: Settings = Depends(get_settings)) -> dict:
    """The sweep's spec with the ``decide:`` field set to the JSON body's limits (an empty body: the
    defaults), submitted like any spec: the same sweep id (decide is not part of the spec's hash), so
    its finished runs are kept and the driver runs the decide loop (sweeps/decide.py)."""
    from sweeps.spec import SpecError, parse_spec

    raw = await request.body()
    try:
        limits = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, [("body", "expected a JSON object of decide limits "
                                                                "{max_runs, max_seeds, max_rounds}", "json")]) from None
    spec = data.spec_of(sid)
    if spec is None:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, [("sweep_id", f"sweep {sid!r} has no saved spec to "
                                                                            "resubmit", "no_spec")])
    try:
        new = parse_spec({**spec.canonical(), "refine": None, "decide": limits})
    except SpecError as e:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, [(f, m, "value_error") for f, m in e.errors]) from None
    return await asyncio.to_thread(_submit, new, data, settings)


@router.get("", response_model=SweepList, summary="List sweeps (newest first)")
def list_sweeps(data: SweepData = Depends(get_data),
                status_: Status | None = Query(None, alias="status", description="only sweeps with this status"),
                limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> dict:
    ids = data.sweep_ids(status_.value if status_ else None)
    page = ids[offset:offset + limit]
    return {"total": len(ids), "limit": limit, "offset": offset,
            "items": [{**_summary(data.status(s)), "links": _links(s)} for s in page]}


def _summary(st: dict) -> dict:
    return {k: st[k] for k in ("id", "name", "status", "description", "runs_done", "runs_total", "progress",
                               "eta_s", "created_at")}


@router.get("/{sweep_id}", response_model=SweepState,
            summary="Status, progress per cell, errors, ETA (JSON; a browser gets the overview page)")
def get_sweep(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
              format: Literal["json", "html"] | None = None):
    if format == "html" or (format is None and "text/html" in request.headers.get("accept", "")):
        from service.routers.pages import overview_html
        return overview_html(request, data, sid)
    return {**data.status(sid), "links": _links(sid)}


@router.delete("/{sweep_id}", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_writer)],
               response_model=Cancelled, summary="Cancel: stop its trials, keep finished results")
def cancel(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
           settings: Settings = Depends(get_settings)) -> dict:
    row = data.row(sid)
    if not row or row["status"] in TERMINAL:
        return {"id": sid, "status": row["status"] if row else "finished", "cancelled": False}
    launcher.cancel(settings, sid, registry=data.registry)
    data.invalidate(sid)
    after = (data.row(sid) or {}).get("status")
    return {"id": sid, "status": "cancelled" if after == "cancelled" else "cancelling", "cancelled": True}


Format = Literal["parquet", "csv", "json"]


def _filters(width, depth, parametrization, algorithm, weight_lr, activity_lr, seed, status_) -> dict:
    f = {"width": width, "depth": depth, "parametrization": parametrization, "algorithm": algorithm,
         "weight_lr": weight_lr, "activity_lr": activity_lr, "seed": seed, "status": status_}
    return {k: v for k, v in f.items() if v}


def _table_response(df: pd.DataFrame, fmt: Format, name: str) -> Response:
    if fmt == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return Response(buf.getvalue(), media_type="application/vnd.apache.parquet",
                        headers={"Content-Disposition": f'attachment; filename="{name}.parquet"'})
    if fmt == "csv":
        def chunks():
            for start in range(0, max(len(df), 1), 5000):
                yield df.iloc[start:start + 5000].to_csv(index=False, header=start == 0)
        return StreamingResponse(chunks(), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    # JSON: NaN/inf are not JSON; they become null (a run's status says why).
    clean = df.astype(object).where(df.notna() & ~df.isin([math.inf, -math.inf]), None)
    return JSONResponse(clean.to_dict(orient="records"))


@router.get("/{sweep_id}/runs", summary="The runs table (one row per run)")
def runs(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data), format: Format = "parquet",
         width: list[int] = Query(None), depth: list[int] = Query(None),
         parametrization: list[Parametrization] = Query(None), algorithm: list[Algorithm] = Query(None),
         weight_lr: list[float] = Query(None), activity_lr: list[float] = Query(None),
         seed: list[int] = Query(None),
         status_: list[RunStatus] = Query(None, alias="status", description="a run's outcome (not a sweep status)"),
         ) -> Response:
    df = data.runs(sid)
    for col, vals in _filters(width, depth, parametrization, algorithm, weight_lr, activity_lr, seed,
                              status_).items():
        df = df[df[col].isin(vals)]
    return _table_response(df.reset_index(drop=True), format, f"{sid}-runs")


@router.get("/{sweep_id}/curves", summary="The curves table (one row per run per logged step, with the run's "
                                          "settings: group by width, lrs, seed, ... without a join)")
def curves(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data), format: Format = "parquet",
           run_id: list[str] = Query(None), width: list[int] = Query(None), depth: list[int] = Query(None),
           parametrization: list[Parametrization] = Query(None), weight_lr: list[float] = Query(None),
           activity_lr: list[float] = Query(None), seed: list[int] = Query(None)) -> Response:
    sel = _filters(width, depth, parametrization, None, weight_lr, activity_lr, seed, None)
    ids = set(run_id or [])
    if sel:
        r = data.runs(sid)
        for col, vals in sel.items():
            r = r[r[col].isin(vals)]
        ids = set(r["run_id"]) & ids if ids else set(r["run_id"])
    df = data.curves(sid, run_ids=sorted(ids)) if (ids or sel) else data.curves(sid)
    return _table_response(with_settings(df, data.runs(sid)), format, f"{sid}-curves")


@router.get("/{sweep_id}/analyses", summary="Diagnostics tables of the sweep (names)")
def analyses(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> dict:
    return {"items": [{"name": n, "url": f"/sweeps/{sid}/analyses/{n}"} for n in data.store.analyses(sid)]}


@router.get("/{sweep_id}/analyses/{name}", summary="One diagnostics table")
def analysis(name: str, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
             format: Format = "parquet") -> Response:
    if name not in data.store.analyses(sid):
        raise ApiError(status.HTTP_404_NOT_FOUND, [("name", f"no analysis {name!r} in sweep {sid!r}", "not_found")])
    return _table_response(data.store.load_analysis(sid, name), format, f"{sid}-{name}")


@router.get("/{sweep_id}/report", summary="Optimum-shift report (JSON, or HTML with Accept: text/html)")
def report(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
           metric: Metric | None = Query(None, description="default: the spec's metric"),
           diverged: Diverged = Query("inf", description="how a diverged run counts: inf (+inf) or best_before "
                                                      "(its metric from before it diverged, the muPC paper's rule)"),
           format: Literal["json", "html"] | None = None) -> Response:
    metric = metric or data.status(sid)["metric"]  # cached: no registry read per request
    rep = data.typed_report(sid, metric, diverged)
    if format == "html" or (format is None and prefers_html(request.headers.get("accept"))):
        from service.routers.pages import report_html
        return HTMLResponse(report_html(data, sid, rep))
    return JSONResponse(rep.to_json())


def status_readable(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> None:
    """The sweep's status can be read now (else 503, before an event stream starts)."""
    data.status(sid)


@router.get("/{sweep_id}/events", response_class=EventSourceResponse,
            summary="Server-sent progress events until the sweep ends (or the server shuts down)")
async def events(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
                 _readable: None = Depends(status_readable),
                 interval: float = Query(1.0, ge=0.1, le=60)):
    last = None
    while True:
        try:
            st = await asyncio.to_thread(data.status, sid)
        except RegistryUnavailable as e:  # mid-stream: said once per outage, then polled again
            if last != "unavailable":
                yield ServerSentEvent(data={"id": sid, "status": "unknown", "reason": f"the sweep registry "
                                            f"cannot be read ({e}); the stream goes on when it can"},
                                      event="unavailable")
                last = "unavailable"
            await asyncio.sleep(interval)
            continue
        summary = {**_summary(st), "cells_done": sum(c["status"] == "finished" for c in st["cells"]),
                   "cells_total": len(st["cells"])}
        if summary != last:
            yield ServerSentEvent(data=summary, event="progress")
            last = summary
        if st["status"] in TERMINAL or shutting_down.is_set() or await request.is_disconnected():
            end = {"id": sid, "status": st["status"]}
            if shutting_down.is_set() and st["status"] not in TERMINAL:
                end["reason"] = "server shutting down; reconnect to follow the sweep"
            yield ServerSentEvent(data=end, event="end")
            return
        waited = 0.0
        while waited < interval and not shutting_down.is_set():  # wake within 0.2 s on shutdown
            await asyncio.sleep(min(0.2, interval - waited))
            waited += 0.2
