"""Ray's overhead: the same 8-cell CPU sweep (a) in-process and (b) through Ray Tune with 2
concurrent one-CPU trials, side by side in one process, alternated over rounds (noisy machines).

Prints the total wall time of both, the embedded cluster's start-up time (paid once), and Ray's
overhead per trial: Tune's start→complete time of a trial minus the time the trial spent inside
(data, compile, train, write). Usage: python benchmarks/ray_overhead.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

from sweeps import compile_cache
from sweeps.local import run_sweep
from sweeps.ray_exec import Progress, connect, run_sweep_ray
from sweeps.spec import parse_spec

SPEC = {
    "name": "ray-overhead",
    "parametrizations": ["mupc", "sp"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [32, 64],
    "depths": [2, 4],
    "weight_lrs": [1e-3, 1e-2, 1e-1, 5e-1],
    "activity_lrs": [0.1, 0.5, 1.0, 5.0],
    "seeds": 2,
    "dataset": {"name": "fashion_mnist", "train_examples": 3200, "test_examples": 1000},
    "training": {"epochs": 1, "batch_size": 64},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2},
}


def one_round(spec, tmp: str, k: int) -> tuple[float, float, Progress]:
    # Each path starts cold: a fresh, empty compilation cache, and (in-process) no programs or data
    # kept in memory from the previous round.
    import jax

    from mutransfer import trainer
    from sweeps import worker

    trainer._programs.cache_clear()
    worker.device_data.cache_clear()
    jax.clear_caches()
    compile_cache.enable(f"{tmp}/cache-a{k}")
    t = time.perf_counter()
    a = run_sweep(spec, f"{tmp}/a{k}")
    wall_a = time.perf_counter() - t
    last: list[Progress] = []
    t = time.perf_counter()
    b = run_sweep_ray(spec, f"{tmp}/b{k}", jax_cache=f"{tmp}/cache-b{k}", on_progress=last.append)
    wall_b = time.perf_counter() - t
    assert not a.cells_failed and not b.cells_failed and len(a.cells_done) == len(b.cells_done) == 8
    return wall_a, wall_b, last[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2, help="(a), (b) alternated this many times")
    args = ap.parse_args()
    spec = parse_spec(SPEC)
    tmp = tempfile.mkdtemp()
    try:
        t = time.perf_counter()
        connect(None)
        startup = time.perf_counter() - t
        print(f"8 cells × {len(spec.weight_lrs) * len(spec.activity_lrs) * len(spec.seeds)} runs, "
              f"{spec.dataset.train_examples} examples, 1 epoch; embedded Ray start-up (once): {startup:.1f} s")
        print(f"{'round':>5} {'(a) in-process s':>17} {'(b) Ray 2×1-CPU s':>18} {'(a)/(b)':>8} "
              f"{'Ray overhead/trial s':>21} {'max':>6}")
        ratios = []
        for k in range(args.rounds):
            wall_a, wall_b, p = one_round(spec, tmp, k)
            over = [p.trial_wall_s[t] - p.trial_compute_s[t] for t in p.trial_wall_s if t in p.trial_compute_s]
            ratios.append(wall_a / wall_b)
            print(f"{k:>5} {wall_a:>17.1f} {wall_b:>18.1f} {wall_a / wall_b:>7.2f}x "
                  f"{sum(over) / len(over):>21.2f} {max(over):>6.2f}")
        print(f"median (a)/(b): {statistics.median(ratios):.2f}x  (overhead = Tune's start→complete time of a "
              "trial minus the time spent inside it)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
