"""What runs inside each stage process of benchmarks/device_check.py (one process per stage, so a
stage's time box can kill it, and JAX's device memory is freed between stages).

    python benchmarks/device_stages.py STAGE --out EVENTS.jsonl [--dry-run] [--options JSON]

A stage appends JSON events to EVENTS.jsonl as it goes (flushed at once, so a stage killed at its
time box keeps what it had measured): ``{"set": key, "value": v}``, ``{"row": table, "value": {}}``
and, last, ``{"status": "passed" | "failed", "reason": str}``. The environment (JAX_PLATFORMS,
PYTHONPATH, MUTRANSFER_DATA_DIR, ...) is set by device_check.py.

Stages: ``env`` (device, versions, imports, data), ``tests`` (a pytest selection), ``bench``
(the Fig. 5 width row), ``trials`` (two fractional-GPU trial processes at once) and ``trial`` (one
of those two).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import pkgutil
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

Emit = Callable[[dict], None]

# Packages the GPU machine has (its own python3) and those it lacks; the science package must
# need none of the latter.
PRESENT = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "optax", "numpy", "scipy", "pandas",
           "pyarrow", "scikit-learn", "pytest", "PyYAML", "threadpoolctl")
ABSENT = ("ray", "fastapi", "plotly", "pydantic", "platformdirs", "uvicorn", "httpx")

# The pytest selection: (node id, also in the dry run). Ordered by priority: a stage cut off by its
# time box loses the last ones. On a GPU, CNN cells use XLA's convolution (cuDNN; networks.conv_impl).
TESTS = (
    ("tests/test_pc_reference.py::test_fixture_conventions_match_ours", True),
    ("tests/test_pc_reference.py::test_matches_jpc_reference", False),
    ("tests/test_pc_reference.py::test_matches_jpc_reference[sp-relu]", True),
    ("tests/test_trainer.py::test_grid_equals_runs_trained_one_at_a_time", False),
    ("tests/test_trainer.py::test_diverging_run_is_frozen_flagged_and_isolated", False),
    ("tests/test_trainer.py::test_nan_producing_lr_is_data_not_a_crash", False),
    ("tests/test_trainer.py::test_chunking_is_invisible", False),
    ("tests/test_tp_trainer.py::test_grid_trainer_runs_tp_and_flags_divergence[dtp]", False),
    ("tests/test_cnn.py::test_conv_implementations_agree_with_gradients[3]", False),
    ("tests/test_cnn.py::test_every_algorithm_trains_a_cnn_in_the_grid_trainer[pc-mupc-0.5]", False),
    ("tests/test_cnn.py::test_cnn_runs_in_a_grid_equal_runs_trained_alone", False),
    ("tests/test_cnn.py::test_map_and_vmap_over_runs_give_the_same_numbers", False),
    ("tests/test_tp_trainer.py::test_tp_runs_alone_equal_runs_in_a_grid", False),
    ("tests/test_inference.py", False),
)
# Rerun at true float32 matmuls (JAX's default on recent NVIDIA GPUs is TF32): tells a precision
# effect from a bug when a tolerance test fails above.
TESTS_HIGHEST = (
    ("tests/test_pc_reference.py", False),
    ("tests/test_pc_reference.py::test_matches_jpc_reference[mupc-tanh]", True),
    ("tests/test_trainer.py::test_grid_equals_runs_trained_one_at_a_time", False),
)
SELECTIONS = {"default": TESTS, "highest": TESTS_HIGHEST}


class Scale(NamedTuple):
    """Sizes of one check: the μPC paper's (GPU) or tiny ones (--dry-run on CPU)."""

    widths: tuple[int, ...]
    hidden_layers: int
    inference_steps: int
    batch_size: int
    weight_lrs: tuple[float, ...]
    activity_lrs: tuple[float, ...]
    seeds: tuple[int, ...]
    bench_steps: int  # timed training steps per width
    train_examples: int | None  # None: the whole training split
    test_examples: int  # evaluated at the start and the end of the timed steps
    matmul_n: int
    matmul_reps: int
    trial_width: int
    trial_steps: int  # = bench_steps: the trials reuse the bench's compiled cell from JAX's cache
    trial_train_s: float  # each trial trains its cell over and over for at least this long
    trial_cpus: float
    trial_gpus: float


