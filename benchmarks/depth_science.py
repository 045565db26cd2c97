"""The μPC paper's depth results at CPU scale (issue 12; docs/reference/claims.md, claims 2–4), from stored sweeps.

Reads the runs / curves tables the depth specs wrote (run them first with
``mutransfer run sweeps/specs/depth_*.yaml --results DIR``) and prints:

  report   the optimum-shift report along depth over every T = H depth sweep together (claim 2:
           tanh residual N = 64, H = 4 … 64, μPC vs SP), from H = 4 and from H = 8;
  t1       claim 4: the same report over the T = 1 sweeps, and the best seed-mean min train loss
           over the lr grid with one inference step vs T = H at each depth (the same η grid; μPC's
           β grid reaches higher at T = 1), as a table and docs/depth_t1_vs_tH.png;
  relu     the H = 8 ReLU lr grid the 128-layer runs were tuned on (seed-mean min train loss);
  d128     claim 3: test accuracy over training of the 128-layer ReLU residual nets (μPC and SP,
           lrs transferred from H = 8; the longest run of each; and μPC with lower weight lrs),
           as a table and docs/depth128_accuracy.png;
  spgrid   standard PC at H = 128 over a lr grid around its H = 8 optimum (is its failure the lrs?);
  dmup     claim 2 for the third parameterisation, depth_mup: the depth-axis report (base H = 4 and
           H = 8), and its base-depth cells against μPC's (depth_mup is μPC at the base depth).

The depth sweeps use one lr grid at H = 4, 8 and, to fit the CPU budget, a grid cut to where
those optima sit at H = 16, 32 (per parameterisation); the report takes each size's argmin over the
points that exist and says how many are missing. Figures are plotly pages rendered to PNG by
headless Chromium (tests/chromium.py; kaleido is not installed here); without Chromium only the
HTML is written.

Usage: python benchmarks/depth_science.py [--results /tmp/DS/results] [--only report,t1,relu,d128,spgrid,dmup]
           [--docs docs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "sweeps" / "specs"
# Claim 2 / 4: the depth sweeps at T = H and their T = 1 twins (same grids).
DEPTH_T_H = ("depth_tanh_h4_8", "depth_tanh_h16_mupc", "depth_tanh_h16_sp", "depth_tanh_h32_mupc",
             "depth_tanh_h32_sp", "depth_tanh_h16_32_sp_base", "depth_tanh_h64_mupc", "depth_tanh_h64_sp")
DEPTH_T_1 = tuple(f"{s}_t1" for s in DEPTH_T_H if not s.endswith("_base")) + ("depth_tanh_h4_8_t1_mupc_high",)  # μPC β up to 5e3
RELU_TUNE = "depth_relu_h8_tune"
DEPTH_128 = ("depth128_mupc", "depth128_sp", "depth128_mupc_long", "depth128_sp_long")  # long: same runs, 3 epochs
SP_128_GRID = "depth128_sp_grid"
MUPC_128_PROBE = "depth128_mupc_lr_probe"  # μPC at H = 128 with lower weight lrs than H = 8's optimum
DEPTH_MUP = ("depth_tanh_h4_8_depth_mup", "depth_tanh_h16_32_depth_mup", "depth_tanh_h64_depth_mup")
STEPS_PER_EPOCH = 60_000 // 64  # full Fashion-MNIST, batch 64 (the last partial batch is dropped)

pd.set_option("display.width", 250)


def sweep_id(spec_name: str) -> str:
    from sweeps.spec import load_spec

    return load_spec(SPECS / f"{spec_name}.yaml").default_sweep_id()


def load_runs(names, root: Path, table: str = "runs") -> pd.DataFrame:
    """The named specs' tables concatenated (specs not run yet are skipped, and said so)."""
    from mutransfer.results import load

    parts = []
    for n in names:
        sid = sweep_id(n)
        if not (root / table / f"sweep_id={sid}").exists():
            if table == "runs":
                print(f"  (not run: {n}.yaml, sweep {sid})")
            continue
        parts.append(load(sid, root=root, table=table))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _cost(runs: pd.DataFrame) -> pd.Series:
    """The report's convention: a diverged run counts +∞."""
    return runs["min_train_loss"].where(runs["status"] == "ok", np.inf)


