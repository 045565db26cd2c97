"""Width checks for target propagation (Ishikawa et al.), printed as tables:

1. Coordinate check behind `tp_mup`: mean |Δh_l| after 3 DTP steps (Adam η = 1e-2, β_out = 0.5)
   across widths 128 → 4096 — flat for every layer under tp_mup (the issue's bar: within ±25 %),
   growing under sp.
2. Kernel-regime contrast under `ntp`: the *relative* change of hidden features |Δh_l|/|h_l(0)|
   after 3 steps shrinks with width for BP (the NTK regime: features freeze) but not for DTP.

Usage: python benchmarks/tp_width_checks.py [--widths 128 256 ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from mutransfer.data import load_dataset
from mutransfer.tp_checks import feature_updates


def table(df: pd.DataFrame) -> str:
    return df.pivot_table(index=["algorithm", "parametrization", "layer"], columns="width", values="delta",
                          sort=False).to_string(float_format=lambda v: f"{v:.4g}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512, 1024, 2048, 4096])
    ap.add_argument("--html", default=None, help="also write the kernel-regime figure (self-contained HTML)")
    args = ap.parse_args()
    ds = load_dataset("fashion_mnist", train_examples=256, test_examples=10)
    x, y = ds.x_train, np.eye(10)[ds.y_train]
    t = time.perf_counter()
    coords = pd.concat([feature_updates("dtp", p, args.widths, x=x, y=y) for p in ("tp_mup", "sp")])
    print("== mean |h_l(3) − h_l(0)| after 3 DTP steps (tanh MLP, H = 2; f = output) ==")
    print(table(coords))
    for p, g in coords.groupby("parametrization", sort=False):
        spread = g.groupby("layer")["delta"].agg(lambda d: np.max(np.abs(d / d.mean() - 1)))
        print(f"{p}: max deviation from the layer's mean across widths: "
              + ", ".join(f"{k} {v:.0%}" for k, v in spread.items()))
    kr = pd.concat([feature_updates(a, "ntp", args.widths, x=x, y=y, relative=True) for a in ("bp", "dtp")])
    print("\n== relative feature change |Δh_l| / |h_l(0)| after 3 steps under ntp (kernel-regime contrast) ==")
    print(table(kr[kr.layer != "f"]))
    for a, g in kr[kr.layer != "f"].groupby("algorithm", sort=False):
        w = g.groupby("width")["delta"].mean()
        slope = np.polyfit(np.log2(w.index.to_numpy(float)), np.log2(w.to_numpy()), 1)[0]
        print(f"{a}: hidden-feature change scales as N^{slope:+.2f}")
    if args.html:
        import plotly.graph_objects as go

        fig = go.Figure()
        for (a, layer), g in kr[kr.layer != "f"].groupby(["algorithm", "layer"], sort=False):
            fig.add_trace(go.Scatter(x=g["width"], y=g["delta"], mode="lines+markers", name=f"{a.upper()} {layer}",
                                     line={"dash": "solid" if a == "dtp" else "dot"}))
        fig.update_layout(title="relative hidden-feature change after 3 steps under ntp: BP freezes, DTP does not",
                          xaxis={"title": "width N", "type": "log"}, yaxis={"title": "|Δh_l| / |h_l(0)|"},
                          width=900, height=480)
        fig.write_html(args.html, include_plotlyjs=True)
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
