"""The one-shot GPU check (issue 14): everything this project needs to learn from a short loan of a
GPU machine (one H100/H200, no network, its own python3 with JAX + CUDA, no Ray/FastAPI/pydantic),
in one command that ends within 8 minutes.

Prepare here (copies Fashion-MNIST and the jpc fixture into the git-ignored ``.device_data/`` and
checks that repository + data fit the device tool's 64 MiB)::

    .venv/bin/python benchmarks/device_check.py --prepare

Then on the GPU machine (the device tool's ``run`` with ``carry: [".device_data"]``)::

    PYTHONPATH=. python3 benchmarks/device_check.py

and on CPU, the same code paths at tiny sizes (part of the test suite)::

    .venv/bin/python benchmarks/device_check.py --dry-run --out /tmp/device_check.json

Stages, each its own process under a time box (a stage that overruns is killed and recorded as
``timeout`` with what it had measured; later stages keep their time):

1. ``env``          device, memory, JAX/CUDA versions; every ``mutransfer`` module imports with only
                    the machine's packages; which data the check uses.
2. ``tests``        a fast pytest selection of the trainer's and PC numerics' tests on the device
                    (reference step vs the jpc fixture, vmapped grid = runs alone, divergence
                    freezing, chunking under a memory budget, TP and CNN cells with XLA's conv).
3. ``tests_fp32``   the tolerance-sensitive ones again at true float32 matmuls (JAX's default on
                    recent NVIDIA GPUs is TF32): a failure in 2 that passes here is precision.
4. ``bench``        the μPC paper's Fig. 5 width row (tanh residual H = 8, T = 8, batch 64, 44 lr
                    pairs × 3 seeds, N = 64…1024): run-steps/s, GFLOP/s against an 8192² matmul
                    measured in the same process (default = TF32, and "highest" = FP32), memory,
                    compile time, and the estimated wall time of the full row.
5. ``trials``       what Ray would do on one GPU, without Ray: two trial processes with a 0.5-GPU
                    trial's environment (no preallocation, memory fraction) training at once.
6. ``bench_fp32``   the widest cell of 4 at true float32 matmuls.

Everything goes to one JSON file (``--out``, else ``$OUT/device_check.json``, else
``./device_check.json``) with each stage's log beside it (``device_check_logs/``); a summary table
is printed and the last line is one summary sentence. Exit status 0 iff every stage passed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
STAGES_SCRIPT = Path(__file__).resolve().with_name("device_stages.py")
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from device_stages import read_events  # noqa: E402 - JAX-free: the orchestrator never imports JAX

DATA_DIR = REPO / ".device_data"  # git-ignored; sent with `carry: [".device_data"]`
FIXTURE_NAME = "pc_step_reference.npz"
FIXTURE_ENV = "MUTRANSFER_PC_FIXTURE"
SHARED_FIXTURE = REPO.parent / "shared" / "fixtures" / FIXTURE_NAME
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TRANSFER_LIMIT = 64 << 20  # the device tool's limit on tree + carried folders
BUDGET_S = 470.0  # all stages (the goal: done within 8 minutes, a rerun fits the 10-minute command)
DRY_BUDGET_S = 280.0  # under 5 minutes on a loaded 2-core machine


class Stage(NamedTuple):
    name: str
    title: str
    kind: str  # the device_stages.py stage it runs
    options: dict
    env: dict  # extra environment for its process
    box_s: float  # its time box on the GPU
    dry_box_s: float
    min_s: float  # kept free for it by the stages before it; skipped if less is left


FP32 = {"JAX_DEFAULT_MATMUL_PRECISION": "highest"}
STAGES = (
    Stage("env", "device, versions, imports, data", "env", {}, {}, 45, 90, 15),
    Stage("tests", "trainer + PC numerics tests on the device", "tests", {"selection": "default"}, {}, 130, 150, 30),
    Stage("tests_fp32", "tolerance tests at float32 matmuls", "tests", {"selection": "highest"}, FP32, 45, 90, 15),
    Stage("bench", "Fig. 5 width row: throughput, memory, compile", "bench", {}, {}, 150, 120, 45),
    Stage("trials", "two 0.5-GPU trial processes at once", "trials", {}, {}, 75, 120, 30),
    Stage("bench_fp32", "widest cell at float32 matmuls", "bench", {"widths": "widest"}, FP32, 45, 90, 20),
)


# --------------------------------------------------------------------------
# Running one stage under its time box
# --------------------------------------------------------------------------


def run_boxed(cmd: list[str], env: dict, timeout: float, log_path: Path) -> tuple[int | None, float]:
    """Run ``cmd`` in its own process group, output to ``log_path``; kill the whole group (its
    children too) at ``timeout`` s. Returns (exit code, or None if killed; wall seconds)."""
    t0, cpu0 = time.monotonic(), _children_cpu()
    with open(log_path, "w") as log:
        p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code: int | None = p.wait(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            code = None
    run_boxed.last_cpu_s = _children_cpu() - cpu0
    return code, time.monotonic() - t0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-400:] if lines else ""


def run_stage(stage: Stage, *, dry_run: bool, env: dict, timeout: float, logs: Path) -> dict:
    events, log = logs / f"{stage.name}.jsonl", logs / f"{stage.name}.log"
    events.unlink(missing_ok=True)
    options = {**stage.options, "out_dir": str(logs)}
    cmd = [sys.executable, str(STAGES_SCRIPT), stage.kind, "--out", str(events), "--options", json.dumps(options)]
    if dry_run:
        cmd.append("--dry-run")
    code, wall = run_boxed(cmd, {**env, **stage.env}, timeout, log)
    result = read_events(events)
    status, reason = result.pop("status", None), result.pop("reason", "")
    if code is None:
        status, reason = "timeout", f"killed at its {timeout:.0f}-s time box (results so far kept)"
    elif status is None:
        status, reason = "failed", f"exit code {code}: {_last_line(log)}"
    elif status == "failed" and not reason:
        reason = _last_line(log)
    return {"title": stage.title, "status": status, "reason": reason, "wall_s": round(wall, 2),
            "cpu_s": round(run_boxed.last_cpu_s, 2), "timeout_s": round(timeout, 1), "log": str(log),
            "result": result}


def stage_env(args, data_dir: Path) -> dict:
    """The environment of every stage process: the repository on PYTHONPATH, JAX's platform set
    explicitly (tests/conftest.py would otherwise default it to cpu), the data folder."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["JAX_PLATFORMS"] = "cpu" if args.dry_run else args.platform
    env["MUTRANSFER_DATA_DIR"] = str(data_dir)
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only the suite's own conftest, whatever is installed
    fixture = data_dir / FIXTURE_NAME
    if fixture.is_file():
        env[FIXTURE_ENV] = str(fixture)
    return env