def seed_mean_grid(runs: pd.DataFrame) -> pd.DataFrame:
    """Seed-mean min train loss per (parametrization, depth, weight_lr, activity_lr)."""
    r = runs.assign(cost=_cost(runs))
    return r.groupby(["parametrization", "depth", "weight_lr", "activity_lr"]).cost.mean().reset_index()


def best_per_depth(runs: pd.DataFrame) -> pd.DataFrame:
    g = seed_mean_grid(runs)
    idx = g.groupby(["parametrization", "depth"]).cost.idxmin()
    best = g.loc[idx].rename(columns={"cost": "best_loss", "weight_lr": "eta*", "activity_lr": "beta*"})
    n = runs.groupby(["parametrization", "depth"]).size().rename("runs")
    div = runs.assign(d=runs.status != "ok").groupby(["parametrization", "depth"]).d.mean().rename("diverged")
    return best.set_index(["parametrization", "depth"]).join(n).join(div).reset_index()


# ----------------------------------------------------------------------------------------------
# figures: plotly → HTML → PNG through headless Chromium


def save_figure(fig, png: Path) -> Path:
    html = png.with_suffix(".html")
    tmp = Path(tempfile.mkdtemp(prefix="depth_fig_"))
    page_html = tmp / html.name
    fig.write_html(page_html, include_plotlyjs=True, full_html=True, config={"staticPlot": True})
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from chromium import Chromium

        w, h = int(fig.layout.width or 900), int(fig.layout.height or 500)
        with Chromium(tmp) as browser:
            page = browser.open(page_html.as_uri(), width=w + 20, height=h + 20)
            page.wait_for("document.querySelector('.main-svg') !== null")
            page.screenshot(png, selector=".plot-container")
        print(f"  wrote {png}")
    except Exception as e:  # no Chromium: keep the HTML
        html.write_text(page_html.read_text())
        print(f"  no PNG ({e}); wrote {html}")
    return png


# ----------------------------------------------------------------------------------------------


def depth_reports(root: Path, which: tuple[tuple[str, tuple[str, ...]], ...]) -> None:
    from mutransfer.report import format_report, optimum_shift_report

    for title, names in which:
        print(f"\n### Depth-axis report, {title} (sweeps: {', '.join(names)})")
        runs = load_runs(names, root)
        if runs.empty:
            continue
        # The budget checkpoints (min_train_loss_25pct, ...) exist only in sweeps recorded after the
        # trainer wrote them (here: the last ones); the by-budget view needs them for every run.
        partial = [c for c in runs.columns if c.startswith("min_train_loss_") and runs[c].isna().any()]
        if partial:
            print(f"  (dropped {', '.join(partial)}: recorded by only some of these sweeps)")
            runs = runs.drop(columns=partial)
        print(format_report(optimum_shift_report(runs, metric="min_train_loss")))
        if title == "T = H":  # the μPC paper's depth range starts at H = 8 (Fig. 5: H = 8 … 128)
            print(f"\n### Depth-axis report, {title}, base H = 8 (the paper's smallest depth): the same runs, H ≥ 8")
            print(format_report(optimum_shift_report(runs[runs.depth >= 8], metric="min_train_loss")))


def section_report(root: Path) -> None:
    depth_reports(root, (("T = H", DEPTH_T_H),))


