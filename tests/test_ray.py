"""Sweeps on a real Ray: an embedded local cluster for the session (what `mutransfer run` starts by
default) and a second one started with the `ray` CLI on loopback for the --address path."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import free_port

from mutransfer.results import ResultsStore
from sweeps.local import run_sweep
from sweeps.ray_exec import PID_DIR_ENV, ClusterError, connect, run_sweep_ray
from sweeps.registry import Registry
from sweeps.spec import parse_spec

ray = pytest.importorskip("ray")

SPEC = {
    "name": "raytest",
    "parametrizations": ["mupc"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [8, 16, 32],
    "depths": [2],
    "weight_lrs": [1e-2, 1e-1],
    "activity_lrs": [0.5],
    "seeds": 2,
    "dataset": {"name": "digits", "train_examples": 640},
    "training": {"epochs": 1, "batch_size": 32},
    "logging": {"every": 5},
    "resources": {"max_concurrent_trials": 2},
}
METRICS = ["min_train_loss", "final_train_loss", "best_test_acc", "final_test_acc", "status", "steps"]


@pytest.fixture(scope="session")
def embedded_ray():
    connect(None)  # exactly what `mutransfer run` does without --address
    yield
    ray.shutdown()


def table(root) -> pd.DataFrame:
    runs = ResultsStore(root).load_runs()
    return runs.sort_values("run_id").reset_index(drop=True)


@pytest.fixture(scope="session")
def reference(embedded_ray, tmp_path_factory):
    """The sweep run uninterrupted on Ray: what retried, chunked and resumed sweeps must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    seen = []
    out = run_sweep_ray(parse_spec(SPEC), root, on_progress=lambda p: seen.append(p.runs_done))
    assert not out.cells_failed and len(out.cells_done) == 3
    assert seen[-1] == 12
    return root, table(root)


def assert_same_runs(got: pd.DataFrame, want: pd.DataFrame, rtol: float = 1e-6) -> None:
    assert list(got["run_id"]) == list(want["run_id"])  # same ids, each exactly once
    assert got["run_id"].is_unique
    for col in METRICS:
        if got[col].dtype.kind == "f":
            pd.testing.assert_series_equal(got[col], want[col], rtol=rtol, check_names=False)
        else:
            assert list(got[col]) == list(want[col])


def test_ray_sweep_matches_in_process_and_registers(reference, tmp_path):
    root, ray_table = reference
    out = run_sweep(parse_spec(SPEC), tmp_path)
    assert not out.cells_failed
    # Ray workers run XLA single-threaded (one CPU per trial); this process uses every core, so
    # float32 reductions happen in another order and high-lr runs drift apart by ~1e-4 over 20 steps.
    assert_same_runs(table(tmp_path), ray_table, rtol=2e-3)
    reg = Registry(root / "registry.sqlite")
    (row,) = reg.sweeps()
    assert row["status"] == "finished" and row["runs_total"] == 12
    assert reg.progress(row["sweep_id"])["runs_done"] == 12
    assert {t["status"] for t in reg.trials(row["sweep_id"])} == {"finished"}


def test_resubmitting_skips_finished_trials(reference):
    root, ray_table = reference
    again = run_sweep_ray(parse_spec(SPEC), root)
    assert len(again.cells_skipped) == 3 and not again.cells_done
    assert_same_runs(table(root), ray_table)


def test_chunked_trials(reference, tmp_path):
    spec = parse_spec({**SPEC, "resources": {"max_runs_per_trial": 3, "max_concurrent_trials": 2}})
    out = run_sweep_ray(spec, tmp_path)
    assert len(out.cells_done) == 6  # 4 runs per cell -> chunks of 2
    # A chunk is a smaller vmapped batch: same runs, float32 noise only.
    assert_same_runs(table(tmp_path), reference[1], rtol=2e-3)


