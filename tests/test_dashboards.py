"""Dashboards: figures from synthetic runs tables / reports, and offline HTML pages."""

from __future__ import annotations

import html
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import dashboards as D
from mutransfer.report import format_report, optimum_shift_report

WIDTHS = (32, 64, 128)
DEPTHS = (2, 4)
ETAS = (1e-3, 1e-2, 1e-1, 5e-1)
BETAS = (1e-1, 5e-1, 1.0, 5.0, 10.0)
SEEDS = (0, 1)
EVIL = "<script>alert(1)</script>"


def make_runs(
    widths=WIDTHS, depths=DEPTHS, etas=ETAS, betas=BETAS, seeds=SEEDS, *, bp=True,
    parametrization="mupc", shift=0.0, rng_seed=0,
) -> pd.DataFrame:
    """Loss bowl in (log10 eta, log10 beta) with its optimum at eta=5e-2 (moved by ``shift``
    decades per doubling of width), beta≈1.6; eta=5e-1 with beta=10 diverges (both seeds)."""
    rng = np.random.default_rng(rng_seed)
    rows = []

    def add(alg, par, w, d, e, b, s):
        le = math.log10(e) + 1.3 - shift * math.log2(w / widths[0])
        lb = 0.0 if b is None else math.log10(b) - 0.2
        loss = 0.1 * (1 + le**2 + 0.5 * lb**2) * (1 + 0.01 * rng.standard_normal())
        status = "ok"
        if e >= 0.5 and b is not None and b >= 10:
            status, loss = "diverged", float("nan")
        rows.append(dict(
            sweep_id="s1", run_id=f"{alg}-{par}-w{w}-d{d}-{e:g}-{b}-{s}", cell_id=f"{alg}-{par}-w{w}-d{d}",
            algorithm=alg, parametrization=par, width=w, depth=d, activation="tanh", dataset="fashion_mnist",
            weight_lr=e, activity_lr=np.nan if b is None else b, seed=s, status=status, min_train_loss=loss,
            final_train_loss=loss * 1.1, best_test_acc=0.9 - loss, final_test_acc=0.89 - loss, steps=100,
            wall_s=1.0, diverged_step=50 if status == "diverged" else -1,
        ))

    for w in widths:
        for d in depths:
            for e in etas:
                for s in seeds:
                    for b in betas:
                        add("pc", parametrization, w, d, e, b, s)
                    if bp:
                        add("bp", "sp", w, d, e, None, s)
    return pd.DataFrame(rows)


def make_curves(runs: pd.DataFrame, n_steps: int = 6) -> pd.DataFrame:
    rows = []
    for r in runs.itertuples():
        for k in range(n_steps):
            loss = float("nan") if (r.status == "diverged" and k > 2) else 1.0 / (k + 1) + r.weight_lr
            rows.append(dict(sweep_id="s1", run_id=r.run_id, step=10 * k, epoch=0, train_loss=loss,
                             energy_start=loss, energy_end=loss, test_loss=np.nan,
                             test_acc=0.5 + 0.05 * k if k % 2 == 0 else np.nan))
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def runs():
    return make_runs()


@pytest.fixture(scope="module")
def report(runs):
    return optimum_shift_report(runs, n_bootstrap=20)


def roles(fig: go.Figure, role: str) -> list:
    return [t for t in fig.data if (t.meta or {}).get("role") == role]