def section_t1(root: Path, docs: Path) -> None:
    depth_reports(root, (("T = 1", DEPTH_T_1),))
    th, t1 = load_runs(DEPTH_T_H, root), load_runs(DEPTH_T_1, root)
    if th.empty or t1.empty:
        return
    b = best_per_depth(th).merge(best_per_depth(t1), on=["parametrization", "depth"], suffixes=("_TH", "_T1"))
    b["T1/TH"] = b["best_loss_T1"] / b["best_loss_TH"]
    cols = ["parametrization", "depth", "best_loss_TH", "eta*_TH", "beta*_TH", "best_loss_T1", "eta*_T1",
            "beta*_T1", "T1/TH", "runs_TH", "runs_T1"]
    print("\n### Best seed-mean min train loss over the lr grid, T = 1 vs T = H (tanh residual N = 64)")
    print(b[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("best seed-mean min train loss", "ratio T = 1 / T = H"))
    colors = {"mupc": "#1f77b4", "sp": "#d62728"}
    ticks = sorted(b.depth.unique())
    for p, g in b.groupby("parametrization"):
        g = g.sort_values("depth")
        name = {"mupc": "μPC", "sp": "SP"}.get(p, p)
        fig.add_trace(go.Scatter(x=g.depth, y=g.best_loss_TH, mode="lines+markers", name=f"{name}, T = H",
                                 line=dict(color=colors.get(p), width=2)), row=1, col=1)
        fig.add_trace(go.Scatter(x=g.depth, y=g.best_loss_T1, mode="lines+markers", name=f"{name}, T = 1",
                                 line=dict(color=colors.get(p), width=2, dash="dash"), marker=dict(symbol="x")),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=g.depth, y=g["T1/TH"], mode="lines+markers", name=f"{name}: T = 1 / T = H",
                                 line=dict(color=colors.get(p), width=2, dash="dot"), showlegend=False),
                      row=1, col=2)
    fig.add_hline(y=1, line=dict(color="gray", dash="dot"), row=1, col=2)
    for c in (1, 2):
        fig.update_xaxes(title_text="depth H (hidden layers)", type="log", tickvals=ticks, row=1, col=c)
    fig.update_layout(width=1100, height=480, template="plotly_white",
                      legend=dict(orientation="h", y=-0.2),
                      title="One inference step vs T = H: the best loss over each lr grid<br>"
                            "<sup>tanh residual, N = 64, Fashion-MNIST 10k, 1 epoch, 2 seeds (seed mean)</sup>")
    save_figure(fig, docs / "depth_t1_vs_tH.png")


def section_relu(root: Path) -> None:
    runs = load_runs([RELU_TUNE], root)
    if runs.empty:
        return
    g = seed_mean_grid(runs)
    print("\n### ReLU residual N = 64, H = 8, T = 8: seed-mean min train loss (inf: a seed diverged)")
    for p, s in g.groupby("parametrization"):
        t = s.pivot(index="weight_lr", columns="activity_lr", values="cost")
        i, j = np.unravel_index(np.nanargmin(t.values), t.shape)
        print(f"{p}: optimum η = {t.index[i]:g}, β = {t.columns[j]:g} (loss {t.values[i, j]:.4f})")
        print(t.to_string(float_format=lambda x: f"{x:.4f}"))


