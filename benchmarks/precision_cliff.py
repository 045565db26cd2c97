"""float32 vs float64 at μPC's inference-stability cliff (docs/science/notebook/width.md).

    python benchmarks/precision_cliff.py train SPEC RESULTS WIDTHS OUT.csv   # e.g. 32,64,128
    python benchmarks/precision_cliff.py verdict RESULTS SWEEP_ID OUT.csv [OUT2.csv ...]

``train``: for each width, at μPC's grid optimum η* of the (finished, float32) sweep of SPEC, the
*cliff* is the largest activity lr β at which the runs still train (seed-mean ``min_train_loss`` no
worse than at the smallest β, the most stable inference); every seed of the cliff point and of the
next β above it is retrained alone in float32 and in float64 (``CellSpec.precision``: the same
initial weights, drawn in float32 and cast, and the same batches). Writes one row per run.

``verdict``: the sweep's μPC report as swept, and again with those runs' ``min_train_loss`` and
status replaced by their float64 values: does the verdict change?
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from mutransfer.results import ResultsStore


def train(spec_path: str, root: str, widths: list[int], out: str) -> pd.DataFrame:
    from mutransfer.trainer import train_cell
    from sweeps.plan import plan, train_options
    from sweeps.spec import load_spec
    from sweeps.worker import device_data

    spec = load_spec(spec_path)
    runs = ResultsStore(root).load_runs(spec.default_sweep_id(), parametrization="mupc")
    data = device_data(spec.dataset, spec.logging.test_chunk)
    cells = {c.spec.width: c for c in plan(spec) if c.spec.parametrization == "mupc"}
    rows = []
    for w in widths:
        r = runs[runs.width == w].copy()
        r["cost"] = np.where(r.status == "ok", r.min_train_loss, np.inf)
        eta = r.groupby(["weight_lr", "activity_lr"]).cost.mean().idxmin()[0]
        at = r[r.weight_lr == eta]
        by_beta = at.groupby("activity_lr").cost.mean().sort_index()
        cliff = max(by_beta[by_beta <= by_beta.iloc[0]].index)
        for beta in [cliff] + [b for b in by_beta.index if b > cliff][:1]:
            pts = at[at.activity_lr == beta].sort_values("seed")
            seeds = list(pts.seed)
            res = {}
            for prec in ("float32", "float64"):
                t0 = time.time()
                cs = cells[w].spec._replace(precision=prec)
                res[prec] = train_cell(cs, data, [eta] * len(seeds), [beta] * len(seeds), seeds, train_options(spec))
                print(time.strftime("%H:%M:%S"), w, eta, beta, prec, f"{time.time() - t0:.0f}s", flush=True)
            for i, s in enumerate(seeds):
                row = dict(width=w, weight_lr=eta, activity_lr=beta, cliff=beta == cliff, seed=s,
                           sweep_f32=float(pts.min_train_loss.iloc[i]), sweep_status=pts.status.iloc[i])
                for prec in ("float32", "float64"):
                    row[prec] = float(res[prec].runs["min_train_loss"][i])
                    row[f"{prec}_status"] = str(res[prec].runs["status"][i])
                    row[f"{prec}_25pct"] = float(res[prec].runs["min_train_loss_25pct"][i])
                rows.append(row)
    df = pd.DataFrame(rows)
    df["rel_f32_f64"] = (df.float32 - df.float64) / df.float64
    df["rel_sweep_f64"] = (df.sweep_f32 - df.float64) / df.float64
    df.to_csv(out, index=False)
    with pd.option_context("display.width", 200):
        print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return df


def verdict(root: str, sweep_id: str, csvs: list[str]) -> None:
    from mutransfer.report import build_report

    runs = ResultsStore(root).load_runs(sweep_id)
    p = pd.concat([pd.read_csv(c) for c in csvs])
    r64 = runs.copy()
    for _, row in p.iterrows():
        m = ((r64.parametrization == "mupc") & (r64.width == row.width) & np.isclose(r64.weight_lr, row.weight_lr)
             & np.isclose(r64.activity_lr, row.activity_lr) & (r64.seed == row.seed))
        assert m.sum() == 1, (row.to_dict(), int(m.sum()))
        r64.loc[m, "min_train_loss"] = row.float64
        r64.loc[m, "status"] = row.float64_status
    print(f"replaced {len(p)} runs' min_train_loss/status by their float64 values")
    for name, df in (("float32 (as swept)", runs), ("cliff points in float64", r64)):
        for a in build_report(df[df.parametrization == "mupc"]).analyses:
            print(f"{name}: verdict {a.verdict.value} — {a.verdict_text}")
            for e in a.sizes:
                print(f"   size {e.size}: eta* {e.eta_star} beta* {e.beta_star} regret {e.regret}")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "train":
        train(args[0], args[1], [int(w) for w in args[2].split(",")], args[3])
    elif cmd == "verdict":
        verdict(args[0], args[1], args[2:])
    else:
        sys.exit(__doc__)
