"""Ray's overhead: the same 8-cell CPU sweep (a) in-process and (b) through Ray Tune with 2
concurrent one-CPU trials, side by side in one process.

Prints the total wall time of both, the embedded cluster's start-up time (paid once), and Ray's
overhead per trial: Tune's start→complete time of a trial minus the time the trial spent inside
(data, compile, train, write). Usage: python benchmarks/ray_overhead.py
"""

from __future__ import annotations

import shutil
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


def main() -> None:
    spec = parse_spec(SPEC)
    tmp = tempfile.mkdtemp()
    try:
        # Both paths use a fresh, empty compilation cache so neither gets the other's programs.
        compile_cache.enable(f"{tmp}/cache-a")
        t = time.perf_counter()
        a = run_sweep(spec, f"{tmp}/a")
        wall_a = time.perf_counter() - t

        t = time.perf_counter()
        connect(None)
        startup = time.perf_counter() - t
        last: list[Progress] = []
        t = time.perf_counter()
        b = run_sweep_ray(spec, f"{tmp}/b", jax_cache=f"{tmp}/cache-b", on_progress=last.append)
        wall_b = time.perf_counter() - t
        p = last[-1]
        over = [p.trial_wall_s[k] - p.trial_compute_s[k] for k in p.trial_wall_s if k in p.trial_compute_s]
        n = len(a.cells_done)
        assert not a.cells_failed and not b.cells_failed and n == len(b.cells_done) == 8
        print(f"8 cells × {len(spec.weight_lrs) * len(spec.activity_lrs) * len(spec.seeds)} runs, "
              f"{spec.dataset.train_examples} examples, 1 epoch")
        print(f"(a) in-process, one cell after another:     {wall_a:7.1f} s")
        print(f"(b) Ray Tune, 2 concurrent 1-CPU trials:    {wall_b:7.1f} s   ((a)/(b) = {wall_a / wall_b:.2f}x)")
        print(f"    embedded Ray start-up (once per run):   {startup:7.1f} s")
        print(f"    per trial: Tune wall {sum(p.trial_wall_s.values()) / n:.2f} s, inside the trial "
              f"{sum(p.trial_compute_s.values()) / n:.2f} s")
        print(f"    Ray overhead per trial: mean {sum(over) / len(over):.2f} s, max {max(over):.2f} s")
        print(f"    fit() wall minus ideal 2-way parallel compute, per trial: "
              f"{(wall_b - sum(p.trial_compute_s.values()) / 2) / n:.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