def compile_cache_env(cache_dir: Path) -> dict:
    """JAX's persistent compilation cache, fresh for this check and shared by its stages (as a
    sweep's trials share one): the bench compiles each cell cold, the trials load its widest."""
    return {"JAX_COMPILATION_CACHE_DIR": str(cache_dir), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


# --------------------------------------------------------------------------
# The whole check
# --------------------------------------------------------------------------


def out_path(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "device_check.json"
    return Path("device_check.json")


def run_check(args) -> int:
    t_start = time.monotonic()
    out = out_path(args.out).resolve()
    logs = out.parent / "device_check_logs"
    logs.mkdir(parents=True, exist_ok=True)
    data_dir = Path(args.data_dir).resolve()
    env = stage_env(args, data_dir)
    cache_dir = Path(tempfile.mkdtemp(prefix="device-check-jax-cache-"))
    env.update(compile_cache_env(cache_dir))
    try:
        return _run_stages(args, t_start, out, logs, data_dir, env)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)


def _run_stages(args, t_start: float, out: Path, logs: Path, data_dir: Path, env: dict) -> int:
    budget = args.budget or (DRY_BUDGET_S if args.dry_run else BUDGET_S)
    selected = [s for s in STAGES if not args.only or s.name in args.only]
    report = {
        "check": "mutransfer device check (benchmarks/device_check.py)",
        "dry_run": args.dry_run,
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "argv": sys.argv,
        "jax_platforms": env["JAX_PLATFORMS"],
        "data_dir": str(data_dir),
        "pc_fixture": env.get(FIXTURE_ENV),
        "time_budget_s": budget,
        "compile_cache": "JAX's persistent cache, fresh for this check, shared by its stages",
        "stages": {},
    }
    mode = "DRY RUN on CPU at tiny sizes" if args.dry_run else f"JAX_PLATFORMS={env['JAX_PLATFORMS']}"
    print(f"mutransfer device check: {mode}; budget {budget:.0f} s; JSON → {out}", flush=True)
    for i, stage in enumerate(selected):
        left = budget - (time.monotonic() - t_start)
        reserve = sum(s.min_s for s in selected[i + 1:])
        box = stage.dry_box_s if args.dry_run else stage.box_s
        timeout = min(box, left - reserve)
        env_rec = report["stages"].get("env")
        if env_rec and not env_rec.get("result", {}).get("device_ok") and not args.dry_run:
            rec = {"title": stage.title, "status": "skipped",
                   "reason": f"no usable device (env stage: {env_rec.get('reason') or env_rec['status']})"}
        elif timeout < stage.min_s:
            rec = {"title": stage.title, "status": "skipped",
                   "reason": f"time budget: {max(left, 0):.0f} s left, {reserve:.0f} s kept for later stages"}
        else:
            print(f"[{time.monotonic() - t_start:5.0f} s] {stage.name}: {stage.title} (box {timeout:.0f} s)",
                  flush=True)
            rec = run_stage(stage, dry_run=args.dry_run, env=env, timeout=timeout, logs=logs)
        report["stages"][stage.name] = rec
        print(f"        {stage.name}: {rec['status']}" + (f" in {rec['wall_s']:.1f} s" if "wall_s" in rec else "")
              + (f" — {rec['reason']}" if rec.get("reason") else ""), flush=True)
        report["wall_s"] = round(time.monotonic() - t_start, 1)
        write_json(out, report)  # after every stage: a killed check still leaves its results
    report["fig5_row_estimate"] = row_estimate(report)
    report["wall_s"] = round(time.monotonic() - t_start, 1)
    lines = summary_lines(report)
    report["summary"] = lines[-1]
    write_json(out, report)
    print("\n".join(lines[:-1]))
    print(f"JSON: {out}")
    print(lines[-1])
    return 0 if all(r["status"] == "passed" for r in report["stages"].values()) else 1


def write_json(path: Path, report: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    tmp.replace(path)


# --------------------------------------------------------------------------
# Figures and the summary
# --------------------------------------------------------------------------


def row_estimate(report: dict) -> dict | None:
    """Wall time of the full width row on this device, one cell (width) after another: per width
    compile + runs × steps_per_epoch / (measured run-steps/s)."""
    bench = report["stages"].get("bench", {}).get("result", {})
    shape, rows = bench.get("shape"), [r for r in bench.get("widths", []) if "error" not in r]
    if not shape or not rows:
        return None
    done = {r["width"] for r in rows}
    return {
        "widths_measured": sorted(done),
        "complete": done == set(shape["widths"]),
        "runs": shape["runs_per_width"] * len(rows),
        "steps_per_run": shape["steps_per_epoch"],
        "seconds": sum(r["cell_s"] for r in rows),
        "compile_seconds": sum(r["compile_s"] for r in rows),
        "note": ("rates measured over the timed steps incl. two test evaluations (the trainer's "
                 "steps per epoch drop a last partial batch: 60000 // 64 = 937; the paper counts 938)"),
    }


def _gib(b) -> str:
    return f"{b / 2**30:.2f}" if isinstance(b, (int, float)) else "-"


def _tests_line(res: dict) -> str:
    rows = res.get("tests", [])
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("passed", "failed", "error", "skipped")}
    text = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "no tests ran"
    bad = [r["test"].split("::")[-1] for r in rows if r["outcome"] in ("failed", "error")]
    return text + (f" ({', '.join(bad[:4])})" if bad else "")


def summary_lines(report: dict) -> list[str]:
    st = report["stages"]
    dev = st.get("env", {}).get("result", {}).get("device", {})
    kind = (dev.get("devices") or [{}])[0].get("kind", "?")
    mem = dev.get("memory", {})
    data = st.get("env", {}).get("result", {}).get("data", {})
    lines = ["", f"{'stage':<11} {'status':<8} {'wall s':>7} {'box s':>6}  result"]
    for name, r in st.items():
        res = r.get("result", {})
        if name == "env" and dev:
            cuda = dev.get("cuda", {})
            cuda_txt = (", cuda " + "/".join(f"{v}" for v in cuda.values())) if cuda else ""
            smi = f" [nvidia-smi: {dev['nvidia_smi']}]" if dev.get("nvidia_smi") else ""
            what = (f"{kind} ({dev.get('backend')}), JAX allocator limit {_gib(mem.get('bytes_limit'))} GiB{smi}, "
                    f"jax {dev.get('jax')}{cuda_txt}; data: {data.get('source', '?')}")
        elif name.startswith("tests"):
            what = _tests_line(res)
        elif name.startswith("bench"):
            ok = [w for w in res.get("widths", []) if "error" not in w]
            what = (f"{len(ok)} width(s): " + ", ".join(f"N={w['width']} {w['run_steps_per_s']:.0f} run-steps/s"
                                                        for w in ok)) if ok else "no width measured"
        elif name == "trials":
            tr = [t.get("trained", {}) for t in res.get("trials", [])]
            peaks = "/".join(_gib(t.get("memory", {}).get("peak_bytes_in_use")) for t in tr if t)
            alone = {w["width"]: w["run_steps_per_s"] for w in st.get("bench", {}).get("result", {}).get("widths", [])
                     if "error" not in w}
            both = sum(t.get("run_steps_per_s", 0) for t in tr)
            width = (res.get("trials") or [{}])[0].get("cell", {}).get("width")
            vs = f" (one process alone: {alone[width]:.0f})" if width in alone else ""
            what = (f"N={width}: {sum(bool(t) for t in tr)}/2 trained, overlap {res['overlap_s']:.1f} s, "
                    f"together {both:.0f} run-steps/s{vs}, peaks {peaks} GiB" if "overlap_s" in res
                    else "did not both train")
        else:
            what = ""
        if r["status"] == "skipped":
            what = r.get("reason", "")[:160]
        elif r.get("reason") and r["status"] != "passed":
            what = (what + " — " if what else "") + r["reason"][:160]
        wall, box = r.get("wall_s"), r.get("timeout_s")
        lines.append(f"{name:<11} {r['status']:<8} {wall if wall is not None else '-':>7} "
                     f"{box if box is not None else '-':>6}  {what}")
    if data.get("note"):
        lines.append(f"data: {data['note']}")
    for name in ("bench", "bench_fp32"):
        res = st.get(name, {}).get("result", {})
        if not res.get("widths"):
            continue
        mm = res.get("matmul_gflops", {})
        lines += ["", f"{name}: matmul precision {res.get('shape', {}).get('matmul_precision')}; "
                      f"{mm.get('n')}² matmul {mm.get('default', 0):.0f} GFLOP/s default, "
                      f"{mm.get('highest', 0):.0f} GFLOP/s highest (fp32)",
                  f"{'N':>5} {'runs':>5} {'run-steps/s':>12} {'GFLOP/s':>9} {'%mm dflt':>9} {'%mm fp32':>9} "
                  f"{'peak GiB':>9} {'est. GiB':>9} {'chunks':>6} {'compile s':>10} {'epoch cell s':>13}"]
        for w in res["widths"]:
            if "error" in w:
                lines.append(f"{w['width']:>5} error: {w['error'][:120]}")
                continue
            lines.append(f"{w['width']:>5} {w['runs']:>5} {w['run_steps_per_s']:>12.1f} {w['gflops']:>9.1f} "
                         f"{w['pct_of_matmul_default']:>8.1f}% {w['pct_of_matmul_highest']:>8.1f}% "
                         f"{_gib(w['peak_bytes_so_far']):>9} {_gib(w['estimated_bytes']):>9} {w['chunks']:>6} "
                         f"{w['compile_s']:>10.1f} {w['cell_s']:>13.1f}")
    est = report.get("fig5_row_estimate")
    if est:
        lines.append(f"full row estimate ({est['runs']} runs × {est['steps_per_run']} steps, widths "
                     f"{est['widths_measured']}{'' if est['complete'] else ', INCOMPLETE'}): "
                     f"{est['seconds'] / 60:.1f} min, of which compile {est['compile_seconds']:.0f} s")
    n_pass = sum(r["status"] == "passed" for r in st.values())
    prefix = "DRY RUN (CPU, tiny sizes; figures mean nothing): " if report["dry_run"] else ""
    tests = st.get("tests", {})
    tr = st.get("trials", {})
    sentence = (f"{prefix}{kind}: {n_pass}/{len(st)} stages passed in {report.get('wall_s', 0):.0f} s; "
                f"tests: {_tests_line(tests.get('result', {})) if tests.get('status') != 'skipped' else 'skipped'}; "
                + (f"Fig. 5 row ≈ {est['seconds'] / 60:.1f} min on this device"
                   f"{'' if est['complete'] else ' (incomplete)'}; " if est else "Fig. 5 row not measured; ")
                + f"two 0.5-GPU trials: {tr.get('status', 'not run')}.")
    return lines + ["", sentence]


# --------------------------------------------------------------------------
# --prepare: the data folder sent along with the tree
# --------------------------------------------------------------------------


def _tree_bytes() -> int | None:
    """Bytes the device tool sends for the working tree: tracked plus untracked-not-ignored files."""
    try:
        names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum((REPO / n.decode()).stat().st_size for n in names if n and (REPO / n.decode()).is_file())


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def _copy(src: Path, dst: Path) -> None:
    dst.unlink(missing_ok=True)  # a read-only copy from an earlier run
    shutil.copyfile(src, dst)


def prepare(data_dir: Path, source: Path, fixture: Path) -> int:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
    dest = data_dir / "fashion_mnist"
    dest.mkdir(parents=True, exist_ok=True)
    for n in names:
        src = next((source / (n + ext) for ext in (".gz", "") if (source / (n + ext)).is_file()), None)
        if src is None:
            print(f"error: {source / n}(.gz) not found; pass --source DIR with the four Fashion-MNIST IDX files "
                  "(Debian: apt-get install dataset-fashion-mnist)", file=sys.stderr)
            return 1
        _copy(src, dest / src.name)
    if fixture.is_file():
        _copy(fixture, data_dir / FIXTURE_NAME)
    else:
        print(f"warning: jpc fixture {fixture} not found; the reference-step tests will skip on the device")
    tree, data = _tree_bytes(), _dir_bytes(data_dir)
    inside = data_dir.is_relative_to(REPO)
    ignored = inside and subprocess.run(["git", "check-ignore", "-q", str(data_dir)], cwd=REPO).returncode == 0
    total = (tree or 0) + data * (2 if inside and not ignored else 1)  # not ignored: it would travel twice
    print(f"{data_dir}: {data / 2**20:.1f} MiB; working tree {'?' if tree is None else f'{tree / 2**20:.1f}'} MiB; "
          f"sent in all ≈ {total / 2**20:.1f} MiB of {TRANSFER_LIMIT >> 20} MiB")
    if not inside:
        print(f"warning: {data_dir} is outside the repository; the device tool's carry takes paths inside it")
    elif not ignored:
        print(f"warning: {data_dir.name} is not git-ignored: it would be sent with the tree and again by carry")
    if total > TRANSFER_LIMIT:
        print(f"error: repository + {data_dir.name} exceed the device tool's {TRANSFER_LIMIT >> 20} MiB",
              file=sys.stderr)
        return 1
    rel = data_dir.relative_to(REPO) if inside else data_dir
    print(f'ready: run(command="PYTHONPATH=. python3 benchmarks/device_check.py", carry=["{rel}"], timeout_s=540)')
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: the same code paths in < 5 min")
    ap.add_argument("--out", help="JSON file (default: $OUT/device_check.json, else ./device_check.json)")
    ap.add_argument("--data-dir", default=str(DATA_DIR), help="the folder --prepare fills (default .device_data)")
    ap.add_argument("--platform", default="cuda", help="JAX_PLATFORMS for the stages (default cuda)")
    ap.add_argument("--budget", type=float, help=f"seconds for all stages (default {BUDGET_S:.0f}; dry run "
                                                  f"{DRY_BUDGET_S:.0f})")
    ap.add_argument("--only", nargs="+", choices=[s.name for s in STAGES], help="run only these stages")
    ap.add_argument("--prepare", action="store_true", help="fill --data-dir from --source and the jpc fixture, "
                                                           "check the 64 MiB limit, and exit")
    ap.add_argument("--source", default=str(DEBIAN_FASHION_MNIST), help="Fashion-MNIST IDX files for --prepare")
    ap.add_argument("--fixture", default=str(SHARED_FIXTURE), help="the jpc fixture for --prepare")
    args = ap.parse_args(argv)
    if args.prepare:
        return prepare(Path(args.data_dir).resolve(), Path(args.source), Path(args.fixture))
    return run_check(args)


if __name__ == "__main__":
    sys.exit(main())
