"""Dashboard pages (plotly, fully offline: plotly.js is served by this app).

Every route here answers HTML, errors included: an unknown sweep or run is an HTML 404 page and a
bad query (an unknown ``metric``, a missing ``a``/``b`` for ``/compare``) an HTML 422 page, each
saying what was wrong and linking back (:class:`HTMLErrorRoute`). Large pages and plotly.js are sent
gzip-compressed to clients that accept it.
"""

from __future__ import annotations

import functools
import gzip
from typing import Callable

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

import dashboards as D
from dashboards.html import run_url
from mutransfer.report import METRICS, Report, format_report
from service.data import SweepData
from service.deps import get_data

GZIP_MIN_BYTES = 32_000
MAX_OVERLAY = 12  # runs overlaid on one run page


class HTMLErrorRoute(APIRoute):
    """A route whose errors are HTML pages (:func:`dashboards.error_page`), not JSON bodies."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as e:
                details = [{"field": ".".join(str(p) for p in err.get("loc", []) if p not in ("query", "path")),
                            "msg": str(err.get("msg", ""))} for err in e.errors()]
                return HTMLResponse(D.error_page(422, "The address has a bad or missing parameter.", details=details),
                                    status.HTTP_422_UNPROCESSABLE_CONTENT)
            except HTTPException as e:
                detail = e.detail if isinstance(e.detail, str) else "; ".join(
                    str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in (e.detail or []))
                links = getattr(e, "links", None) or {"all sweeps": "/"}
                return HTMLResponse(D.error_page(e.status_code, detail, links=links), e.status_code,
                                    headers=e.headers)
        return route


router = APIRouter(tags=["dashboards"], route_class=HTMLErrorRoute)


class PageError(HTTPException):
    """An HTTP error with links for its HTML page."""

    def __init__(self, code: int, detail: str, links: dict[str, str] | None = None):
        super().__init__(code, detail)
        self.links = links


def html(request: Request, text: str) -> Response:
    """An HTML response, gzip-compressed when large and the client accepts gzip."""
    body = text.encode()
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(gzip.compress(body, 6), media_type="text/html; charset=utf-8",
                        headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return HTMLResponse(body, headers={"Vary": "Accept-Encoding"})


@functools.lru_cache(maxsize=1)
def _plotly_js() -> tuple[bytes, bytes]:
    raw = D.plotly_js().encode()
    return raw, gzip.compress(raw, 9)


@router.get("/static/plotly.min.js", include_in_schema=False)
def plotly_js(request: Request) -> Response:
    raw, packed = _plotly_js()
    headers = {"Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(packed, media_type="application/javascript", headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type="application/javascript", headers=headers)


STATIC_TYPES = {".js": "application/javascript", ".css": "text/css; charset=utf-8"}


@router.get("/static/dashboards/{name}", include_in_schema=False)
def dashboard_static(name: str) -> Response:
    """The pages' own CSS and JavaScript (``dashboards/static``), versioned by ``?v=`` in the pages."""
    try:
        body = D.static_file(name)
    except KeyError:
        raise PageError(status.HTTP_404_NOT_FOUND, f"There is no static file {name!r}.") from None
    kind = STATIC_TYPES.get(name[name.rfind("."):], "application/octet-stream")
    return Response(body, media_type=kind, headers={"Cache-Control": "public, max-age=86400"})


# --------------------------------------------------------------------------- dependencies


def page_sweep(sweep_id: str, data: SweepData = Depends(get_data)) -> str:
    """A known sweep id, else an HTML 404 naming it."""
    if not data.exists(sweep_id):
        known = _sweep_ids(data)[:10]
        raise PageError(status.HTTP_404_NOT_FOUND, f"There is no sweep {sweep_id!r}. Sweep ids look like "
                        "<name>-<8 hex digits>, e.g. quickstart-47e8de33; the index lists every sweep.",
                        links={"all sweeps": "/", **{k: f"/sweeps/{k}" for k in known}})
    return sweep_id


