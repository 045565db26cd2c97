"""CPU-scale reproductions of the μPC paper's diagnostics (docs/reference/diagnostics.md;
claim 5 in docs/reference/claims.md).

Sections (each a few minutes at most on 2 cores; pick with ``--only``):

  kappa   κ(H_z) of the per-example activity Hessian at initialisation over N, H ∈ {2,...,64},
          for sp and mupc, with and without skips (μPC paper Figs 2, 4, A.21). LINEAR nets via the
          closed form (exact, data-independent; median of 3 seeds), and TANH nets via the per-layer blocks at the
          forward-pass activities (one Gaussian input, one-hot target, D = C = N as in the
          authors' code). Eigenvalues in float64: dense for H·N ≤ 1024, Lanczos above.
  ratio   loss / F(z*) (Theorem 1, Fig. 6) at initialisation for linear μPC ResNets (and SP for
          contrast) over N, H ∈ {2,...,64}, plus μPC at N ∈ {128,...,1024}, on a Fashion-MNIST
          batch of 64 (synthetic data if the dataset is missing). NaN: S is numerically singular
          in float64 (SP's exploding deep forward pass).
  coord   coordinate check: mean |z_l| and mean |Δz_l| after k PC steps (tanh ResNets, Adam
          η = 1e-2, GD inference β = 1 (the μPC paper's best for tanh; β multiplies the gradient
          of the batch-MEAN energy), T = H, batch 64, Fashion-MNIST) across widths 64 → 2048
          (H = 8) and depths 4 → 64 (N = 128), mupc vs sp.

Writes CSVs (and PNGs when plotly + kaleido are installed; interactive HTML with ``--html``) into
OUT (default /tmp/diag_figs) and prints the numbers as text tables.

Usage: python benchmarks/diagnostics_figures.py [OUT] [--only kappa,ratio,coord] [--steps 3] [--beta 1]
           [--eta 1e-2] [--html]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mutransfer import diagnostics as dg

SIZES = (2, 4, 8, 16, 32, 64)
pd.set_option("display.width", 250)
pd.set_option("display.max_columns", 30)


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


class Figures:
    """Heatmaps / line plots with plotly: PNG if kaleido is installed, HTML if asked for."""

    def __init__(self, out: Path, html: bool):
        self.out, self.html = out, html
        self.png = _have("plotly") and _have("kaleido")
        self.enabled = _have("plotly") and (self.png or html)

    def _save(self, fig, name: str) -> None:
        if self.png:
            fig.write_image(self.out / f"{name}.png", scale=2)
        if self.html:
            fig.write_html(self.out / f"{name}.html", include_plotlyjs=True)

    def heatmaps(self, tables: dict[str, pd.DataFrame], name: str, title: str, log: bool = True) -> None:
        if not self.enabled:
            return
        from plotly.subplots import make_subplots
        import plotly.graph_objects as go

        fig = make_subplots(rows=1, cols=len(tables), subplot_titles=list(tables))
        for i, (sub, t) in enumerate(tables.items(), start=1):
            z = np.log10(t.to_numpy(float)) if log else t.to_numpy(float)
            fig.add_trace(go.Heatmap(z=z, x=[str(c) for c in t.columns], y=[str(r) for r in t.index],
                                     coloraxis="coloraxis", text=t.map(lambda v: f"{v:.3g}").to_numpy(),
                                     texttemplate="%{text}"), row=1, col=i)
            fig.update_xaxes(title_text="width N", type="category", row=1, col=i)
            fig.update_yaxes(title_text="depth H", type="category", row=1, col=i)
        fig.update_layout(title=title, coloraxis={"colorbar": {"title": "log10" if log else ""}},
                          width=420 * len(tables), height=450)
        self._save(fig, name)

    def lines(self, df: pd.DataFrame, x: str, y: str, facet: str, color: str, name: str, title: str) -> None:
        if not self.enabled:
            return
        import plotly.express as px

        from dashboards.common import log_axis, positive_range

        fig = px.line(df, x=x, y=y, color=color, facet_col=facet, markers=True, log_x=True, log_y=True, title=title)
        # Full-value tick labels (plotly's default minor labels "2 3 … 9 1" read as 0.2 below 1).
        fig.update_yaxes(**log_axis(*positive_range(df[y])))
        xs = sorted({v for v in df[x] if v > 0})
        fig.update_xaxes(tickvals=xs, ticktext=[f"{v:g}" for v in xs])
        self._save(fig, name)


def _table(df: pd.DataFrame, value: str, agg: str = "median") -> pd.DataFrame:
    return df.pivot_table(index="depth", columns="width", values=value, aggfunc=agg, dropna=False)


def _fmt(t: pd.DataFrame) -> str:
    return t.to_string(float_format=lambda v: f"{v:10.3g}")


def section_kappa(out: Path, figs: Figures) -> None:
    print("\n=== κ(H_z) at initialisation (per-example activity Hessian; rows H, columns N) ===")
    frames = []
    for activation in ("linear", "tanh"):
        for residual in (False, True):
            t0 = time.perf_counter()
            seeds = (0, 1, 2) if activation == "linear" else (0,)
            df = dg.run_analysis("hessian_condition", {"widths": SIZES, "depths": SIZES, "activation": activation,
                                                       "residual": residual, "seeds": seeds})
            frames.append(df)
            print(f"  [{activation}, {'skips' if residual else 'no skips'}: {time.perf_counter() - t0:.1f} s]")
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out / "kappa_init.csv", index=False)
    for activation in ("linear", "tanh"):
        tables = {}
        for residual in (False, True):
            for param in ("sp", "mupc"):
                d = df[(df.activation == activation) & (df.residual == residual) & (df.parametrization == param)]
                label = f"{param}, {'skips' if residual else 'no skips'}"
                t = _table(d, "kappa")
                tables[label] = t
                print(f"\n-- κ = λmax/λmin, {activation}, {label}"
                      f"{' (median of 3 seeds)' if activation == 'linear' else ' (seed 0)'} --\n{_fmt(t)}")
                if not d["positive_definite"].all() or not d["resolved"].all():
                    bad = d[~d.positive_definite]
                    if len(bad):
                        print(f"   not PD (κ = inf) at (H, N) = {sorted(set(zip(bad.depth, bad.width)))}; "
                              f"κ_abs = max|λ|/min|λ| of every net:\n{_fmt(_table(d, 'kappa_abs'))}")
                    unresolved = d[d.positive_definite & ~d.resolved]
                    if len(unresolved):
                        print(f"   λmin below float64 resolution (κ is a lower bound) at (H, N) = "
                              f"{list(zip(unresolved.depth, unresolved.width))}")
        figs.heatmaps({k: v.replace(np.inf, np.nan) for k, v in tables.items()}, f"kappa_init_{activation}",
                      f"log10 κ(H_z) at init, {activation} nets")


def _ratio_data():
    try:
        from mutransfer.data import load_dataset

        load_dataset("fashion_mnist", train_examples=64, test_examples=1)
        return "fashion_mnist"
    except Exception as e:  # noqa: BLE001 - any load failure → synthetic
        print(f"  (fashion_mnist unavailable: {e}; using synthetic data)")
        return "synthetic"


def section_ratio(out: Path, figs: Figures) -> None:
    print("\n=== loss / F(z*) at initialisation, linear ResNets (Theorem 1; rows H, columns N) ===")
    dataset = _ratio_data()
    frames = []
    for param in ("mupc", "sp"):
        t0 = time.perf_counter()
        frames.append(dg.run_analysis("loss_energy_ratio", {"parametrization": param, "widths": SIZES,
                                                            "depths": SIZES, "dataset": dataset,
                                                            "num_examples": 64, "batch_size": 64}))
        print(f"  [{param}: {time.perf_counter() - t0:.1f} s, {dataset}, batch 64]")
    df = pd.concat(frames, ignore_index=True)
    df["aspect_N_over_H"] = df.width / df.depth
    df.to_csv(out / "loss_energy_ratio_init.csv", index=False)
    tables = {}
    for param in ("mupc", "sp"):
        t = _table(df[df.parametrization == param], "ratio")
        tables[param] = t
        print(f"\n-- loss / F(z*), {param} --\n{_fmt(t)}")
    t0 = time.perf_counter()
    wide = dg.run_analysis("loss_energy_ratio", {"parametrization": "mupc", "widths": (128, 256, 512, 1024),
                                                 "depths": (2, 4, 8, 16, 32), "dataset": dataset,
                                                 "num_examples": 64, "batch_size": 64})
    wide["aspect_N_over_H"] = wide.width / wide.depth
    wide.to_csv(out / "loss_energy_ratio_init_wide.csv", index=False)
    print(f"\n-- loss / F(z*), mupc, wider nets [{time.perf_counter() - t0:.1f} s] --\n{_fmt(_table(wide, 'ratio'))}")
    m = pd.concat([df[df.parametrization == "mupc"], wide], ignore_index=True)
    for lo, hi in [(0, 1), (1, 4), (4, 16), (16, 32), (32, 64), (64, np.inf)]:
        s = m[(m.aspect_N_over_H >= lo) & (m.aspect_N_over_H < hi)]
        if len(s):
            print(f"   mupc, {lo} ≤ N/H < {hi}: ratio in [{s.ratio.min():.3f}, {s.ratio.max():.3f}] ({len(s)} nets)")
    figs.heatmaps(tables, "loss_energy_ratio_init", "log10 (loss / equilibrated energy) at init, linear ResNets")


def section_coord(out: Path, figs: Figures, steps: int, beta: float, eta: float) -> None:
    print(f"\n=== coordinate check: tanh ResNets, PC (T = H, β = {beta:g}), Adam η = {eta:g}, {steps} steps, "
          f"batch 64 ===")
    data = "fashion_mnist" if _ratio_data() == "fashion_mnist" else "synthetic"
    frames = []
    for axis, widths, depths in [("width", (64, 128, 256, 512, 1024, 2048), (8,)),
                                 ("depth", (128,), (4, 8, 16, 32, 64))]:
        for param in ("mupc", "sp"):
            t0 = time.perf_counter()
            d = dg.coordinate_check(param, widths=widths, depths=depths, activation="tanh", residual=True,
                                    data=data, num_examples=64 * (steps + 1) + 256, steps=steps, lr=eta,
                                    activity_lr=beta, probe_size=256)
            d["axis"] = axis
            frames.append(d)
            print(f"  [{axis} sweep, {param}: {time.perf_counter() - t0:.1f} s]")
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out / "coordinate_check.csv", index=False)
    for axis, size in [("width", "width"), ("depth", "depth")]:
        d = df[df.axis == axis].copy()
        # Layers named relative to the net: first hidden, middle hidden, last hidden, output.
        H = d.depth
        d["where"] = np.select([d.layer == 1, d.layer == (H + 1) // 2 + (H == 1), d.layer == H, d.layer == H + 1],
                               ["z_1", "z_mid", "z_H", "f"], "other")
        d = d[d["where"] != "other"]
        for value, what in [("mean_abs_z", "mean |z_l|"), ("mean_abs_dz", "mean |z_l(k) − z_l(0)|")]:
            for step in sorted(d.step.unique()):
                if value == "mean_abs_dz" and step == 0:
                    continue
                t = d[d.step == step].pivot_table(index=["parametrization", "where"], columns=size, values=value,
                                                  aggfunc="first")
                t = t.reindex(["z_1", "z_mid", "z_H", "f"], level=1)
                print(f"\n-- {what} at step {step}, across {axis}s "
                      f"({'H = 8' if axis == 'width' else 'N = 128'}) --\n{_fmt(t)}")
        figs.lines(d[d.step == steps], size, "mean_abs_dz", "parametrization", "where", f"coord_check_{axis}",
                   f"mean |Δz_l| after {steps} PC steps across {axis}s")


def main() -> None:
    ap = argparse.ArgumentParser(description="CPU-scale reproductions of the μPC paper's diagnostics")
    ap.add_argument("out", nargs="?", default="/tmp/diag_figs")
    ap.add_argument("--only", default="kappa,ratio,coord")
    ap.add_argument("--steps", type=int, default=3, help="training steps k of the coordinate check")
    ap.add_argument("--beta", type=float, default=1.0, help="coordinate check: GD activity lr β (paper's best: 1)")
    ap.add_argument("--eta", type=float, default=1e-2, help="coordinate check: Adam weight lr η")
    ap.add_argument("--html", action="store_true", help="also write interactive plotly HTML figures")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figs = Figures(out, args.html)
    print(f"writing to {out}; PNG figures: {'yes (plotly + kaleido)' if figs.png else 'no (kaleido not installed)'}"
          f"{'; HTML figures' if args.html else ''}")
    t0 = time.perf_counter()
    only = set(args.only.split(","))
    if "kappa" in only:
        section_kappa(out, figs)
    if "ratio" in only:
        section_ratio(out, figs)
    if "coord" in only:
        section_coord(out, figs, args.steps, args.beta, args.eta)
    print(f"\ndone in {time.perf_counter() - t0:.0f} s; files: {sorted(os.listdir(out))}")


if __name__ == "__main__":
    main()