def scale(dry_run: bool) -> Scale:
    from mutransfer.throughput import FIG5

    if dry_run:
        return Scale(widths=(8, 16), hidden_layers=2, inference_steps=2, batch_size=16, weight_lrs=(1e-1, 1e-2),
                     activity_lrs=(0.5,), seeds=(0, 1), bench_steps=4, train_examples=640, test_examples=100,
                     matmul_n=256, matmul_reps=3, trial_width=16, trial_steps=4, trial_train_s=0.3, trial_cpus=2,
                     trial_gpus=0.5)
    return Scale(widths=FIG5.widths, hidden_layers=FIG5.hidden_layers, inference_steps=FIG5.inference_steps,
                 batch_size=FIG5.batch_size, weight_lrs=FIG5.weight_lrs, activity_lrs=FIG5.activity_lrs,
                 seeds=FIG5.seeds, bench_steps=48, train_examples=None, test_examples=1000, matmul_n=8192,
                 matmul_reps=10, trial_width=max(FIG5.widths), trial_steps=48, trial_train_s=8.0, trial_cpus=4,
                 trial_gpus=0.5)


def runs_of(s: Scale) -> tuple[list[float], list[float], list[int]]:
    grid = [(e, b, k) for e in s.weight_lrs for b in s.activity_lrs for k in s.seeds]
    etas, betas, seeds = zip(*grid)
    return list(etas), list(betas), list(seeds)


def fig5_cell(s: Scale, width: int, input_dim: int, num_classes: int):
    from mutransfer.trainer import CellSpec

    return CellSpec("pc", "mupc", width, s.hidden_layers, "tanh", True, input_dim, num_classes,
                    batch_size=s.batch_size, inference_steps=s.inference_steps)


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def generated_dataset(n_train: int, n_test: int, dim: int = 784, classes: int = 10, seed: int = 0):
    """Fashion-MNIST-shaped stand-in: Gaussian clusters around random class means, standardised
    like the real data (zero mean, unit variance). Throughput is the same; accuracies mean nothing."""
    import numpy as np

    from mutransfer.data import Dataset

    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim)).astype(np.float32)

    def split(n):
        y = rng.integers(0, classes, n).astype(np.int32)
        x = means[y] + 2.0 * rng.standard_normal((n, dim)).astype(np.float32)
        return ((x - x.mean()) / x.std()).astype(np.float32), y

    (xtr, ytr), (xte, yte) = split(n_train), split(n_test)
    return Dataset("generated", xtr, ytr, xte, yte, classes)


def load_data(train_examples: int | None, test_examples: int | None):
    """Fashion-MNIST (from $MUTRANSFER_DATA_DIR/fashion_mnist, else the default search), or
    generated data of its shape with a note saying why."""
    from mutransfer.data import DatasetNotFoundError, fetch, load_dataset

    try:
        where = fetch("fashion_mnist")
        ds = load_dataset("fashion_mnist", train_examples=train_examples, test_examples=test_examples)
        return ds, {"source": "fashion_mnist", "dir": str(where), "n_train": len(ds.y_train),
                    "n_test": len(ds.y_test)}
    except (DatasetNotFoundError, OSError, ValueError) as e:
        ds = generated_dataset(train_examples or 60_000, test_examples or 10_000)
        note = (f"Fashion-MNIST not found ({type(e).__name__}: {str(e)[:300]}); generated Gaussian-cluster "
                "data of its shape instead: throughput and memory figures hold, accuracies mean nothing")
        return ds, {"source": "generated", "note": note, "n_train": len(ds.y_train), "n_test": len(ds.y_test)}


# --------------------------------------------------------------------------
# Stage: env
# --------------------------------------------------------------------------