def page_metric(metric: str | None = Query(None, description=f"one of {', '.join(METRICS)} "
                                                              "(default: the sweep's spec metric)")) -> str | None:
    if metric is not None and metric not in METRICS:
        raise PageError(status.HTTP_422_UNPROCESSABLE_CONTENT,
                        f"metric: unknown {metric!r}; choose one of {', '.join(METRICS)}.")
    return metric


def _meta(data: SweepData, sid: str) -> dict:
    st = data.status(sid)
    return {**st, "status_url": f"/sweeps/{sid}", "report_url": f"/sweeps/{sid}/report"}


def _sweep_ids(data: SweepData) -> list[str]:
    ids = [r["sweep_id"] for r in data.registry.sweeps()]
    return ids + [s for s in data.store.sweeps() if s not in ids]


# --------------------------------------------------------------------------- pages


@router.get("/", response_class=HTMLResponse, summary="Index: sweeps, verdicts, compare picker, submit form")
def index(request: Request, data: SweepData = Depends(get_data)) -> Response:
    metas = [data.status(s) for s in _sweep_ids(data)]
    reports = {m["id"]: data.typed_report(m["id"], m["metric"]) for m in metas if m.get("runs_done")}
    return html(request, D.index_page(metas, reports=reports))


@router.get("/sweeps/{sweep_id}/contours", response_class=HTMLResponse,
            summary="Transfer contours, metric vs log2 lr per size, training curves")
def contours(request: Request, sid: str = Depends(page_sweep), metric: str | None = Depends(page_metric),
             data: SweepData = Depends(get_data)) -> Response:
    meta = _meta(data, sid)
    metric = metric or meta["metric"]

    def render() -> str:
        return D.contour_page(data.typed_report(sid, metric), data.runs(sid), meta,
                              curves_of=lambda ids: data.curves(sid, run_ids=ids))
    return html(request, data.page(sid, f"contours:{metric}", render))


@router.get("/sweeps/{sweep_id}/shift", response_class=HTMLResponse, summary="Optimum-shift dashboard")
def shift(request: Request, sid: str = Depends(page_sweep), metric: str | None = Depends(page_metric),
          data: SweepData = Depends(get_data)) -> Response:
    meta = _meta(data, sid)
    metric = metric or meta["metric"]
    def render() -> str:
        from dashboards.decide_panel import decide_panel, inject

        report = data.typed_report(sid, metric)
        return inject(D.shift_page(report, meta, runs=data.runs(sid)),
                      decide_panel(report, sid, data.decide_offer(sid)))
    return html(request, data.page(sid, f"shift:{metric}", render))


@router.get("/sweeps/{sweep_id}/diagnostics", response_class=HTMLResponse,
            summary="Diagnostics dashboard (Hessian conditioning, loss/energy ratio, coordinate checks)")
def diagnostics(request: Request, sid: str = Depends(page_sweep), data: SweepData = Depends(get_data)) -> Response:
    meta = _meta(data, sid)
    names = data.store.analyses(sid)
    return html(request, data.page(sid, "diagnostics:" + ",".join(names), lambda: D.diagnostics_page(
        {n: data.store.load_analysis(sid, n) for n in names}, meta)))


@router.get("/sweeps/{sweep_id}/table", response_class=HTMLResponse,
            summary="Runs table: every run, sortable and filterable in the browser")
def table(request: Request, sid: str = Depends(page_sweep), metric: str | None = Depends(page_metric),
          data: SweepData = Depends(get_data)) -> Response:
    meta = _meta(data, sid)
    metric = metric or meta["metric"]
    return html(request, data.page(sid, f"table:{metric}", lambda: D.runs_table_page(data.runs(sid), meta,
                                                                                     metric=metric)))


@router.get("/sweeps/{sweep_id}/runs/{run_id}", response_class=HTMLResponse,
            summary="One run: settings, metrics, loss / energy / test curves over steps")
