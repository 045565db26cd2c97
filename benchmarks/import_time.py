"""How long a fresh Python process takes to import what each of the project's processes imports,
and to do the first things its processes do (load the test data, start pytest).

    python benchmarks/import_time.py [--repeats 5] [--ml-dtypes DIR ...]

Every process the project starts pays this before it does anything: the CLI (`mutransfer ...`),
the server (`mutransfer serve`), each sweep driver (`python -m sweeps.driver`) and each Ray trial
worker (it imports the trainer to unpickle its trainable). Each figure is the median wall time of
``--repeats`` fresh interpreters running ``import MODULE`` (interpreter start-up included), measured
in turns so that a machine's load drifts into every row alike. The pytest rows depend on
``PYTHONDONTWRITEBYTECODE``: where it is set (as on our machines) pytest cannot cache the modules it
rewrites, and every pytest process rewrites them again.

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
# What each kind of process does first: the module its entry point loads, or a first step.
ROWS = {
    "ml_dtypes": ["-c", "import ml_dtypes"],
    "jax": ["-c", "import jax"],
    "CLI (sweeps.cli)": ["-c", "import sweeps.cli"],
    "sweep driver (sweeps.driver)": ["-c", "import sweeps.driver"],
    "server (service.app)": ["-c", "import service.app"],
    "trial worker (sweeps.worker)": ["-c", "import sweeps.worker"],
    # The test data set, as a trial loads it: scikit-learn's own loader vs reading its file.
    "digits: sklearn's load_digits()": ["-c", "from sklearn.datasets import load_digits; load_digits()"],
    "digits: load_dataset('digits')": ["-c", "from mutransfer.data import load_dataset; load_dataset('digits')"],
    # A pytest process collecting one small test module, with the installed plugins autoloaded
    # (hypothesis, schemathesis: pytest rewrites every module of their packages) and without.
    "pytest, plugins autoloaded": ["-m", "pytest", "-q", "--co", "-p", "no:cacheprovider",
                                   "tests/test_spec_precision.py"],
    "pytest, autoload off (make test)": ["-m", "pytest", "-q", "--co", "-p", "no:cacheprovider",
                                         "tests/test_spec_precision.py", "+PYTEST_DISABLE_PLUGIN_AUTOLOAD=1"],
}


def _env(extra_path: str | None) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    paths = [p for p in (extra_path, str(REPO), env.get("PYTHONPATH")) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def process_seconds(args: list[str], env: dict) -> float:
    """Wall seconds of a fresh interpreter run with ``args`` (a trailing ``+NAME=VALUE`` is set in
    its environment), start to exit."""
    extra = dict(a[1:].split("=", 1) for a in args if a.startswith("+"))
    argv = [sys.executable, *(a for a in args if not a.startswith("+"))]
    t0 = time.perf_counter()
    subprocess.run(argv, env={**env, **extra}, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
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
    times = {(name, row): [] for name, _ in setups for row in ROWS}
    for _ in range(args.repeats):  # in turns: each repeat measures every setup and row once
        for name, env in setups:
            for row, cmd in ROWS.items():
                times[name, row].append(process_seconds(cmd, env))
    print(f"median wall seconds of a fresh Python process, start to exit, over {args.repeats} repeats "
          f"({os.cpu_count()} CPUs, JAX_PLATFORMS={_env(None)['JAX_PLATFORMS']}, "
          f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '(unset)')})")
    width = max(len(r) for r in ROWS)
    print(f"{'':{width}}  " + "  ".join(f"{labels[n]:>28}" for n, _ in setups))
    for row in ROWS:
        print(f"{row:{width}}  " + "  ".join(f"{statistics.median(times[n, row]):>27.2f}s" for n, _ in setups))


if __name__ == "__main__":
    main()
