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
        D.transfer_contours(None), D.optimum_shift({}),
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
    if plotly_url:
        assert srcs == [plotly_url]
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
    empty = D.compare_page({}, {}, {}, {})
    _check_offline(empty)


def test_index_page(meta):
    sweeps = [meta, {"sweep_id": "done-1", "name": "ok sweep", "status": "finished", "runs_done": 5,
                     "runs_total": 5, "created_at": 1.7e9}]
    page = D.index_page(sweeps)
    _check_offline(page, plotly_url=None)
    assert _script_srcs(page) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "fetch(" in page and "'POST'" in page and '"/sweeps"' in page
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
    assert page.count("<table>") == len(report["analyses"])
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
    code = ("import sys, dashboards, dashboards.figures, dashboards.pages; "
            "bad = {'sweeps', 'service', 'ray', 'fastapi'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