def _versions(names) -> dict[str, str | None]:
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _nvidia_smi() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.used,driver_version,compute_cap",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=15).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def stage_env(emit: Emit, dry_run: bool, options: dict) -> None:
    emit({"set": "python", "value": f"{sys.executable} {platform.python_version()}"})
    emit({"set": "packages", "value": _versions(PRESENT)})
    emit({"set": "service_packages_importable", "value": {n: _importable(n) for n in ABSENT}})
    import mutransfer

    failed = {}
    modules = sorted(m.name for m in pkgutil.iter_modules(mutransfer.__path__))
    for m in modules:
        try:
            importlib.import_module(f"mutransfer.{m}")
        except Exception as e:  # noqa: BLE001 - every failure is the finding
            failed[m] = f"{type(e).__name__}: {e}"
    emit({"set": "science_imports", "value": {"modules": len(modules), "failed": failed}})

    import jax
    import jax.numpy as jnp

    from mutransfer import devices

    info = devices.describe()
    info["nvidia_smi"] = _nvidia_smi()
    info["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS")
    emit({"set": "device", "value": info})
    import numpy as np

    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    got = np.asarray(jax.jit(lambda m: m @ m)(jnp.asarray(a)), np.float64)
    want = a.astype(np.float64) @ a.astype(np.float64)
    sanity = float(np.abs(got - want).max() / np.abs(want).max())  # TF32 (10-bit mantissa): ~1e-3
    emit({"set": "matmul_rel_error_default_precision", "value": sanity})

    _, data = load_data(train_examples=None, test_examples=None)  # every file read and decoded
    fixture = os.environ.get("MUTRANSFER_PC_FIXTURE")
    data["pc_fixture"] = fixture if fixture and Path(fixture).is_file() else None
    emit({"set": "data", "value": data})

    device_ok = dry_run or info["backend"] != "cpu"
    emit({"set": "device_ok", "value": device_ok})
    problems = []
    if failed:
        problems.append(f"mutransfer modules failed to import: {', '.join(sorted(failed))}")
    if not sanity < 1e-2:
        problems.append(f"a 256² matmul on the device is off by {sanity:.2g} (relative) from numpy's")
    if not device_ok:
        problems.append("JAX sees no accelerator (backend cpu)")
    emit({"status": "failed" if problems else "passed", "reason": "; ".join(problems)})


# --------------------------------------------------------------------------
# Stage: tests
# --------------------------------------------------------------------------


class _Recorder:
    """pytest plugin: one event per test as soon as its teardown is done."""

    def __init__(self, emit: Emit):
        self.emit, self.open = emit, {}

    def pytest_collectreport(self, report):
        if report.failed:
            self.emit({"row": "tests", "value": {"test": report.nodeid or "(collection)", "outcome": "error",
                                                 "duration_s": 0.0, "message": report.longreprtext[-800:]}})

    def pytest_runtest_logreport(self, report):
        r = self.open.setdefault(report.nodeid, {"test": report.nodeid, "outcome": "passed", "duration_s": 0.0})
        r["duration_s"] = round(r["duration_s"] + report.duration, 3)
        if report.failed:
            r["outcome"] = "failed" if report.when == "call" else "error"
            r["message"] = report.longreprtext[-800:]
        elif report.skipped:
            r["outcome"] = "skipped"
            lr = report.longrepr
            r["message"] = str(lr[2] if isinstance(lr, tuple) else lr)[-300:]
        if report.when == "teardown":
            self.emit({"row": "tests", "value": self.open.pop(report.nodeid)})


def stage_tests(emit: Emit, dry_run: bool, options: dict) -> None:
    import jax
    import pytest

    from mutransfer.networks import conv_impl

    selection = [node for node, dry in SELECTIONS[options.get("selection", "default")] if dry or not dry_run]
    emit({"set": "selected", "value": selection})
    emit({"set": "backend", "value": jax.default_backend()})
    emit({"set": "conv_impl", "value": conv_impl()})
    emit({"set": "matmul_precision", "value": jax.config.jax_default_matmul_precision or "default"})
    os.chdir(REPO)
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", str(REPO), *selection],
                       plugins=[_Recorder(emit)])
    emit({"set": "pytest_exit_code", "value": int(code)})
    ok = int(code) == 0
    emit({"status": "passed" if ok else "failed", "reason": "" if ok else f"pytest exit code {int(code)}"})


# --------------------------------------------------------------------------
# Stage: bench (the Fig. 5 width row)
# --------------------------------------------------------------------------