def test_killed_worker_is_retried_and_its_runs_appear_once(reference, tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed = {}

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for f in pid_dir.iterdir():
                part, pid = f.name.rsplit(".", 1)
                killed[part] = int(pid)
                os.kill(int(pid), signal.SIGKILL)
                return
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    out = run_sweep_ray(parse_spec(SPEC), tmp_path / "results", extra_env={PID_DIR_ENV: str(pid_dir)},
                        max_failures=2)
    t.join()
    assert killed, "no trial started"
    (part,) = killed
    assert not out.cells_failed and part in out.cells_done
    assert_same_runs(table(tmp_path / "results"), reference[1])
    trials = {t["part"]: t for t in Registry(tmp_path / "results" / "registry.sqlite").trials(out.sweep_id)}
    assert trials[part]["attempts"] >= 2 and trials[part]["status"] == "finished"


def test_too_many_gpus_is_refused_with_numbers(embedded_ray, tmp_path):
    spec = parse_spec({**SPEC, "resources": {"gpus_per_trial": 4}})
    with pytest.raises(ClusterError, match=r"4.0 GPU\(s\) per trial requested but the cluster has 0 GPU"):
        run_sweep_ray(spec, tmp_path)
    assert not any(tmp_path.iterdir())


def test_unwritable_results_root_fails_cleanly(embedded_ray, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        run_sweep_ray(parse_spec(SPEC), blocker / "results")


def test_corrupt_registry_row_and_stray_temp_file_do_not_break_report(embedded_ray, tmp_path, capsys):
    from sweeps.cli import main

    out = run_sweep_ray(parse_spec(SPEC), tmp_path)
    part_dir = tmp_path / "runs" / f"sweep_id={out.sweep_id}"
    (part_dir / ".cell-x.parquet.1234.tmp").write_bytes(b"PAR1 half written")
    import sqlite3
    with sqlite3.connect(tmp_path / "registry.sqlite") as db:
        db.execute("UPDATE sweeps SET spec_json='{not json' WHERE sweep_id=?", (out.sweep_id,))
    capsys.readouterr()
    assert main(["report", out.sweep_id, "--results", str(tmp_path)]) == 0
    assert "verdict" in capsys.readouterr().out
    assert len(table(tmp_path)) == 12


# -- the --address path: a cluster started with the ray CLI on loopback (conftest) -----------

def _cli(*args, **kw) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mutransfer")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_driver_killed_then_resumed_equals_uninterrupted(ray_cli_cluster, reference, tmp_path):
    cli_cluster = ray_cli_cluster
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "resources": {"max_concurrent_trials": 1}}))
    root = tmp_path / "results"
    sweep_id = parse_spec(SPEC).default_sweep_id()  # resources don't change what a sweep computes
    driver = _cli("run", str(spec_file), "--results", str(root), "--address", cli_cluster)
    store = ResultsStore(root)
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None:
        if root.exists() and len(store.completed_parts(sweep_id)) >= 1:
            break
        time.sleep(0.2)
    assert driver.poll() is None, driver.communicate()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    done_before = store.completed_parts(sweep_id)
    assert 1 <= len(done_before) < 3
    resumed = _cli("run", str(spec_file), "--results", str(root), "--address", cli_cluster, "--resume", sweep_id)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "verdict" in out
    assert_same_runs(table(root), reference[1])


def test_unreachable_address_fails_fast_and_writes_nothing(tmp_path):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SPEC))
    proc = _cli("run", str(spec_file), "--results", str(tmp_path / "r"), "--address", f"127.0.0.1:{free_port()}")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "cannot reach a Ray cluster" in err
    assert not (tmp_path / "r").exists()


def test_relative_results_path_from_the_cli(ray_cli_cluster, tmp_path):
    """`mutransfer run spec --results results` (a relative path, as `make run` passes it): the
    trials run in other directories and must still write where the user asked."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "widths": [8]}))
    proc = _cli("run", str(spec_file), "--results", "results", "--address", ray_cli_cluster, cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert len(ResultsStore(tmp_path / "results").load_runs()) == 4
    assert "Cells not finished" not in out