def section_d128(root: Path, docs: Path) -> None:
    runs = load_runs(DEPTH_128, root)
    if runs.empty:
        return
    curves = load_runs(DEPTH_128, root, table="curves").merge(
        runs[["run_id", "parametrization", "weight_lr", "activity_lr", "status", "diverged_step", "steps"]],
        on="run_id")
    # A longer run repeats a shorter one of the same parameterisation (same seed, data order):
    # check that where both exist, then keep the longest.
    for p, g in runs.groupby("parametrization"):
        if len(g) > 1:
            a, b = (curves[curves.run_id == r].set_index("step").test_acc.dropna() for r in g.sort_values("steps").run_id[:2])
            common = a.index.intersection(b.index)
            print(f"{p}: {len(g)} runs; test acc at the {len(common)} shared eval steps differs by at most "
                  f"{(a[common] - b[common]).abs().max():.2g}; keeping the longest")
    runs = runs.sort_values("steps").groupby("parametrization").tail(1)
    curves = curves[curves.run_id.isin(runs.run_id)]
    probe = load_runs([MUPC_128_PROBE], root)
    if not probe.empty:  # each of its runs is a line of its own
        runs = pd.concat([runs, probe], ignore_index=True)
        curves = pd.concat([curves, load_runs([MUPC_128_PROBE], root, table="curves").merge(
            probe[["run_id", "parametrization", "weight_lr", "activity_lr", "status", "diverged_step", "steps"]],
            on="run_id")], ignore_index=True)
    label = {r.run_id: f"{r.parametrization} η={r.weight_lr:g}" for r in runs.itertuples()}
    runs["run"], curves["run"] = runs.run_id.map(label), curves.run_id.map(label)
    ev = curves.dropna(subset=["test_acc"]).sort_values("step")
    tr = curves.dropna(subset=["train_loss"]).sort_values("step")
    acc = ev.pivot_table(index="step", columns="run", values="test_acc")
    last = int(acc.index.max())
    shown = [s for s in acc.index if s in (0, 25, 50, 100) or s % 200 == 0 or s == last]
    print("\n### 128-layer ReLU residual N = 64, T = 128, full Fashion-MNIST: test accuracy by step "
          f"({STEPS_PER_EPOCH} steps = 1 epoch; every 200th step shown)")
    print(acc.loc[shown].to_string(float_format=lambda x: f"{x:.4f}"))
    print(runs[["run", "weight_lr", "activity_lr", "status", "diverged_step", "steps",
                "best_test_acc", "final_test_acc", "min_train_loss", "wall_s"]].to_string(index=False))
    # Per epoch: the last test accuracy measured in it and the mean logged train loss over it.
    rows = []
    for p, g in ev.groupby("run"):
        t = tr[tr.run == p]
        for e in range(int(np.ceil((g.step.max() + 1) / STEPS_PER_EPOCH))):
            lo, hi = e * STEPS_PER_EPOCH, (e + 1) * STEPS_PER_EPOCH
            ge, te = g[(g.step > lo) & (g.step <= hi)], t[(t.step >= lo) & (t.step < hi)]
            if len(ge):
                rows.append(dict(run=p, epoch=e + 1, last_step=int(ge.step.iloc[-1]),
                                 test_acc=ge.test_acc.iloc[-1], best_test_acc_so_far=g[g.step <= hi].test_acc.max(),
                                 mean_train_loss=te.train_loss.mean()))
    print("per epoch (test accuracy at the epoch's last eval; mean of the logged train losses in it):")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("train loss (every 250th step):")
    loss = tr.pivot_table(index="step", columns="run", values="train_loss")
    print(loss.loc[[s for s in loss.index if s % 250 == 0 or s == loss.index.max()]].to_string(
        float_format=lambda x: f"{x:.4g}"))
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = {"mupc": "#1f77b4", "sp": "#d62728"}
    probe_colors = iter(["#17becf", "#9467bd", "#2ca02c"])
    for run, g in ev.groupby("run"):
        r = runs[runs.run == run].iloc[0]
        p = r.parametrization
        name = {"mupc": "μPC", "sp": "standard PC (SP)"}.get(p, p)
        probed = r.run_id in set(probe.get("run_id", ()))
        fig.add_trace(go.Scatter(x=g.step / STEPS_PER_EPOCH, y=100 * g.test_acc, mode="lines+markers",
                                 marker=dict(size=4),
                                 line=dict(color=next(probe_colors) if probed else colors.get(p), dash="dash" if probed else None),
                                 name=f"{name}: η = {r.weight_lr:g}, β = {r.activity_lr:g}"
                                      + (" (lower than H = 8's η*)" if probed else " (H = 8's optimum)")))
        if r.status == "diverged":
            loss0 = tr[tr.run == run].train_loss.iloc[0]
            fig.add_annotation(x=r.diverged_step / STEPS_PER_EPOCH, y=100 * g.test_acc.iloc[-1],
                               text=f"{name}: train loss {loss0:.1e} at step 0, diverged at step {r.diverged_step}",
                               showarrow=True, arrowhead=2, ax=120, ay=-40, font=dict(color=colors.get(p)))
    fig.add_hline(y=10, line=dict(color="gray", dash="dot"), annotation_text="chance")
    epochs = int(np.ceil(runs.steps.max() / STEPS_PER_EPOCH))
    fig.update_layout(width=800, height=500, template="plotly_white", legend=dict(orientation="h", y=-0.22),
                      title="128-layer ReLU residual PC net, lrs tuned at H = 8 and transferred<br>"
                            f"<sup>N = 64, T = 128, batch 64, full Fashion-MNIST (10k test), {epochs} epochs"
                            f"{' (lower η: 1 epoch)' if not probe.empty else ''}; one seed</sup>",
                      xaxis=dict(title=f"epoch ({STEPS_PER_EPOCH} steps of 64 examples)", dtick=0.5),
                      yaxis=dict(title="test accuracy (%)", range=[0, 100]))
    save_figure(fig, docs / "depth128_accuracy.png")


