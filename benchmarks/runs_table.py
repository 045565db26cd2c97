"""The runs table page at scale: page weight and render / sort / filter times for synthetic sweeps
of 10k and 50k runs, in a real headless Chromium against a real uvicorn on loopback.

Each sweep is written as real Parquet parts (one per cell, as trials write them): 2
parameterisations × widths × 2 depths × 12 weight lrs × 12 activity lrs × seeds, with realistic
run ids and metrics (a few % diverged). For each size it prints:

* server: the first (uncached: reads the runs table, builds the page) and a cached GET of
  ``/sweeps/{id}/table``, and the page weight sent (raw, and gzip as browsers get it);
* browser: time from navigation start to the first rendered page of rows (DOMContentLoaded and the
  table script's own time), and the median of 3 in-page timings of sorting by a metric and by the
  run id, filtering a numeric column and a text column, and turning a page (each a synchronous
  recompute + render of the visible rows, measured with ``performance.now()`` in the page).

Bounded: loopback only; the server and Chromium are stopped at the end.

    python benchmarks/runs_table.py [--runs 10000 50000] [--results DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium import Chromium  # noqa: E402  (the tests' stdlib DevTools driver)

from mutransfer.results import ResultsStore  # noqa: E402

ETAS = np.geomspace(1e-4, 1.0, 12)
BETAS = np.geomspace(1e-2, 1e2, 12)


def synthetic_runs(n_target: int, seed: int = 0) -> pd.DataFrame:
    """About ``n_target`` runs: seeds × widths chosen so 2 × widths × 2 × 12 × 12 × seeds ≈ n."""
    rng = np.random.default_rng(seed)
    per_seed_width = 2 * 2 * len(ETAS) * len(BETAS)
    n_widths = 6 if n_target <= 20_000 else 8
    seeds = max(1, round(n_target / (per_seed_width * n_widths)))
    widths = [32 * 2 ** k for k in range(n_widths)]
    g = pd.MultiIndex.from_product([["mupc", "sp"], widths, [4, 8], ETAS, BETAS, range(seeds)],
                                   names=["parametrization", "width", "depth", "weight_lr", "activity_lr", "seed"])
    df = g.to_frame(index=False)
    shift = np.where(df.parametrization == "sp", np.log2(df.width / 32) * 0.5, 0.0)
    le = np.log10(df.weight_lr) + 1.5 + shift * 0.3
    lb = np.log10(df.activity_lr)
    loss = 0.1 * (1 + le ** 2 + 0.4 * lb ** 2) * (1 + 0.03 * rng.standard_normal(len(df)))
    diverged = (df.weight_lr > 0.3) & (df.activity_lr > 20)
    df["cell_id"] = "pc-" + df.parametrization + "-w" + df.width.astype(str) + "-d" + df.depth.astype(str)
    df["run_id"] = df.cell_id + "-" + pd.Series([f"{x:010x}" for x in rng.integers(0, 2 ** 40, len(df))])
    df = df.assign(algorithm="pc", activation="tanh", dataset="fashion_mnist",
                   status=np.where(diverged, "diverged", "ok"), min_train_loss=np.where(diverged, np.nan, loss),
                   final_train_loss=np.where(diverged, np.nan, loss * 1.05),
                   best_test_acc=np.where(diverged, np.nan, np.clip(0.95 - loss, 0, 1)),
                   final_test_acc=np.where(diverged, np.nan, np.clip(0.94 - loss, 0, 1)), steps=1000,
                   wall_s=rng.uniform(0.5, 3.0, len(df)), diverged_step=np.where(diverged, 37, -1),
                   spec_hash="5ca1ab1e")
    return df


def write(root: Path, sid: str, runs: pd.DataFrame) -> None:
    store = ResultsStore(root)
    for cell, r in runs.assign(sweep_id=sid).groupby("cell_id"):
        store.write_part(sid, f"cell-{cell}", r, None)


def serve(root: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MUTRANSFER_RESULTS": str(root), "MUTRANSFER_DRIVERS": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--log-level", "warning"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def median_ms(page, js: str, repeats: int = 3) -> float:
    return statistics.median(page.eval(js) for _ in range(repeats))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, nargs="+", default=[10_000, 50_000], help="sweep sizes to measure")
    ap.add_argument("--results", default=None, help="results root (default: a temporary directory)")
    args = ap.parse_args()
    root = Path(args.results or tempfile.mkdtemp(prefix="mutransfer-table-"))
    sweeps = {}
    for n in args.runs:
        sid = f"table{n // 1000}k-5ca1ab1e"
        runs = synthetic_runs(n)
        if sid not in ResultsStore(root).sweeps():
            t = time.perf_counter()
            write(root, sid, runs)
            print(f"wrote {len(runs):,} runs ({runs.cell_id.nunique()} parts) in {time.perf_counter() - t:.1f} s")
        sweeps[sid] = len(runs)
    proc, url = serve(root)
    rows = []
    try:
        with Chromium(tempfile.mkdtemp(prefix="mutransfer-chromium-")) as browser:
            for sid, n in sweeps.items():
                page_url = f"{url}/sweeps/{sid}/table"
                t = time.perf_counter()
                first = httpx.get(page_url, headers={"Accept-Encoding": "identity"}, timeout=120)
                cold = time.perf_counter() - t
                t = time.perf_counter()
                httpx.get(page_url, headers={"Accept-Encoding": "identity"}, timeout=120)
                warm = time.perf_counter() - t
                packed = httpx.get(page_url, headers={"Accept-Encoding": "gzip"}, timeout=120)
                assert first.status_code == 200 and packed.headers.get("content-encoding") == "gzip"
                page = browser.open(page_url, width=1400, height=1000)
                page.wait_for("window.__table && window.__table.ready", timeout=120)
                nav = page.eval("(() => { const e = performance.getEntriesByType('navigation')[0]; "
                                "return [e.domContentLoadedEventEnd, window.__table.readyAt, window.__table.ms]; })()")
                assert page.eval("window.__table.rows()") == n
                rows.append({
                    "runs": n, "server cold s": cold, "server cached s": warm,
                    "page MB": len(first.content) / 1e6, "gzip MB": packed.num_bytes_downloaded / 1e6,
                    "DOMContentLoaded ms": nav[0], "first rows ms": nav[1], "script ms": nav[2],
                    "sort metric ms": median_ms(page, "__table.sort('min_train_loss', 1)"),
                    "sort run_id ms": median_ms(page, "__table.sort('run_id', -1)"),
                    "filter width ms": median_ms(page, "__table.filter('width', '>=256')"),
                    "filter text ms": median_ms(page, "(__table.filter('width', ''), __table.filter('parametrization', 'sp'))"),
                    "next page ms": median_ms(page, "__table.page(3)"),
                })
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    table = pd.DataFrame(rows).set_index("runs").T
    with pd.option_context("display.float_format", lambda v: f"{v:,.3g}", "display.width", 120):
        print(table.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