def stage_bench(emit: Emit, dry_run: bool, options: dict) -> None:
    import jax

    from mutransfer.devices import memory_stats
    from mutransfer.throughput import matmul_gflops, pc_flop_per_run_step
    from mutransfer.trainer import (TrainOptions, bytes_per_run, chunk_sizes, default_memory_budget, to_device,
                                    train_cell)

    s = scale(dry_run)
    widths = s.widths if options.get("widths") != "widest" else (max(s.widths),)
    precision = jax.config.jax_default_matmul_precision or "default"
    ds, data = load_data(s.train_examples, s.test_examples)
    dd = to_device(ds)
    etas, betas, seeds = runs_of(s)
    R, S = len(etas), s.bench_steps
    steps_per_epoch = dd.n_train // s.batch_size  # the trainer's steps in one epoch (937 for 60 000)
    emit({"set": "data", "value": data})
    emit({"set": "shape", "value": {"hidden_layers": s.hidden_layers, "inference_steps": s.inference_steps,
                                    "batch_size": s.batch_size, "runs_per_width": R, "timed_steps": S,
                                    "steps_per_epoch": steps_per_epoch, "widths": list(widths),
                                    "matmul_precision": precision}})
    peaks = {"default": matmul_gflops(s.matmul_n, s.matmul_reps),
             "highest": matmul_gflops(s.matmul_n, s.matmul_reps, "highest")}
    emit({"set": "matmul_gflops", "value": {"n": s.matmul_n, **peaks}})
    budget = default_memory_budget()
    failed = []
    for width in widths:
        cell = fig5_cell(s, width, dd.input_dim, dd.num_classes)
        opts = TrainOptions(max_steps=S, eval_every=S, log_every=S)
        try:
            # The first call compiles, and its first execution is slower (allocations, module loads):
            # the rate comes from the second call of the same executable.
            first = train_cell(cell, dd, etas, betas, seeds, opts)
            res = train_cell(cell, dd, etas, betas, seeds, opts)
        except Exception as e:  # noqa: BLE001 - e.g. out of memory at one width: record it, go on
            failed.append(f"N={width}: {type(e).__name__}: {str(e)[:300]}")
            emit({"row": "widths", "value": {"width": width, "error": failed[-1]}})
            continue
        rate = R * S / res.train_s
        gflops = rate * pc_flop_per_run_step(dd.input_dim, width, s.hidden_layers, dd.num_classes,
                                             s.batch_size, s.inference_steps) / 1e9
        mem = memory_stats()
        emit({"row": "widths", "value": {
            "width": width, "runs": R, "steps": S, "compile_s": round(first.compile_s, 3),
            "first_train_s": round(first.train_s, 4), "train_s": round(res.train_s, 4),
            "run_steps_per_s": rate, "gflops": gflops,
            "pct_of_matmul_default": 100 * gflops / peaks["default"],
            "pct_of_matmul_highest": 100 * gflops / peaks["highest"],
            "peak_bytes_so_far": mem.get("peak_bytes_in_use"), "bytes_limit": mem.get("bytes_limit"),
            "estimated_bytes": bytes_per_run(cell) * R,
            "chunks": len(chunk_sizes(R, bytes_per_run(cell), budget)),
            "diverged": int((res.runs["status"] == "diverged").sum()),
            # one epoch of this cell: compile, the first execution's extra time, the steps at the warm rate
            "cell_s": first.compile_s + max(first.train_s - res.train_s, 0.0) + R * steps_per_epoch / rate}})
    after = matmul_gflops(s.matmul_n, s.matmul_reps)
    emit({"set": "matmul_gflops_after", "value": {"default": after}})
    emit({"status": "failed" if failed else "passed", "reason": "; ".join(failed)})


# --------------------------------------------------------------------------
# Stages: trials (two fractional-GPU trial processes at once) and trial (one of them)
# --------------------------------------------------------------------------

TRIAL_ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                  "XLA_FLAGS", "OMP_NUM_THREADS", "JAX_PLATFORMS")
RAY_NOTE = ("Ray is not installed on the GPU machine (no network to install it): this stage starts the "
            "processes Ray Tune would for two trials with resources {gpu: 0.5}, each with the environment "
            "sweeps/ray_exec.py gives a trial (mutransfer.devices.trial_env) and CUDA_VISIBLE_DEVICES "
            "set to the shared GPU, as Ray sets it")


def stage_trials(emit: Emit, dry_run: bool, options: dict) -> None:
    import tempfile

    from mutransfer.devices import apply_trial_env, trial_env

    s = scale(dry_run)
    env = trial_env(s.trial_cpus, s.trial_gpus)
    emit({"set": "ray", "value": RAY_NOTE})
    emit({"set": "trial_env", "value": env})
    emit({"set": "resources", "value": {"cpus_per_trial": s.trial_cpus, "gpus_per_trial": s.trial_gpus}})
    out_dir = Path(options["out_dir"])
    barrier = Path(tempfile.mkdtemp(prefix="device-check-barrier-"))
    procs = []
    for k in range(2):
        environ = dict(os.environ)
        apply_trial_env(env, environ)
        if not dry_run:  # Ray gives both halves of the GPU the same id (of those visible to it)
            environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
        events = out_dir / f"trial{k}.jsonl"
        log = open(out_dir / f"trial{k}.log", "w")
        cmd = [sys.executable, __file__, "trial", "--out", str(events),
               "--options", json.dumps({"index": k, "peers": 2, "barrier": str(barrier)})]
        if dry_run:
            cmd.append("--dry-run")
        # Same process group as this stage: the time box that kills the stage kills the trials.
        procs.append((subprocess.Popen(cmd, env=environ, stdout=log, stderr=subprocess.STDOUT), events, log))
    trials, problems = [], []
    for k, (p, events, log) in enumerate(procs):
        code = p.wait()
        log.close()
        result = read_events(events)
        result["exit_code"] = code
        if result.get("status") != "passed":
            tail = (out_dir / f"trial{k}.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
            problems.append(f"trial {k} exit {code}: {result.get('reason') or tail[0][-300:]}")
        trials.append(result)
        emit({"row": "trials", "value": result})
    shutil.rmtree(barrier, ignore_errors=True)
    done = [t["trained"] for t in trials if "trained" in t]
    if len(done) == 2:
        overlap = min(t["end"] for t in done) - max(t["start"] for t in done)
        emit({"set": "overlap_s", "value": overlap})
        if overlap <= 0:
            problems.append("the two trials' training did not overlap in time")
    emit({"status": "failed" if problems else "passed", "reason": "; ".join(problems)})


def _barrier(path: Path, index: int, peers: int, timeout: float = 120.0) -> bool:
    (path / f"ready.{index}").touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(path.glob("ready.*"))) >= peers:
            return True
        time.sleep(0.02)
    return False


