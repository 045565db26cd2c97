"""Dashboard pages (plotly, fully offline: plotly.js is served by this app)."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import HTMLResponse, Response

from dashboards import pages
from service.data import SweepData
from service.deps import get_data, sweep_id

router = APIRouter(tags=["dashboards"])


@functools.lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    return pages.plotly_js().encode()


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_js() -> Response:
    return Response(_plotly_js(), media_type="application/javascript",
                    headers={"Cache-Control": "public, max-age=86400"})


def _meta(data: SweepData, sid: str) -> dict:
    st = data.status(sid)
    return {**st, "status_url": f"/sweeps/{sid}", "report_url": f"/sweeps/{sid}/report"}


@router.get("/", response_class=HTMLResponse, summary="Index: sweeps, progress, submit form")
def index(data: SweepData = Depends(get_data)) -> str:
    ids = [r["sweep_id"] for r in data.registry.sweeps()]
    ids += [s for s in data.store.sweeps() if s not in ids]
    return pages.index_page([data.status(s) for s in ids])


@router.get("/sweeps/{sweep_id}/contours", response_class=HTMLResponse, summary="Transfer-contour dashboard")
def contours(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> str:
    meta = _meta(data, sid)
    return data.page(sid, "contours",
                     lambda: pages.contour_page(data.report(sid, meta["metric"]), data.runs(sid), meta))


@router.get("/sweeps/{sweep_id}/shift", response_class=HTMLResponse, summary="Optimum-shift dashboard")
def shift(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> str:
    meta = _meta(data, sid)
    return data.page(sid, "shift", lambda: pages.shift_page(data.report(sid, meta["metric"]), meta))


@router.get("/sweeps/{sweep_id}/diagnostics", response_class=HTMLResponse,
            summary="Diagnostics dashboard (Hessian conditioning, loss/energy ratio, coordinate checks)")
def diagnostics(sid: str = Depends(sweep_id), data: SweepData = Depends(get_data)) -> str:
    meta = _meta(data, sid)
    names = data.store.analyses(sid)
    return data.page(sid, "diagnostics:" + ",".join(names), lambda: pages.diagnostics_page(
        {n: data.store.load_analysis(sid, n) for n in names}, meta))


@router.get("/compare", response_class=HTMLResponse, summary="Two sweeps side by side")
def compare(a: str = Query(...), b: str = Query(...), data: SweepData = Depends(get_data)) -> str:
    for sid in (a, b):
        if not data.exists(sid):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no sweep {sid!r}")
    ma, mb = _meta(data, a), _meta(data, b)
    return pages.compare_page(data.report(a, ma["metric"]), data.report(b, mb["metric"]), ma, mb)