def section_sp_grid(root: Path) -> None:
    runs = load_runs([SP_128_GRID], root)
    if runs.empty:
        return
    curves = load_runs([SP_128_GRID], root, table="curves")
    first = curves.dropna(subset=["train_loss"]).sort_values("step").groupby("run_id").train_loss.first()
    r = runs.assign(train_loss_step0=runs.run_id.map(first)).sort_values(["weight_lr", "activity_lr"])
    print("\n### Standard PC (sp) at H = 128 (ReLU residual N = 64, T = 128) over a lr grid, 100 steps each")
    print(r[["weight_lr", "activity_lr", "status", "diverged_step", "steps", "train_loss_step0", "min_train_loss",
             "best_test_acc", "final_test_acc"]].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"best test accuracy over the grid: {r.best_test_acc.max():.4f}")


def section_depth_mup(root: Path) -> None:
    depth_reports(root, (("depth_mup, T = H", DEPTH_MUP),))
    dm = load_runs(DEPTH_MUP, root)
    if dm.empty:
        return
    print("\n### depth_mup, base H = 8: the same runs, H ≥ 8")
    from mutransfer.report import format_report, optimum_shift_report

    print(format_report(optimum_shift_report(dm[dm.depth >= 8], metric="min_train_loss")))
    print("\n### Best seed-mean min train loss per depth, depth_mup (μPC's at H = 4 … 64 are in the T = H report)")
    print(best_per_depth(dm).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    mu = load_runs(["depth_tanh_h4_8"], root)
    if not mu.empty:  # at the base depth depth_mup is μPC: the cells must agree
        keys = ["depth", "weight_lr", "activity_lr", "seed"]
        both = dm[dm.depth == 4].merge(mu[(mu.parametrization == "mupc") & (mu.depth == 4)], on=keys,
                                       suffixes=("_dmup", "_mupc"))
        d = (both.min_train_loss_dmup - both.min_train_loss_mupc).abs()
        print(f"base depth H = 4: {len(both)} cells in both; largest |Δ min train loss| depth_mup vs mupc = {d.max():.3g}")
        print("μPC in the same rerun of depth_tanh_h4_8 (best seed-mean min train loss):")
        print(best_per_depth(mu[mu.parametrization == "mupc"]).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="/tmp/DS/results", type=Path)
    ap.add_argument("--only", default="report,t1,relu,d128,spgrid,dmup")
    ap.add_argument("--docs", default=ROOT / "docs", type=Path)
    a = ap.parse_args(argv)
    only = set(a.only.split(","))
    if "relu" in only:
        section_relu(a.results)
    if "report" in only:
        section_report(a.results)
    if "t1" in only:
        section_t1(a.results, a.docs)
    if "d128" in only:
        section_d128(a.results, a.docs)
    if "spgrid" in only:
        section_sp_grid(a.results)
    if "dmup" in only:
        section_depth_mup(a.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
