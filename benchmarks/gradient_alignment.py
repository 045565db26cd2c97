"""PC-vs-BP gradient alignment across width (Ishikawa et al. ICLR 2025; docs/reference/claims.md#claim-7).

A 3-layer (H = 2 hidden layers, 3 weight matrices) LINEAR plain MLP under ``mupc`` (identical to
``mup`` for this diagnostic: same multipliers and init; they differ only in lr multipliers, which
do not enter a gradient), at initialisation, on one Fashion-MNIST batch of 256 (synthetic Gaussian
data if the dataset is not installed), widths 64 → 4096, output precision γ_L = γ′·N^(−γ̄_L) with
γ̄_L ∈ {0, −1}, γ′ = 1, 3 seeds. For each: the cosine of PC's weight gradient at the inference
equilibrium with BP's gradient of ½ mean‖y − f‖² (all layers concatenated, and per layer), the
cosine with the damped Gauss–Newton reference (BP with the output error (I + C_γ)⁻¹(f − y)) and
the cosine of that reference with BP (see ``mutransfer/diagnostics/alignment.py`` for the derivation).

Solver: the equilibrium z* of a linear net comes from the C × C output-space closed form
(``method="output_space"``, O(H·C·N² + B·H·N²)), so N = 4096 needs no N³ factorisation; at
N ≤ 512 (seed 0) it is cross-checked against the block-Cholesky z* = H_z⁻¹ b of
``diagnostics.linear_equilibrium`` and the largest relative gradient difference is printed.

Writes a plotly HTML figure (cos vs width, log2 x-axis, one line per γ̄_L, min–max band over
seeds; dashed: cos with the GN reference) to --out, and a PNG beside it only if ``kaleido`` is
importable. Usage:

    python benchmarks/gradient_alignment.py [--out /tmp/alignment.html] [--widths 64,128,...]
        [--seeds 0,1,2] [--param mupc] [--gamma-prime 1] [--batch 256] [--csv PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mutransfer.diagnostics import alignment as al  # noqa: E402
from mutransfer.networks import init_weights, layer_dims, make_net  # noqa: E402
from mutransfer.parametrization import resolve  # noqa: E402

pd.set_option("display.width", 250)
pd.set_option("display.max_columns", 30)
pd.set_option("display.max_rows", 200)


def _data(batch: int):
    try:
        from mutransfer.data import load_dataset

        return load_dataset("fashion_mnist", train_examples=batch), "fashion_mnist"
    except Exception as exc:  # noqa: BLE001 - fall back to synthetic data and say so
        print(f"Fashion-MNIST not available ({exc}); using synthetic Gaussian data (D=784, 10 classes)")
        return None, "synthetic"


def _crosscheck(param: str, data, widths, batch: int, depth: int, gamma_prime: float, exps) -> float:
    """max over widths ≤ 512, γ̄_L of max|g_out − g_chol| / max|g_chol| (seed 0)."""
    x, y = al._batch(data, batch_size=batch, input_dim=784, output_dim=10, data_seed=0)
    worst = 0.0
    for N in [n for n in widths if n <= 512]:
        layers = resolve(param, input_dim=x.shape[1], width=N, hidden_layers=depth, output_dim=y.shape[1],
                         residual=False)
        net = make_net("linear", False, layers)
        with jax.enable_x64(True):
            w = init_weights(jax.random.key(0), layer_dims(x.shape[1], N, depth, y.shape[1]),
                             [p.init_std for p in layers], jnp.float64)
        for ge in exps:
            g = N ** (-ge) * gamma_prime
            a = al.pc_equilibrium_grads(net, w, x, y, g, method="output_space")
            b = al.pc_equilibrium_grads(net, w, x, y, g, method="closed_form")
            worst = max(worst, max(float(np.abs(u - v).max()) for u, v in zip(a, b))
                        / max(float(np.abs(v).max()) for v in b))
    return worst


def _figure(df: pd.DataFrame, out: str, title: str) -> None:
    import plotly.graph_objects as go

    colors = {0.0: "#1f77b4", -1.0: "#d62728"}
    fig = go.Figure()
    d = df[df.layer == "all"]
    for ge, sub in d.groupby("gamma_exponent"):
        col = colors.get(ge, None)
        for metric, dash, label in [("cos_pc_bp", "solid", "cos(PC, BP)"), ("cos_pc_gn", "dash", "cos(PC, GN ref)")]:
            s = sub.groupby("width")[metric].agg(["mean", "min", "max"]).reset_index()
            name = f"{label}, γ̄_L = {ge:g}"
            fig.add_trace(go.Scatter(x=list(s.width) + list(s.width[::-1]), y=list(s["max"]) + list(s["min"][::-1]),
                                     fill="toself", line=dict(width=0), fillcolor=col, opacity=0.18,
                                     hoverinfo="skip", showlegend=False, legendgroup=name))
            fig.add_trace(go.Scatter(x=s.width, y=s["mean"], mode="lines+markers", name=name, legendgroup=name,
                                     line=dict(color=col, dash=dash)))
    widths = sorted(d.width.unique())
    fig.update_layout(title=title, template="plotly_white", width=820, height=520,
                      xaxis=dict(title="width N", type="log", tickvals=widths, ticktext=[str(w) for w in widths]),
                      yaxis=dict(title="cosine similarity (all layers)"), legend=dict(x=0.6, y=0.15))
    fig.write_html(out, include_plotlyjs=True)
    print(f"wrote {out}")
    if importlib.util.find_spec("kaleido") is not None:
        png = os.path.splitext(out)[0] + ".png"
        fig.write_image(png, scale=2)
        print(f"wrote {png}")
    else:
        print("no PNG: kaleido is not installed (plotly needs it for static export)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/alignment.html")
    ap.add_argument("--widths", default="64,128,256,512,1024,2048,4096")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--param", default="mupc")
    ap.add_argument("--gamma-prime", type=float, default=1.0)
    ap.add_argument("--gamma-exponents", default="0,-1")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--depth", type=int, default=2, help="hidden layers H (3 weight matrices: H = 2)")
    ap.add_argument("--csv", default=None, help="also write the raw rows here")
    args = ap.parse_args()
    widths = [int(s) for s in args.widths.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    exps = [float(s) for s in args.gamma_exponents.split(",")]
    data, name = _data(args.batch)
    print(f"PC vs BP gradient alignment at init: {args.param}, linear plain MLP, H={args.depth} "
          f"({args.depth + 1} weight matrices), {name} batch of {args.batch}, γ′={args.gamma_prime:g}, "
          f"seeds {seeds}; JAX {jax.__version__} float64 on {jax.default_backend()}")

    t0 = time.perf_counter()
    err = _crosscheck(args.param, data, widths, args.batch, args.depth, args.gamma_prime, exps)
    print(f"cross-check output-space vs block-Cholesky equilibrium (N ≤ 512, seed 0): max rel grad diff {err:.1e} "
          f"({time.perf_counter() - t0:.1f} s)")

    frames = []
    for N in widths:
        t = time.perf_counter()
        frames.append(al.gradient_alignment(args.param, widths=[N], depth=args.depth, gamma_exponents=exps,
                                            gamma_prime=args.gamma_prime, data=data, seeds=seeds,
                                            batch_size=args.batch, input_dim=784, method="output_space"))
        print(f"  N={N:5d}: {time.perf_counter() - t:6.1f} s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    if args.csv:
        df.to_csv(args.csv, index=False)

    def ms(s):
        return f"{s.mean():.4f} ± {s.std(ddof=0):.4f}"

    print("\nall layers concatenated (mean ± std over seeds):")
    allrows = df[df.layer == "all"]
    tab = allrows.groupby(["gamma_exponent", "width"]).agg(
        cos_pc_bp=("cos_pc_bp", ms), one_minus_cos_pc_bp=("cos_pc_bp", lambda s: f"{1 - s.mean():.1e}"),
        cos_pc_gn=("cos_pc_gn", ms), cos_gn_bp=("cos_gn_bp", ms),
        presyn_shift=("presyn_shift", "mean"), norm_ratio=("pc_bp_norm_ratio", "mean"))
    print(tab.sort_index(ascending=[False, True]).to_string())
    print("\nper layer, cos(PC, BP) (mean over seeds):")
    per = df[df.layer != "all"].pivot_table(index=["gamma_exponent", "width"], columns="layer", values="cos_pc_bp")
    print(per.sort_index(ascending=[False, True]).round(4).to_string())
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")
    _figure(df, args.out, f"PC vs BP gradient alignment at init ({args.param}, 3-layer linear MLP, {name})")


if __name__ == "__main__":
    main()
