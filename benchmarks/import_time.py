"""How long a fresh Python process takes to import what each of the project's processes imports.

    python benchmarks/import_time.py [--repeats 5] [--ml-dtypes DIR ...]

Every process the project starts pays this before it does anything: the CLI (`mutransfer ...`),
the server (`mutransfer serve`), each sweep driver (`python -m sweeps.driver`) and each Ray trial
worker (it imports the trainer to unpickle its trainable). Each figure is the median wall time of
``--repeats`` fresh interpreters running ``import MODULE`` (interpreter start-up included), measured
in turns so that a machine's load drifts into every row alike.

``--ml-dtypes DIR`` (repeatable) adds rows with DIR first on ``sys.path``: a folder holding another
ml_dtypes (``pip install --no-deps --target DIR ml_dtypes==X``), to compare its import cost with the
installed one's on the same machine in the same run. pyproject.toml pins ``ml_dtypes<0.7`` from this
comparison (docs/performance/index.md#process-start-up).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What each kind of process imports first (the module that its entry point loads).
MODULES = {
    "ml_dtypes": "ml_dtypes",
    "jax": "jax",
    "CLI (sweeps.cli)": "sweeps.cli",
    "sweep driver (sweeps.driver)": "sweeps.driver",
    "server (service.app)": "service.app",
    "trial worker (sweeps.worker)": "sweeps.worker",
}


def _env(extra_path: str | None) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    paths = [p for p in (extra_path, str(REPO), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def import_seconds(module: str, env: dict) -> float:
    """Wall seconds of a fresh interpreter that imports ``module`` and exits."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], env=env, check=True, cwd=REPO)
    return time.perf_counter() - t0


def version_of(env: dict) -> str:
    out = subprocess.run([sys.executable, "-c", "import ml_dtypes; print(ml_dtypes.__version__)"],
                         env=env, check=True, capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ml-dtypes", action="append", default=[], metavar="DIR",
                    help="a folder with another ml_dtypes, put first on sys.path (repeatable)")
    args = ap.parse_args(argv)
    setups = [("installed", _env(None))] + [(d, _env(d)) for d in args.ml_dtypes]
    labels = {name: f"ml_dtypes {version_of(env)} ({name})" for name, env in setups}
    times = {(name, row): [] for name, _ in setups for row in MODULES}
    for _ in range(args.repeats):  # in turns: each repeat measures every setup and module once
        for name, env in setups:
            for row, module in MODULES.items():
                times[name, row].append(import_seconds(module, env))
    print(f"median wall seconds of a fresh `python -c 'import M'` over {args.repeats} repeats "
          f"({os.cpu_count()} CPUs, JAX_PLATFORMS={_env(None)['JAX_PLATFORMS']})")
    width = max(len(r) for r in MODULES)
    print(f"{'':{width}}  " + "  ".join(f"{labels[n]:>28}" for n, _ in setups))
    for row in MODULES:
        print(f"{row:{width}}  " + "  ".join(f"{statistics.median(times[n, row]):>27.2f}s" for n, _ in setups))


if __name__ == "__main__":
    main()