def run(request: Request, run_id: str, sid: str = Depends(page_sweep), data: SweepData = Depends(get_data),
        also: list[str] = Query([], description="more run ids to overlay (at most 12)")) -> Response:
    runs = data.runs(sid)
    row = runs.loc[runs["run_id"] == run_id] if "run_id" in runs.columns else runs.iloc[:0]
    if row.empty:
        raise PageError(status.HTTP_404_NOT_FOUND, f"Sweep {sid!r} has no finished run {run_id!r} (runs appear "
                        "when their cell finishes).", links={"runs table": f"/sweeps/{sid}/table", "all sweeps": "/"})
    known = set(runs["run_id"])
    unknown = [a for a in dict.fromkeys(also) if a not in known]
    if unknown:
        raise PageError(status.HTTP_404_NOT_FOUND, f"Sweep {sid!r} has no finished run {unknown[0]!r} to overlay "
                        f"(also=); drop it from the address.",
                        links={"this run alone": run_url(sid, run_id), "runs table": f"/sweeps/{sid}/table"})
    also = [a for a in dict.fromkeys(also) if a != run_id][:MAX_OVERLAY]
    curves = data.curves(sid, run_ids=[run_id, *also])
    rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.iloc[0].to_dict().items()}
    return html(request, D.run_page(rec, curves, _meta(data, sid), runs=runs, also=also))


@router.get("/compare", response_class=HTMLResponse, summary="Two sweeps (or two settings of one) side by side")
def compare(request: Request, a: str | None = Query(None, description="sweep id A (none: the picker)"),
            b: str | None = Query(None, description="sweep id B (may equal A: compares its settings)"),
            metric: str | None = Depends(page_metric), data: SweepData = Depends(get_data)) -> Response:
    choices = [data.status(s) for s in _sweep_ids(data)]
    if not a or not b:
        return html(request, D.compare_page(None, None, {}, {}, choices=choices, picked=(a, b)))
    for sid in (a, b):
        page_sweep(sid, data)
    ma, mb = _meta(data, a), _meta(data, b)
    metric = metric or ma["metric"]
    return html(request, D.compare_page(data.typed_report(a, metric), data.typed_report(b, metric), ma, mb, choices=choices))


def overview_html(request: Request, data: SweepData, sid: str) -> Response:
    """The sweep's overview page (``GET /sweeps/{id}`` from a browser, or with ``?format=html``)."""
    meta = _meta(data, sid)
    report = data.typed_report(sid, meta["metric"]) if meta.get("runs_done") else None
    spec = data.row(sid).get("spec") or _saved_spec(data, sid)
    base = str(request.base_url).rstrip("/")
    return html(request, data.page(sid, f"overview:{base}", lambda: D.overview_page(report, meta, spec=spec,
                                                                                     base_url=base)))


def _saved_spec(data: SweepData, sid: str) -> dict | None:
    from sweeps.bookkeeping import load_saved_spec

    spec = load_saved_spec(data.store, sid)
    return spec.canonical() if spec is not None else None


@router.get("/docs", include_in_schema=False)
def docs() -> Response:
    """Swagger UI from this server (its assets ship with the ``fastapi-swagger`` package): no CDN."""
    return get_swagger_ui_html(openapi_url="/openapi.json", title="mutransfer — API",
                               swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                               swagger_css_url="/static/swagger/swagger-ui.css",
                               swagger_favicon_url="/static/swagger/favicon-32x32.png")


SWAGGER_FILES = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
                 "favicon-32x32.png": "image/png"}


@functools.lru_cache(maxsize=None)
def _swagger_file(name: str) -> bytes:
    from importlib.resources import files

    return files("fastapi_swagger").joinpath("resources", name).read_bytes()


@router.get("/static/swagger/{name}", include_in_schema=False)
def swagger_static(name: str) -> Response:
    if name not in SWAGGER_FILES:
        raise PageError(status.HTTP_404_NOT_FOUND, f"There is no Swagger UI file {name!r}.")
    return Response(_swagger_file(name), media_type=SWAGGER_FILES[name],
                    headers={"Cache-Control": "public, max-age=86400"})


def report_html(data: SweepData, sid: str, report: Report) -> str:
    """The HTML report page of a sweep (the report route's ``format=html``), inside the sweep's tabs."""
    return D.report_page(report, format_report(report), sweep_meta=_meta(data, sid))