def stage_trial(emit: Emit, dry_run: bool, options: dict) -> None:
    from mutransfer.devices import memory_stats
    from mutransfer.trainer import (TrainOptions, bytes_per_run, chunk_sizes, default_memory_budget, to_device,
                                    train_cell)

    s = scale(dry_run)
    emit({"set": "index", "value": options["index"]})
    emit({"set": "env", "value": {k: os.environ.get(k) for k in TRIAL_ENV_KEYS}})
    ds, data = load_data(s.train_examples, s.test_examples)
    dd = to_device(ds)
    etas, betas, seeds = runs_of(s)
    cell = fig5_cell(s, s.trial_width, dd.input_dim, dd.num_classes)
    budget = default_memory_budget()
    emit({"set": "cell", "value": {"width": s.trial_width, "runs": len(etas), "data": data["source"],
                                   "memory_budget_bytes": budget,
                                   "chunks": chunk_sizes(len(etas), bytes_per_run(cell), budget)}})
    opts = TrainOptions(max_steps=s.trial_steps, eval_every=s.trial_steps, log_every=s.trial_steps)
    warm = train_cell(cell, dd, etas, betas, seeds, opts)  # compiles (or loads from the cache) and trains
    together = _barrier(Path(options["barrier"]), options["index"], options["peers"])
    # Train the cell again and again for trial_train_s: both trials' device work overlaps for that long.
    t0, reps, statuses = time.time(), 0, []
    while not reps or time.time() - t0 < s.trial_train_s:
        res = train_cell(cell, dd, etas, betas, seeds, opts)
        statuses.append(res.runs["status"])
        reps += 1
    t1 = time.time()
    emit({"set": "trained", "value": {
        "start": t0, "end": t1, "waited_for_peer": together, "compile_s": warm.compile_s, "cell_trainings": reps,
        "run_steps_per_s": reps * len(etas) * s.trial_steps / (t1 - t0),
        "ok": int((statuses[-1] == "ok").sum()), "diverged": int((statuses[-1] == "diverged").sum()),
        "memory": memory_stats()}})
    emit({"status": "passed", "reason": ""})


STAGES = {"env": stage_env, "tests": stage_tests, "bench": stage_bench, "trials": stage_trials,
          "trial": stage_trial}


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


def read_events(path: Path) -> dict:
    """Fold a stage's event file into one dict (a missing or cut-off file gives what is there)."""
    out: dict = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if "set" in ev:
            out[ev["set"]] = ev["value"]
        elif "row" in ev:
            out.setdefault(ev["row"], []).append(ev["value"])
        elif "status" in ev:
            out["status"], out["reason"] = ev["status"], ev.get("reason", "")
    return out


def _emitter(path: Path) -> Emit:
    f = open(path, "a")

    def emit(event: dict) -> None:
        f.write(json.dumps(event, default=_jsonable) + "\n")
        f.flush()
    return emit


def _jsonable(v):
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=sorted(STAGES))
    ap.add_argument("--out", required=True, help="events file (JSON lines) this stage appends to")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--options", default="{}", help="stage options as a JSON object")
    args = ap.parse_args(argv)
    emit = _emitter(Path(args.out))
    try:
        STAGES[args.stage](emit, args.dry_run, json.loads(args.options))
    except Exception as e:  # noqa: BLE001 - recorded as the stage's result; the traceback goes to its log
        import traceback

        traceback.print_exc()
        emit({"status": "failed", "reason": f"{type(e).__name__}: {str(e)[:500]}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
