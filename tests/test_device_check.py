"""benchmarks/device_check.py: its dry run (the same code paths as on a GPU, on CPU at tiny sizes)
passes where the service's packages cannot be imported, and its time boxes hold."""

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mutransfer import devices
from mutransfer.data import read_idx

REPO = Path(__file__).resolve().parents[1]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SHARED_FIXTURE = REPO.parent / "shared" / "fixtures" / "pc_step_reference.npz"
# Not on the GPU machine: the science package and the check must need none of them.
BLOCKED = ("ray", "fastapi", "plotly", "pydantic", "platformdirs", "uvicorn", "httpx")
BLOCKER = f'''
import importlib.abc, sys
BLOCKED = {BLOCKED!r}
class _NotOnTheGPUMachine(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None
sys.meta_path.insert(0, _NotOnTheGPUMachine())
'''


def _load_check():
    spec = importlib.util.spec_from_file_location("device_check", REPO / "benchmarks" / "device_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _blocked_env(tmp_path: Path) -> dict:
    """Every Python process started with this environment (and its children) cannot import BLOCKED."""
    site = tmp_path / "blocker"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "OUT", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    return env


def _write_idx(path: Path, a: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in a.shape)
    path.write_bytes(header + a.astype(np.uint8).tobytes())


def _data_dir(tmp_path: Path) -> Path:
    """What --prepare makes, smaller: the first 1000/200 Fashion-MNIST examples as IDX files (where
    Debian's package is installed; each of the dry run's processes reads them) and the fixture."""
    d = tmp_path / "device_data"
    (d / "fashion_mnist").mkdir(parents=True)
    if DEBIAN_FASHION_MNIST.is_dir():
        for stem, n in (("train", 1000), ("t10k", 200)):
            for kind, idx in (("images", 3), ("labels", 1)):
                name = f"{stem}-{kind}-idx{idx}-ubyte"
                _write_idx(d / "fashion_mnist" / name, read_idx(DEBIAN_FASHION_MNIST / f"{name}.gz")[:n])
    if SHARED_FIXTURE.is_file():
        (d / "pc_step_reference.npz").symlink_to(SHARED_FIXTURE)
    return d


def test_dry_run_passes_without_the_service_packages_and_reports_every_stage(tmp_path):
    env = _blocked_env(tmp_path)
    blocked = subprocess.run([sys.executable, "-c", "import pydantic"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "blocked by the test" in blocked.stderr  # the hook works
    out, data = tmp_path / "out" / "device_check.json", _data_dir(tmp_path)
    proc = subprocess.run([sys.executable, "benchmarks/device_check.py", "--dry-run", "--out", str(out),
                           "--data-dir", str(data)], cwd=REPO, env=env, capture_output=True, text=True, timeout=330)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    stages = report["stages"]
    assert list(stages) == ["env", "tests", "tests_fp32", "bench", "trials", "bench_fp32"]
    assert {k: v["status"] for k, v in stages.items()} == dict.fromkeys(stages, "passed"), stages
    assert report["dry_run"] and report["jax_platforms"] == "cpu"
    # The last line printed is the summary sentence, and it is in the JSON.
    assert proc.stdout.strip().splitlines()[-1] == report["summary"]
    assert report["summary"].startswith("DRY RUN") and "6/6 stages passed" in report["summary"]

    envr = stages["env"]["result"]
    assert envr["science_imports"]["failed"] == {} and envr["science_imports"]["modules"] >= 15
    assert not any(envr["service_packages_importable"].values())  # the stage processes ran under the blocker
    assert envr["device"]["backend"] == "cpu" and envr["device"]["jax"]
    if DEBIAN_FASHION_MNIST.is_dir():
        assert envr["data"]["source"] == "fashion_mnist" and envr["data"]["dir"] == str(data / "fashion_mnist")
        assert (envr["data"]["n_train"], envr["data"]["n_test"]) == (1000, 200)
    else:
        assert envr["data"]["source"] == "generated" and "not found" in envr["data"]["note"]

    tests = stages["tests"]["result"]
    outcomes = {r["test"]: r["outcome"] for r in tests["tests"]}
    assert "tests/test_pc_reference.py::test_fixture_conventions_match_ours" in outcomes
    assert "failed" not in outcomes.values() and "error" not in outcomes.values()
    if SHARED_FIXTURE.is_file():  # found through $MUTRANSFER_PC_FIXTURE in the data folder
        assert report["pc_fixture"] == str(data / "pc_step_reference.npz")
        assert outcomes["tests/test_pc_reference.py::test_matches_jpc_reference[sp-relu]"] == "passed"
    assert tests["conv_impl"] == "patches" and tests["matmul_precision"] == "default"
    assert stages["tests_fp32"]["result"]["matmul_precision"] == "highest"

    bench = stages["bench"]["result"]
    assert [w["width"] for w in bench["widths"]] == [8, 16]
    for w in bench["widths"]:
        assert w["run_steps_per_s"] > 0 and w["gflops"] > 0 and w["compile_s"] > 0 and w["cell_s"] > w["compile_s"]
        assert w["runs"] == 4 and w["chunks"] == 1 and w["estimated_bytes"] > 0
    assert bench["matmul_gflops"]["default"] > 0 and bench["matmul_gflops"]["highest"] > 0
    est = report["fig5_row_estimate"]
    assert est["complete"] and est["runs"] == 8 and est["seconds"] == pytest.approx(
        sum(w["cell_s"] for w in bench["widths"]))
    fp32 = stages["bench_fp32"]["result"]
    assert fp32["shape"]["matmul_precision"] == "highest" and [w["width"] for w in fp32["widths"]] == [16]

    trials = stages["trials"]["result"]
    assert trials["trial_env"] == devices.trial_env(2, 0.5) and "Ray is not installed" in trials["ray"]
    assert len(trials["trials"]) == 2 and trials["overlap_s"] > 0
    for t in trials["trials"]:
        assert t["env"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
        assert t["env"]["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.475"
        assert t["trained"]["ok"] + t["trained"]["diverged"] == 4 and t["trained"]["waited_for_peer"]


def test_a_stage_over_its_time_box_is_killed_and_recorded(tmp_path):
    check = _load_check()
    stage = check.STAGES[0]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    rec = check.run_stage(stage, dry_run=True, env=env, timeout=0.3, logs=tmp_path)
    assert rec["status"] == "timeout" and "time box" in rec["reason"]
    # The whole process group goes: a grandchild that would outlive its parent is killed too.
    marker = tmp_path / "grandchild.pid"
    code, wall = check.run_boxed([sys.executable, "-c", (
        "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
        f"open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(60)")], dict(os.environ), 2.0,
        tmp_path / "sleep.log")
    assert code is None  # killed at its time box (the child sleeps 60 s)
    stat = Path(f"/proc/{int(marker.read_text())}/stat")

    def dead() -> bool:  # gone, or a zombie nobody has reaped yet (its parent was killed first)
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    deadline = time.monotonic() + 30  # a SIGKILL lands in microseconds; the deadline only ends a failure
    while not dead() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dead()


def test_stages_that_cannot_fit_the_budget_are_skipped_with_the_reason(tmp_path):
    out = tmp_path / "dc.json"
    proc = subprocess.run([sys.executable, "benchmarks/device_check.py", "--dry-run", "--only", "env", "bench",
                           "--budget", "20", "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    # 20 s < env's 15 s minimum + bench's 45 s kept for it: nothing runs, both say why.
    assert [s["status"] for s in report["stages"].values()] == ["skipped", "skipped"]
    assert "time budget" in report["stages"]["env"]["reason"]
    assert report["summary"] == proc.stdout.strip().splitlines()[-1] and "0/2 stages passed" in report["summary"]


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_prepare_copies_data_and_fixture_and_checks_the_transfer_limit(tmp_path):
    fixture = tmp_path / "fixture.npz"
    fixture.write_bytes(b"x" * 100)
    data = tmp_path / "data"
    proc = subprocess.run([sys.executable, "benchmarks/device_check.py", "--prepare", "--data-dir", str(data),
                           "--fixture", str(fixture)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (data / "fashion_mnist").iterdir()) == sorted(
        p.name for p in DEBIAN_FASHION_MNIST.iterdir())
    assert (data / "pc_step_reference.npz").read_bytes() == fixture.read_bytes()
    assert "of 64 MiB" in proc.stdout and "outside the repository" in proc.stdout
    missing = subprocess.run([sys.executable, "benchmarks/device_check.py", "--prepare", "--data-dir", str(data),
                              "--source", str(tmp_path / "nowhere")], cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr


def test_trial_env_is_one_table_for_ray_and_the_check():
    assert devices.trial_env(1, 0) == {"OMP_NUM_THREADS": "1", "XLA_FLAGS": (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")}
    assert devices.trial_env(4, 0.5) == {"OMP_NUM_THREADS": "4", "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
                                         "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.475"}
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in devices.trial_env(2, 1)
    environ = {"XLA_FLAGS": "--operator-flag"}
    devices.apply_trial_env(devices.trial_env(1, 0.2), environ)
    assert environ["XLA_FLAGS"] == "--operator-flag" and environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.190"
    from sweeps.ray_exec import trial_env
    from sweeps.spec import parse_spec

    spec = parse_spec({"name": "t", "algorithms": ["pc"], "parametrizations": ["mupc"], "widths": [8], "depths": [2],
                       "weight_lrs": [0.1], "activity_lrs": [0.5], "dataset": {"name": "digits"},
                       "resources": {"cpus_per_trial": 4, "gpus_per_trial": 0.5}})
    assert trial_env(spec) == devices.trial_env(4, 0.5)


def test_every_selected_test_exists_and_collects_without_the_service_packages(tmp_path):
    # The GPU run's selection (not only the dry run's): a renamed test must fail here, not there.
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from device_stages import SELECTIONS
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    nodes = sorted({node for sel in SELECTIONS.values() for node, _ in sel})
    env = {**_blocked_env(tmp_path), "JAX_PLATFORMS": "cpu", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *nodes],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    collected = [ln for ln in proc.stdout.splitlines() if ln.startswith("tests/")]
    for node in nodes:
        assert any(c == node or c.startswith(node + "::") or c.startswith(node + "[") for c in collected), node
