"""The sweeps API (SPEC §9): submit, list, inspect, cancel, pull tables, report, progress events."""

from __future__ import annotations

import asyncio
import io
import math
from typing import Literal

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from mutransfer.report import METRICS
from service import launcher
from service.data import SweepData
from service.deps import get_data, get_settings, require_writer, sweep_id
from service.settings import Settings
from sweeps.plan import count_runs, trials as plan_trials
from sweeps.spec import SweepSpec

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
TERMINAL = ("finished", "failed", "cancelled")


def _links(sid: str) -> dict:
    base = f"/sweeps/{sid}"
    return {"self": base, "runs": f"{base}/runs", "curves": f"{base}/curves", "report": f"{base}/report",
            "contours": f"{base}/contours", "events": f"{base}/events"}


def _limit_error(field: str, value, limit, setting: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=[{
        "loc": ["body", field], "type": "limit",
        "msg": f"{field}: {value} exceeds this service's limit of {limit} ({setting})"}])


def _check_limits(spec: SweepSpec, settings: Settings) -> None:
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


@router.post("", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_writer)],
             summary="Submit a sweep spec (JSON, or YAML with Content-Type: application/yaml)")
def submit(spec: SweepSpec, data: SweepData = Depends(get_data),
           settings: Settings = Depends(get_settings)) -> dict:
    _check_limits(spec, settings)
    sid = spec.default_sweep_id()
    existing = data.registry.sweep(sid)
    if existing and existing["status"] in launcher.ACTIVE and launcher.pid_alive(existing.get("driver_pid")):
        return {"id": sid, "status": existing["status"], "resubmitted": False, "links": _links(sid)}
    active = [r for r in data.registry.sweeps() if r["status"] in launcher.ACTIVE and r["sweep_id"] != sid]
    if len(active) >= settings.limits.max_concurrent:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"{len(active)} sweeps already queued/running; the limit is "
                            f"{settings.limits.max_concurrent} (MUTRANSFER_MAX_CONCURRENT)")
    planned = plan_trials(spec)
    data.registry.register(sid, spec.name, spec.canonical(), spec.spec_hash(),
                           [(t.part, t.cell.cell_id, len(t.runs)) for t in planned], settings.ray_address)
    if settings.launch_drivers:
        launcher.launch(settings, sid)
    data.invalidate(sid)
    return {"id": sid, "status": "queued", "resubmitted": existing is not None, "links": _links(sid)}


@router.get("", summary="List sweeps (newest first)")
def list_sweeps(data: SweepData = Depends(get_data), status_: str | None = Query(None, alias="status"),
                limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict:
    rows = data.registry.sweeps(status_)
    known = {r["sweep_id"] for r in rows}
    extra = [] if status_ not in (None, "finished") else [s for s in data.store.sweeps() if s not in known]
    ids = [r["sweep_id"] for r in rows] + extra
    page = ids[offset:offset + limit]
    return {"total": len(ids), "limit": limit, "offset": offset,
            "items": [{**_summary(data.status(s)), "links": _links(s)} for s in page]}


def _summary(st: dict) -> dict:
    return {k: st[k] for k in ("id", "name", "status", "description", "runs_done", "runs_total", "progress",
                               "eta_s", "created_at")}


@router.get("/{sweep_id}", summary="Status, progress per cell, errors, ETA")
def get_sweep(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> dict:
    return {**data.status(sid), "links": _links(sid)}


@router.delete("/{sweep_id}", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(require_writer)],
               summary="Cancel: stop its trials, keep finished results")
def cancel(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
           settings: Settings = Depends(get_settings)) -> dict:
    row = data.registry.sweep(sid)
    if row is None or row["status"] in TERMINAL:
        return {"id": sid, "status": row["status"] if row else "finished", "cancelled": False}
    launcher.cancel(settings, sid)
    data.invalidate(sid)
    return {"id": sid, "status": "cancelling", "cancelled": True}


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
         parametrization: list[str] = Query(None), algorithm: list[str] = Query(None),
         weight_lr: list[float] = Query(None), activity_lr: list[float] = Query(None),
         seed: list[int] = Query(None), status_: list[str] = Query(None, alias="status")) -> Response:
    df = data.runs(sid)
    for col, vals in _filters(width, depth, parametrization, algorithm, weight_lr, activity_lr, seed,
                              status_).items():
        df = df[df[col].isin(vals)]
    return _table_response(df.reset_index(drop=True), format, f"{sid}-runs")


@router.get("/{sweep_id}/curves", summary="The curves table (one row per run per logged step)")
def curves(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data), format: Format = "parquet",
           run_id: list[str] = Query(None), width: list[int] = Query(None), depth: list[int] = Query(None),
           parametrization: list[str] = Query(None), weight_lr: list[float] = Query(None),
           activity_lr: list[float] = Query(None), seed: list[int] = Query(None)) -> Response:
    sel = _filters(width, depth, parametrization, None, weight_lr, activity_lr, seed, None)
    ids = set(run_id or [])
    if sel:
        r = data.runs(sid)
        for col, vals in sel.items():
            r = r[r[col].isin(vals)]
        ids = set(r["run_id"]) & ids if ids else set(r["run_id"])
    df = data.curves(sid, run_ids=sorted(ids)) if (ids or sel) else data.curves(sid)
    return _table_response(df, format, f"{sid}-curves")


@router.get("/{sweep_id}/analyses", summary="Diagnostics tables of the sweep (names)")
def analyses(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> dict:
    return {"items": [{"name": n, "url": f"/sweeps/{sid}/analyses/{n}"} for n in data.store.analyses(sid)]}


@router.get("/{sweep_id}/analyses/{name}", summary="One diagnostics table")
def analysis(name: str, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
             format: Format = "parquet") -> Response:
    if name not in data.store.analyses(sid):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no analysis {name!r} in sweep {sid!r}")
    return _table_response(data.store.load_analysis(sid, name), format, f"{sid}-{name}")


@router.get("/{sweep_id}/report", summary="Optimum-shift report (JSON, or HTML with Accept: text/html)")
def report(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
           metric: str | None = None, format: Literal["json", "html"] | None = None) -> Response:
    metric = metric or data.status(sid)["metric"]  # cached: no registry read per request
    if metric not in METRICS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"metric: unknown {metric!r}; choose one of {sorted(METRICS)}")
    rep = data.report(sid, metric)
    if format == "html" or (format is None and "text/html" in request.headers.get("accept", "")):
        from service.routers.pages import report_html
        return HTMLResponse(report_html(data, sid, rep))
    return JSONResponse(rep)


@router.get("/{sweep_id}/events", response_class=EventSourceResponse,
            summary="Server-sent progress events until the sweep ends")
async def events(request: Request, sid: str = Depends(sweep_id), data: SweepData = Depends(get_data),
                 interval: float = Query(1.0, ge=0.1, le=60)):
    last = None
    while True:
        st = await asyncio.to_thread(data.status, sid)
        summary = {**_summary(st), "cells_done": sum(c["status"] == "done" for c in st["cells"]),
                   "cells_total": len(st["cells"])}
        if summary != last:
            yield ServerSentEvent(data=summary, event="progress")
            last = summary
        if st["status"] in TERMINAL or await request.is_disconnected():
            yield ServerSentEvent(data={"id": sid, "status": st["status"]}, event="end")
            return
        await asyncio.sleep(interval)