def titles(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def is_empty(fig: go.Figure, text: str = D.EMPTY_TEXT) -> bool:
    return any(text in (a.text or "") for a in fig.layout.annotations)


def analysis_index(report, axis, **group):
    for i, a in enumerate(report["analyses"]):
        if a["axis"] == axis and all(a["group"].get(k) == v for k, v in group.items()):
            return i
    raise LookupError((axis, group))


# --------------------------------------------------------------------------- transfer contours


def test_transfer_contours_width_and_depth_rows(report):
    fig = D.transfer_contours(report)  # default: the pc (2-D) width analysis + its depth companion
    contours = [t for t in fig.data if t.type == "contour"]
    assert len(contours) == len(WIDTHS) + len(DEPTHS)  # one per panel
    assert {t.type for t in roles(fig, "surface")} == {"contour"}
    # One shared colour scale: identical zmin/zmax/levels everywhere, exactly one colorbar.
    assert len({(t.zmin, t.zmax) for t in contours}) == 1
    assert len({(t.contours.start, t.contours.end, t.contours.size) for t in contours}) == 1
    assert sum(bool(t.showscale) for t in contours) == 1
    zs = np.concatenate([np.asarray(t.z, dtype=float).ravel() for t in contours])
    zs = zs[np.isfinite(zs)]
    assert contours[0].zmin == pytest.approx(zs.min()) and contours[0].zmax == pytest.approx(zs.max())
    # Panel titles, width row first.
    t = titles(fig)
    assert [x for x in t if x.startswith(("N =", "H ="))] == ["N = 32", "N = 64", "N = 128", "H = 2", "H = 4"]
    # Every panel has its own axes, its optimum and the base optimum.
    panels = {(c.xaxis, c.yaxis) for c in contours}
    assert len(panels) == 5
    for role in ("optimum", "base_optimum"):
        tr = roles(fig, role)
        assert len(tr) == 5 and {(x.xaxis, x.yaxis) for x in tr} == panels
    assert roles(fig, "optimum")[0].marker.symbol != roles(fig, "base_optimum")[0].marker.symbol
    # Diverged points: marker traces with one point per diverged grid point, blank in the surface.
    chosen = [report["analyses"][i] for i in fig.layout.meta["analyses"]]
    n_inf = sum(v == "inf" for a in chosen for s in a["surfaces"] for row in s["values"] for v in row)
    div = roles(fig, "diverged")
    assert n_inf == 5 and sum(len(d.x) for d in div) == n_inf
    assert all(d.marker.symbol.startswith("x") for d in div)
    # eta=5e-1 (y=log10 .5), beta=10 (x=1) is not coloured: NaN in z.
    c0 = contours[0]
    i = list(np.round(c0.y, 6)).index(round(math.log10(0.5), 6))
    j = list(np.round(c0.x, 6)).index(1.0)
    assert np.isnan(float(np.asarray(c0.z, dtype=float)[i, j]))
    # Base optimum of the width row sits at the N = 32 optimum in every width panel.
    w_opt = report["analyses"][fig.layout.meta["analyses"][0]]["sizes"][0]
    b = roles(fig, "base_optimum")[0]
    assert b.y[0] == pytest.approx(math.log10(w_opt["eta_star"]))
    assert b.x[0] == pytest.approx(math.log10(w_opt["beta_star"]))
    fig.to_json()


def test_transfer_contours_selection(report):
    i = analysis_index(report, "depth", algorithm="pc", width=64)
    fig = D.transfer_contours(report, analysis_index=i, companion=False)
    assert [x for x in titles(fig) if x.startswith(("N =", "H ="))] == ["H = 2", "H = 4"]
    assert len([t for t in fig.data if t.type == "contour"]) == 2
    heat = D.transfer_contours(report, group={"algorithm": "pc", "depth": 4}, kind="heatmap")
    assert {t.type for t in roles(heat, "surface")} == {"heatmap"}
    with pytest.raises(IndexError):
        D.transfer_contours(report, analysis_index=99)
    assert is_empty(D.transfer_contours(report, group={"algorithm": "tp"}), "no analysis matches")


def test_transfer_contours_bp_draws_lines(report):
    fig = D.transfer_contours(report, group={"algorithm": "bp"})
    assert not [t for t in fig.data if t.type in ("contour", "heatmap")]
    lines = roles(fig, "surface")
    assert len(lines) == len(WIDTHS) + len(DEPTHS)
    assert all(t.type == "scatter" and "lines" in t.mode for t in lines)
    assert len(roles(fig, "base_optimum")) == 5 and len(roles(fig, "optimum")) == 5
    assert not roles(fig, "diverged")


def test_transfer_contours_partial_sweep():
    runs = make_runs(bp=False)
    # Sweep still running: depth 4 at width 128 never started, some points missing at width 64,
    # every run at (width 128, depth 2) diverged.
    runs = runs[~((runs.width == 128) & (runs.depth == 4))]
    runs = runs[~((runs.width == 64) & (runs.weight_lr == 1e-3))]
    m = (runs.width == 128) & (runs.depth == 2)
    runs.loc[m, "status"] = "diverged"
    runs.loc[m, "min_train_loss"] = np.nan
    rep = optimum_shift_report(runs, n_bootstrap=10)
    i = analysis_index(rep, "width", algorithm="pc", depth=4)
    fig = D.transfer_contours(rep, analysis_index=i)
    t = titles(fig)
    assert "N = 128" in t and "no runs yet" in t  # missing size gets an empty panel
    fig2 = D.transfer_contours(rep, analysis_index=analysis_index(rep, "width", depth=2), companion=False)
    assert "no finite optimum" in titles(fig2)
    assert len(roles(fig2, "optimum")) == 2  # widths 32, 64 only
    div = roles(fig2, "diverged")
    assert sum(len(d.x) for d in div) == 1 + 1 + len(ETAS) * len(BETAS)
    for f in (fig, fig2, D.optimum_shift(rep, i), D.comparison(rep, rep)):
        f.to_json()


def test_single_size_and_empty_inputs():
    one = make_runs(widths=(64,), depths=(4,))
    rep = optimum_shift_report(one, n_bootstrap=10)
    assert rep["analyses"] == []
    empty_rep = optimum_shift_report(one.iloc[:0])
    figs = [
        D.transfer_contours(rep), D.optimum_shift(rep), D.comparison(rep, rep),
        D.transfer_contours(empty_rep), D.optimum_shift(empty_rep), D.comparison(empty_rep, empty_rep),
        D.transfer_contours(None), D.optimum_shift(None),
        D.loss_vs_lr(one.iloc[:0]), D.loss_vs_lr(None),
        D.training_curves(pd.DataFrame()), D.training_curves(None, None),
    ]
    for f in figs:
        assert isinstance(f, go.Figure)
        assert any(a.text for a in f.layout.annotations)
        f.to_json()
    for f in (D.transfer_contours(empty_rep), D.optimum_shift(empty_rep), D.loss_vs_lr(one.iloc[:0]),
              D.training_curves(pd.DataFrame())):
        assert is_empty(f)
    # Only unfinished runs: still "no finished runs yet".
    pending = one.assign(status="running")
    assert is_empty(D.loss_vs_lr(pending))
    # A single size still gives a loss-vs-lr line.
    fig = D.loss_vs_lr(one)
    assert len(roles(fig, "line")) == 1


def test_nan_and_inf_metrics():
    runs = make_runs(bp=False)
    runs.loc[runs.index[:7], "min_train_loss"] = np.inf  # "ok" but non-finite: worst value
    runs.loc[runs.index[7:9], "min_train_loss"] = np.nan
    runs.loc[runs.index[9], "min_train_loss"] = 0.0  # log10 undefined: left blank, not -inf
    rep = optimum_shift_report(runs, n_bootstrap=10)
    for fig in (D.transfer_contours(rep), D.optimum_shift(rep), D.loss_vs_lr(runs),
                D.loss_vs_lr(runs, band="std"), D.comparison(rep, rep)):
        js = fig.to_json()
        assert "Infinity" not in js and "NaN" not in js
    c = [t for t in D.transfer_contours(rep).data if t.type == "contour"]
    assert all(np.isfinite(t.zmin) and np.isfinite(t.zmax) for t in c)


def test_accuracy_metric(runs):
    rep = optimum_shift_report(runs, metric="best_test_acc", n_bootstrap=10)
    fig = D.transfer_contours(rep)
    c = [t for t in fig.data if t.type == "contour"]
    assert c and all(t.reversescale for t in c)
    assert sum(len(d.x) for d in roles(fig, "diverged")) == 5  # "-inf" = diverged for accuracies
    fig2 = D.loss_vs_lr(runs, metric="best_test_acc")
    assert fig2.layout.yaxis.type == "linear"


# --------------------------------------------------------------------------- loss vs lr


def test_loss_vs_lr(runs):
    fig = D.loss_vs_lr(runs, where={"algorithm": "pc", "depth": 2})
    lines = roles(fig, "line")
    assert [t.meta["size"] for t in lines] == list(WIDTHS)
    assert all(len(t.x) == len(ETAS) for t in lines)
    assert np.allclose(lines[0].x, np.log2(ETAS))
    assert len(roles(fig, "band")) == 2 * len(WIDTHS)
    assert fig.layout.yaxis.type == "log"
    # beta fixed at each size's best (1.0 for the synthetic bowl): eta=5e-1 did not diverge there.
    assert "β = 1e0" in lines[0].name and not roles(fig, "diverged")
    # Fixing beta at 10 brings in the diverged eta=5e-1 point: off the line, as an x marker.
    fig10 = D.loss_vs_lr(runs, where={"algorithm": "pc", "depth": 2}, fix_other=9.0)
    assert "β = 1e1" in roles(fig10, "line")[0].name
    assert sum(len(t.x) for t in roles(fig10, "diverged")) == len(WIDTHS)
    assert all(np.isnan(t.y[-1]) for t in roles(fig10, "line"))
    # Along activity lr / depth.
    fb = D.loss_vs_lr(runs, axis="depth", lr="activity_lr", where={"algorithm": "pc", "width": 32})
    assert [t.meta["size"] for t in roles(fb, "line")] == list(DEPTHS)
    assert all(len(t.x) == len(BETAS) for t in roles(fb, "line"))
    # bp has no activity lr.
    assert is_empty(D.loss_vs_lr(runs, lr="activity_lr", where={"algorithm": "bp"}), "no activity lr")
    assert len(roles(D.loss_vs_lr(runs, where={"algorithm": "bp", "depth": 4}), "line")) == len(WIDTHS)
    with pytest.raises(ValueError):
        D.loss_vs_lr(runs, metric="nope")


# --------------------------------------------------------------------------- optimum shift


def test_optimum_shift(report):
    i = analysis_index(report, "width", algorithm="pc", depth=2)
    a = report["analyses"][i]
    fig = D.optimum_shift(report, i)
    for role in ("eta_star", "beta_star"):
        tr = roles(fig, role)
        assert {t.meta["estimate"] for t in tr} == {"grid", "fit"}
        grid = next(t for t in tr if t.meta["estimate"] == "grid")
        key = "eta_star" if role == "eta_star" else "beta_star"
        assert np.allclose(grid.y, [math.log2(e[key]) for e in a["sizes"]])
        assert np.allclose(grid.x, np.log2(WIDTHS))
    bars = roles(fig, "regret")
    assert len(bars) == 1 and bars[0].type == "bar" and len(bars[0].y) == len(WIDTHS)
    assert a["verdict"] in fig.layout.title.text
    assert a["verdict_text"][:30] in fig.layout.title.text
    # bp: no beta panel, just a note.
    j = analysis_index(report, "width", algorithm="bp", depth=2)
    fb = D.optimum_shift(report, j)
    assert not roles(fb, "beta_star") and any("no activity lr" in x for x in titles(fb))


def test_optimum_shift_infinite_regret():
    runs = make_runs(bp=False, depths=(2,))
    base = optimum_shift_report(runs, n_bootstrap=0)["analyses"][0]["sizes"][0]
    m = (runs.width == 128) & (runs.weight_lr == base["eta_star"]) & (runs.activity_lr == base["beta_star"])
    runs.loc[m, "status"] = "diverged"
    rep = optimum_shift_report(runs, n_bootstrap=0)
    assert rep["analyses"][0]["sizes"][-1]["regret"] == "inf"
    fig = D.optimum_shift(rep)
    bar = roles(fig, "regret")[0]
    assert "∞" in bar.text[-1] and np.isfinite(bar.y[-1]) and bar.y[-1] > 0
    assert "does not transfer" in fig.layout.title.text


# --------------------------------------------------------------------------- comparison


def test_comparison_two_sweeps():
    rep_a = optimum_shift_report(make_runs(bp=False, depths=(2,)), n_bootstrap=0)
    rep_b = optimum_shift_report(make_runs(bp=False, depths=(2,), parametrization="sp", shift=1.0), n_bootstrap=0)
    fig = D.comparison(rep_a, rep_b, labels=("μPC", "SP"))
    contours = [t for t in fig.data if t.type == "contour"]
    assert len(contours) == 2 * len(WIDTHS)
    assert len({(t.zmin, t.zmax) for t in contours}) == 1 and sum(bool(t.showscale) for t in contours) == 1
    t = titles(fig)
    assert "μPC: N = 32" in t and "SP: N = 128" in t
    assert len(roles(fig, "regret")) == 2
    assert len(roles(fig, "eta_star")) == 4  # grid + fit for each sweep
    assert rep_a["analyses"][0]["verdict"] in fig.layout.title.text
    assert rep_b["analyses"][0]["verdict"] == "does not transfer"
    assert "does not transfer" in fig.layout.title.text


def test_comparison_within_one_report():
    runs = pd.concat([make_runs(bp=False, depths=(2,)),
                      make_runs(bp=False, depths=(2,), parametrization="sp", shift=0.3)])
    rep = optimum_shift_report(runs, n_bootstrap=0)
    fig = D.comparison(rep, rep)
    ia, ib = fig.layout.meta["analyses"]
    assert ia != ib
    assert {rep["analyses"][ia]["group"]["parametrization"], rep["analyses"][ib]["group"]["parametrization"]} \
        == {"mupc", "sp"}


# --------------------------------------------------------------------------- training curves


def test_training_curves(runs):
    sub = runs[runs.algorithm == "pc"]
    curves = make_curves(sub)
    fig = D.training_curves(curves, sub)
    loss = roles(fig, "train_loss")
    n_cells = sub.cell_id.nunique()
    assert len(loss) == min(n_cells, 12)
    assert fig.layout.yaxis.type == "log"
    assert len(roles(fig, "test_acc")) == len(loss)
    picked = fig.layout.meta["run_ids"]
    best = sub[sub.status == "ok"].sort_values("min_train_loss").groupby("cell_id").head(1)
    assert set(picked) <= set(best.run_id)
    div_id = sub[sub.status == "diverged"].run_id.iloc[0]
    fig2 = D.training_curves(curves, sub, run_ids=[div_id, "not-a-run"], show_test=False)
    assert [t.meta["run_id"] for t in roles(fig2, "train_loss")] == [div_id]
    assert roles(fig2, "train_loss")[0].line.dash == "dash"
    assert len(roles(fig2, "diverged")) == 1 and not roles(fig2, "test_acc")
    assert len(roles(D.training_curves(curves), "train_loss")) == 12  # no runs table
    assert is_empty(D.training_curves(curves, sub, run_ids=["nope"]), "none of the selected runs")


# --------------------------------------------------------------------------- pages


def _script_srcs(page: str) -> list[str]:
    return re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?([^\"' >]+)", page, flags=re.I)


def _check_offline(page: str, plotly_url: str | None = "/static/plotly.min.js"):
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "cdn" not in page.lower()
    srcs = _script_srcs(page)
    assert not [s for s in srcs if "//" in s]
    assert not re.search(r"<(script|link)[^>]+https?://", page, flags=re.I)
    if plotly_url:  # plotly.js first, then the package's own static scripts (served by the app)
        assert srcs[0] == plotly_url and all(s.startswith("/static/dashboards/") for s in srcs[1:])
    assert EVIL not in page


@pytest.fixture(scope="module")
def meta():
    return {"sweep_id": "s1", "name": EVIL, "description": f"desc {EVIL}", "status": "running",
            "runs_done": 40, "runs_total": 288, "error": None, "updated_at": 1.7e9}


def test_plotly_js():
    js = D.plotly_js()
    assert isinstance(js, str) and len(js) > 1_000_000 and "Plotly" in js


def test_contour_page(report, runs, meta):
    page = D.contour_page(report, runs, meta, curves=make_curves(runs[runs.algorithm == "pc"].head(40)))
    _check_offline(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'http-equiv="refresh"' in page  # running sweep reloads itself
    assert page.count('class="plotly-graph-div"') >= 4
    assert "Plotly.newPlot" in page
    finished = D.contour_page(report, runs, {**meta, "status": "finished"}, plotly_url="/assets/plotly.js")
    _check_offline(finished, "/assets/plotly.js")
    assert 'http-equiv="refresh"' not in finished
    # Single size: no analyses, the page still shows the surfaces from the runs table.
    one = make_runs(widths=(64,), depths=(4,), bp=False)
    p1 = D.contour_page(optimum_shift_report(one, n_bootstrap=0), one, {"sweep_id": "x"})
    _check_offline(p1)
    assert '"type":"contour"' in p1
    # Nothing yet.
    p0 = D.contour_page(optimum_shift_report(one.iloc[:0]), one.iloc[:0], {"sweep_id": "x", "status": "queued"})
    _check_offline(p0)
    assert D.EMPTY_TEXT in p0


def test_shift_and_compare_pages(report, meta):
    page = D.shift_page(report, meta)
    _check_offline(page)
    assert page.count('class="plotly-graph-div"') == len(report["analyses"])
    for a in report["analyses"]:
        assert a["verdict"] in page
    cmp_page = D.compare_page(report, report, meta, {"sweep_id": "s2", "name": "other", "status": "finished"})
    _check_offline(cmp_page)
    assert 'class="plotly-graph-div"' in cmp_page and "&lt;script&gt;" in cmp_page
    empty = D.compare_page({}, {}, {}, {})  # no sweeps chosen: the picker alone
    _check_offline(empty, plotly_url=None)
    assert "Compare" in empty and "plotly-graph-div" not in empty


def test_index_page(meta):
    sweeps = [meta, {"sweep_id": "done-1", "name": "ok sweep", "status": "finished", "runs_done": 5,
                     "runs_total": 5, "created_at": 1.7e9}]
    page = D.index_page(sweeps)
    _check_offline(page, plotly_url=None)
    assert [s.split("?")[0] for s in _script_srcs(page)] == ["/static/dashboards/index.js"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    script = D.static_file("index.js").decode()  # the page's script, a static file of the package
    assert "fetch(" in script and "'POST'" in script and '"submit_url": "/sweeps"' in page
    assert "Bearer" in page and 'type="password"' in page and "<textarea" in page
    assert 'id="response"' in page
    assert "/sweeps/done-1/contours" in page and "/sweeps/done-1/report" in page
    assert 'data-status="running"' in page and "cancel" in page
    _check_offline(D.index_page([]), plotly_url=None)
    # Odd ids are URL-encoded in links; javascript: links from meta are neutralised.
    p2 = D.index_page([{"sweep_id": 'a"b/c', "links": {"x": "javascript:alert(1)"}}])
    assert "javascript:" not in p2 and 'a"b' not in p2


def test_report_page(report, meta):
    text = format_report(report)
    page = D.report_page(report, text)
    _check_offline(page, plotly_url=None)
    assert page.count('<table class="sizes">') == len(report["analyses"])
    for a in report["analyses"]:
        assert a["verdict"] in page
    assert html.escape(text.splitlines()[0]) in page
    evil_rep = json.loads(json.dumps(report))
    evil_rep["analyses"][0]["group"]["dataset"] = EVIL
    evil_rep["analyses"][0]["warnings"].append(EVIL)
    p2 = D.report_page(evil_rep, EVIL, sweep_meta=meta)
    _check_offline(p2, plotly_url=None)
    assert 'http-equiv="refresh"' in p2
    assert "Warnings" in p2 and "<li>&lt;script&gt;alert(1)&lt;/script&gt;</li>" in p2
    p3 = D.report_page(optimum_shift_report(pd.DataFrame()), "")
    assert D.EMPTY_TEXT in p3


def test_no_forbidden_imports():
    code = ("import sys, pkgutil, importlib, dashboards; "
            "[importlib.import_module('dashboards.' + m.name) for m in pkgutil.iter_modules(dashboards.__path__)]; "
            "bad = {'sweeps', 'service', 'ray', 'fastapi'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- log axes


def _log_axes(fig: go.Figure):
    lay = fig.layout.to_plotly_json()
    return [(k, v) for k, v in lay.items() if k.startswith(("xaxis", "yaxis")) and v.get("type") == "log"]


def _assert_full_value_ticks(fig: go.Figure, what: str):
    axes = _log_axes(fig)
    assert axes, f"{what}: no log axis"
    for name, ax in axes:
        vals, text = ax.get("tickvals"), ax.get("ticktext")
        assert vals and text and len(vals) == len(text), f"{what}.{name}: log axis without explicit ticks"
        assert list(vals) == sorted(vals)
        for v, t in zip(vals, text):
            assert float(t) == pytest.approx(v, rel=1e-3), f"{what}.{name}: label {t!r} is not the value {v}"


@pytest.mark.parametrize("lo,hi", [(0.05, 3.0), (0.2, 0.9), (1e-5, 10.0), (0.31, 0.35), (1e-9, 1e9),
                                   (2.0, 2.0001), (0.0023, 0.0031), (1.5, 9.0)])
def test_log_ticks_are_full_values(lo, hi):
    vals, text = D.log_ticks(lo, hi)
    assert len(vals) >= 2 or hi / lo < 1.001
    assert all(lo * 0.999 <= v <= hi * 1.001 for v in vals) and vals == sorted(vals)
    for v, t in zip(vals, text):
        assert float(t) == pytest.approx(v, rel=1e-6)
    # Never the bare digits of plotly's minor ticks: below 1, a label always carries its decimal point.
    assert not any(v < 1 and "." not in t and "e" not in t for v, t in zip(vals, text))


def test_every_log_axis_has_full_value_ticks(runs, report):
    pc = runs[runs.algorithm == "pc"]
    two = pd.concat([make_runs(bp=False, depths=(2,)), make_runs(bp=False, depths=(2,), parametrization="sp",
                                                                   shift=0.3)])
    figs = {
        "loss_vs_lr": D.loss_vs_lr(runs, where={"algorithm": "pc", "depth": 2}),
        "lr_transfer": D.lr_transfer(two, where={"algorithm": "pc"}),
        "training_curves": D.training_curves(make_curves(pc.head(30)), pc),
        "run_figure": D.run_figure(make_curves(pc.head(3)), pc, list(pc.run_id.head(2))),
        "coordinate_check": D.coordinate_check_figure(make_coord_check()),
    }
    for what, fig in figs.items():
        _assert_full_value_ticks(fig, what)


# --------------------------------------------------------------------------- μP-style lr figure


def test_lr_transfer_puts_parameterisations_side_by_side():
    two = pd.concat([make_runs(bp=False, depths=(2,)),
                     make_runs(bp=False, depths=(2,), parametrization="sp", shift=0.5)])
    fig = D.lr_transfer(two, where={"algorithm": "pc", "depth": 2})
    assert fig.layout.meta["panels"] == ["mupc", "sp"]
    assert fig.layout.yaxis2.matches == "y"  # shared y: one scale for both parameterisations
    lines = roles(fig, "line")
    assert len(lines) == 2 * len(WIDTHS)
    assert {t.xaxis for t in lines if t.meta["panel"] == "mupc"} == {"x"}
    assert {t.xaxis for t in lines if t.meta["panel"] == "sp"} == {"x2"}
    # One colour per size in both panels, one legend entry per size.
    for w in WIDTHS:
        assert len({t.line.color for t in lines if t.meta["size"] == w}) == 1
    assert sum(bool(t.showlegend) for t in lines) == len(WIDTHS)
    assert len(roles(fig, "band")) == 2 * 2 * len(WIDTHS)  # seed band: upper + lower per line
    assert all(np.allclose(t.x, np.log2(ETAS)) for t in lines)
    # The shifted (sp) optimum moves with width; muPC's stays put.
    best = {(t.meta["panel"], t.meta["size"]): t.x[0] for t in roles(fig, "optimum")}
    assert best[("mupc", 32)] == best[("mupc", 128)] and best[("sp", 32)] != best[("sp", 128)]
    fb = D.lr_transfer(two, lr="activity_lr", where={"algorithm": "pc"})
    assert len(roles(fb, "line")) == 2 * len(WIDTHS) and all(len(t.x) == len(BETAS) for t in roles(fb, "line"))
    assert is_empty(D.lr_transfer(two.iloc[:0]))
    assert is_empty(D.lr_transfer(make_runs(), lr="activity_lr", where={"algorithm": "bp"}), "no activity lr")


# --------------------------------------------------------------------------- coordinate check


def make_coord_check(widths=(16, 32, 64), depth=3, steps=(0, 1, 2, 3)) -> pd.DataFrame:
    """Coordinate-check rows as mutransfer.diagnostics.coordinate_check writes them: under mupc the
    update |Δz| is flat in width, under sp it grows ∝ N."""
    rows = []
    for par, grow in (("mupc", 0.0), ("sp", 1.0)):
        for w in widths:
            for t in steps:
                for layer in range(1, depth + 2):
                    dz = 0.0 if t == 0 else 0.01 * t * layer * (w / widths[0]) ** grow
                    rows.append(dict(parametrization=par, algorithm="pc", activation="tanh", residual=True, width=w,
                                     depth=depth, layer=layer, kind="output" if layer == depth + 1 else "hidden",
                                     step=t, mean_abs_z=0.5, mean_abs_dz=dz, train_loss=np.nan))
    return pd.DataFrame(rows)


def test_coordinate_check_is_log_log_per_step():
    df = make_coord_check()
    fig = D.coordinate_check_figure(df)
    assert fig.layout.meta["steps"] == [1, 2, 3] and fig.layout.meta["rows"] == ["parametrization=mupc",
                                                                                  "parametrization=sp"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert list(fig.layout.xaxis.tickvals) == [16, 32, 64]
    dz = roles(fig, "dz")
    assert len(dz) == 2 * 3 * 4  # rows × steps × layers (3 hidden + output)
    assert {t.meta["step"] for t in dz} == {1, 2, 3}
    flat = [t for t in dz if t.meta["row"] == "parametrization=mupc"]
    grow = [t for t in dz if t.meta["row"] == "parametrization=sp"]
    assert all(np.ptp(np.log(t.y)) < 1e-9 for t in flat) and all(t.y[-1] / t.y[0] == pytest.approx(4) for t in grow)
    assert sum(bool(t.showlegend) for t in dz) == 4  # one legend entry per layer
    assert [t for t in dz if t.meta["layer"] == 4][0].line.dash == "dash"  # the output layer
    # Every step up to eight (as mup draws them); beyond, eight spread over the run, the last included.
    eight = D.coordinate_check_figure(make_coord_check(steps=tuple(range(9))))
    assert eight.layout.meta["steps"] == list(range(1, 9))
    many = D.coordinate_check_figure(make_coord_check(steps=tuple(range(21))))
    assert len(many.layout.meta["steps"]) == 8 and many.layout.meta["steps"][-1] == 20
    assert is_empty(D.coordinate_check_figure(make_coord_check(steps=(0,))), "only the initialisation")
    assert is_empty(D.coordinate_check_figure(df.iloc[:0]), "no coordinate check yet")
    page = D.diagnostics_page({"0-coordinate_check": df}, {"sweep_id": "s1"})
    _check_offline(page)
    assert page.count('class="plotly-graph-div"') == 2  # Δz panels + |z| at initialisation


# --------------------------------------------------------------------------- compare every group


def test_compare_pairs_every_group():
    runs = pd.concat([make_runs(depths=(2,)), make_runs(bp=False, depths=(2,), parametrization="sp", shift=0.4)])
    rep_a = optimum_shift_report(runs, n_bootstrap=0)
    rep_b = optimum_shift_report(runs.assign(min_train_loss=runs.min_train_loss * 1.1), n_bootstrap=0)
    n = len(rep_a["analyses"])
    assert n == 3  # pc/mupc, pc/sp, bp/sp (width)
    pairs = D.comparison_pairs(rep_a, rep_b)
    assert sorted(pairs) == [(i, i) for i in range(n)]  # same groups matched exactly
    # Within one sweep: every group appears, never against itself.
    same = D.comparison_pairs(rep_a, rep_a, same_sweep=True)
    assert all(i != j for i, j in same) and {i for p in same for i in p} == set(range(n))
    page = D.compare_page(rep_a, rep_b, {"sweep_id": "a-00000001"}, {"sweep_id": "b-00000002"},
                          choices=[{"id": "a-00000001", "name": "A"}, {"id": "b-00000002", "name": "B"}])
    _check_offline(page)
    assert page.count('class="plotly-graph-div"') == n
    assert '<form id="compare"' in page and 'name="a"' in page and 'name="b"' in page
    # Title above the legend above the plots: the legend sits in the top margin, below the title.
    fig = D.comparison(rep_a, rep_b, index_a=0, index_b=0)
    lay = fig.layout
    assert lay.title.yref == "container" and lay.title.yanchor == "top" and lay.legend.yanchor == "bottom"
    assert lay.legend.y > 1 and lay.margin.t >= 21 * (1 + lay.title.text.count("<br>")) + 24 + 26


# --------------------------------------------------------------------------- verdict badges


def _with_verdicts(report, *verdicts):
    """The typed report with its first analyses' verdicts and reasons replaced (the pages draw what
    the report says, whatever it says)."""
    import dataclasses

    from mutransfer.report import Report

    rep = Report.from_json(report)
    analyses = [dataclasses.replace(a, verdict=v, verdict_text=f"{v}: numbers", reasons=tuple(r))
                for a, (v, r) in zip(rep.analyses, verdicts)]
    return rep.with_(analyses=tuple(analyses), provisional=None)


def test_verdict_badges_new_contract(report):
    from mutransfer.report import Provisional, Reason, ReasonCode, Verdict

    rep = _with_verdicts(
        report,
        (Verdict.TRANSFERS, []),
        (Verdict.DOES_NOT_TRANSFER, [Reason(ReasonCode.REGRET, "regret 22% at N=64", size=64, criterion="regret",
                                            value=0.22, ci=(0.1, 0.3), decisive=True, unit="relative")]),
        (Verdict.INCONCLUSIVE, [Reason(ReasonCode.OPTIMUM_ON_EDGE, "η low at N=32", lr="weight_lr", side="low",
                                       sizes=(32,), values=(1e-3,), extend="below"),
                                Reason(ReasonCode.TOO_FEW_SEEDS, "1 seed", sizes=(32,), n_seeds=1)]),
    )
    page = D.report_page(rep, sweep_meta={"sweep_id": "s-00000001", "status": "running"})
    for cls in ("transfers", "does-not-transfer", "inconclusive"):
        assert f'class="badge {cls}"' in page
    assert 'class="badge provisional"' not in page  # the report says finished (provisional: null)
    assert 'data-code="optimum_on_edge"' in page and 'data-code="too_few_seeds"' in page
    assert 'title="regret 22% at N=64"' in page
    n = len(rep.analyses)
    rep = rep.with_(provisional=Provisional(cells_done=3, cells_total=6))
    page = D.report_page(rep, sweep_meta={"sweep_id": "s-00000001", "status": "finished"})
    # banner + list + sections
    assert page.count('class="badge provisional"') == 1 + 2 * n and "provisional 3/6 cells" in page
    assert "PROVISIONAL (3/6 cells finished)" in page
    assert "tentative" in page
    # the same typed report and its JSON draw the same page
    assert D.report_page(rep.to_json(), sweep_meta={"sweep_id": "s-00000001"}) == D.report_page(
        rep, sweep_meta={"sweep_id": "s-00000001"})


def test_without_a_report_the_sweeps_progress_says_provisional():
    """A sweep with no finished runs has no report yet: its status and cells say it is unfinished."""
    running = {"sweep_id": "s-00000001", "status": "running",
               "cells": [{"status": "done"}, {"status": "finished"}, {"status": "running"}, {"status": "queued"}]}
    p = D.provisional_of(None, running)
    assert (p.done, p.total, p.unit) == (2, 4, "cells")
    assert "provisional 2/4 cells" in D.verdict_badge("inconclusive", p)
    assert D.provisional_of(None, {**running, "status": "finished"}) is None
    assert D.provisional_of(None, {"status": "running", "runs_done": 3, "runs_total": 8}).unit == "runs"
    page = D.overview_page(None, running)
    assert "PROVISIONAL (2/4 cells finished)" in page


# --------------------------------------------------------------------------- runs table and run page


def test_runs_table_payload_round_trips(runs):
    p = D.table_payload(runs, "best_test_acc")
    assert p["n"] == len(runs) and p["metric"] == "best_test_acc"
    assert {"activation": "tanh", "dataset": "fashion_mnist"}.items() <= p["fixed"].items()  # constant columns
    cols = {c["name"]: c for c in p["columns"]}
    rc = cols["run_id"]
    ids = [rc["cells"][k] + "-" + s for k, s in zip(rc["cell_codes"], rc["suffix"])] if "suffix" in rc else rc["ids"]
    assert ids == list(runs.run_id)
    st = cols["status"]
    assert [st["dict"][k] for k in st["codes"]] == list(runs.status)
    loss = np.array([np.nan if v is None else float(v) for v in cols["min_train_loss"]["values"]], dtype=float)
    bad = runs.status.isin(["diverged", "failed"]).to_numpy()
    assert bad.any() and np.isinf(loss[bad]).all()  # a diverged run reads +inf, as the report counts it
    assert np.allclose(loss[~bad], runs.min_train_loss[~bad], rtol=1e-4, equal_nan=True)
    assert cols["weight_lr"]["kind"] == "lr" and cols["width"]["kind"] == "int"
    page = D.runs_table_page(runs, {"sweep_id": "s-00000001", "name": EVIL}, metric="best_test_acc")
    _check_offline(page, plotly_url=None)
    assert '<table id="runs">' in page and 'id="page-data"' in page
    assert 'data-tab="table" class="active"' in page and 'name="metric"' in page
    empty = D.runs_table_page(runs.iloc[:0], {"sweep_id": "s-00000001"})
    assert '"n": 0' in empty


def test_run_page(runs):
    pc = runs[runs.algorithm == "pc"]
    rid = pc.run_id.iloc[5]
    rec = pc.iloc[5].to_dict()
    page = D.run_page(rec, make_curves(pc[pc.run_id == rid]), {"sweep_id": "s-00000001", "name": EVIL}, runs=pc)
    _check_offline(page)
    assert f"run {rid}" in page and 'id="run-settings"' in page
    assert f"seed {1 - rec['seed']}" in page and "η ↑" in page and "β ↑" in page  # grid neighbours, other seed
    assert "overlay every seed" in page and "also=" in page
    fig = D.run_figure(make_curves(pc[pc.run_id == rid]), pc, [rid])
    assert fig.layout.meta["panels"] == ["loss", "energy", "test accuracy"]
    assert D.run_figure(None, pc, [rid]).layout.meta["empty"]


def test_pages_link_every_view_and_carry_the_metric(report, runs):
    meta = {"sweep_id": "s-00000001", "name": "s", "status": "finished"}
    rep = optimum_shift_report(runs, metric="best_test_acc", n_bootstrap=0)
    pages = {"contours": D.contour_page(rep, runs, meta), "shift": D.shift_page(rep, meta),
             "report": D.report_page(rep, "text", sweep_meta=meta),
             "table": D.runs_table_page(runs, meta, metric="best_test_acc")}
    for active, page in pages.items():
        for view in ("contours", "shift", "diagnostics", "table", "report"):
            assert f'data-tab="{view}"' in page
        assert f'data-tab="{active}" class="active"' in page
        assert '<option value="best_test_acc" selected>' in page  # the metric selector
        assert "/sweeps/s-00000001/contours?metric=best_test_acc" in page  # the metric travels with the tabs
        assert "/sweeps/s-00000001/diagnostics?" not in page
    assert "Training curves" not in pages["contours"]
    assert "parameterisations side by side" in pages["contours"]
    # Export buttons under every figure.
    assert pages["contours"].count('data-export="svg"') == pages["contours"].count('class="plotly-graph-div"')


def test_error_page():
    page = D.error_page(404, f"no sweep {EVIL}", details=[{"field": "metric", "msg": EVIL}, "plain"],
                        links={"runs table": "/sweeps/x/table", "bad": "javascript:alert(1)"})
    _check_offline(page, plotly_url=None)
    assert "404 — Not found" in page and 'data-status="404"' in page and "javascript:" not in page
    assert "<code>metric</code>" in page


def test_report_and_shift_pages_show_cis_views_and_units(runs):
    from dashboards.verdicts import REASONS as LABELS
    from mutransfer.report import REASONS

    assert set(REASONS) <= set(LABELS)  # every reason code the report emits has a label
    pc = runs[(runs.algorithm == "pc") & (runs.depth == 2)].copy()
    pc["min_train_loss_25pct"] = pc["min_train_loss"] * 2
    pc["min_train_loss_50pct"] = pc["min_train_loss"] * 1.5
    rep = optimum_shift_report(pc, n_bootstrap=20, cells_total=4)
    meta = {"sweep_id": "s-00000001", "name": "s", "status": "running"}
    page = D.report_page(rep, format_report(rep), sweep_meta=meta)
    assert "PROVISIONAL (3/4 cells finished)" in page and 'class="by-base"' in page and 'class="by-budget"' in page
    assert "regret [CI]" in page and "steps η" in page and "within 1 grid step" in page
    fig = D.optimum_shift(rep)
    assert any(t.meta.get("role") == "tolerance" and "grid step" in t.name for t in fig.data)
    assert roles(fig, "regret")[0].error_y.visible
    acc = optimum_shift_report(pc, metric="best_test_acc", n_bootstrap=0)
    shift = D.shift_page(acc, {**meta, "status": "finished"})
    assert " pp" in shift and "accuracy points" in D.report_page(acc, "")
    assert "by budget: by_budget is only available" in shift
