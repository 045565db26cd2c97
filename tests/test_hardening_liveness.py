"""Issue 21 item 1: every path that starts a driver gives it a fresh liveness record, so the
supervisor never judges a new driver by the previous one's last heartbeat.

The first test drives the supervisor's pass with an injected clock (no waiting 30 s): a real lock
held, a real process to kill. The others run real sweeps through `mutransfer serve` on the session's
Ray cluster and age the registry's liveness columns by an hour before each resume (what a resume
hours after the sweep ended looks like); each must end with every run present and the restart
budget untouched by the resume itself."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess

import pandas as pd
import pytest
from serving import TINY, Server, submit, wait_for

from service.data import SweepData
from service.settings import Settings
from service.supervisor import supervise_once
from sweeps import locks
from sweeps.limits import Limits
from sweeps.spec import parse_spec

HOUR = 3600.0


def _settings(tmp_path, **kw) -> Settings:
    return Settings(results=str(tmp_path / "results"), registry=str(tmp_path / "results" / "registry.sqlite"),
                    api_token=None, ray_address=None, limits=Limits(), **kw)


def test_supervisor_measures_silence_from_the_launch_not_the_previous_driver(tmp_path):
    settings = _settings(tmp_path, hung_after_s=30.0)
    data = SweepData(settings)
    reg = data.registry
    sid = "resume-0123abcd"
    reg.register(sid, "resume", {"resources": {"driver_restarts": 0}}, "h", [("cell-a", "a", 2)], owner="service")
    reg.start_run(sid, 0)  # a previous driver ran and beat ...
    with sqlite3.connect(settings.registry) as db:  # ... an hour ago
        db.execute("UPDATE sweeps SET heartbeat_at=heartbeat_at-?, status='queued' WHERE sweep_id=?", (HOUR, sid))
    fd = locks.acquire(locks.lock_path(settings.registry, sid))  # a driver holds the sweep now
    driver = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        gen = reg.new_launch(sid)
        reg.set_driver(sid, driver.pid)
        launched = reg.sweep(sid)["launched_at"]
        assert reg.sweep(sid)["heartbeat_at"] is None and gen == 1
        # Its first beat is not due yet: nothing is done, however old the last driver's beat was.
        assert supervise_once(settings, data, now=launched + 29.0) == []
        assert driver.poll() is None
        # A beat of an older launch does not count for this one; its own does.
        reg.heartbeat(sid, generation=gen - 1)
        assert reg.sweep(sid)["heartbeat_at"] is None
        reg.heartbeat(sid, generation=gen)
        beat = reg.sweep(sid)["heartbeat_at"]
        assert supervise_once(settings, data, now=beat + 29.0) == []
        # Silent past the limit from its own last sign of life: killed.
        actions = supervise_once(settings, data, now=beat + 31.0)
        assert actions == [f"{sid}: driver {driver.pid} silent for 31 s; killed"], actions
        assert driver.wait(timeout=30) == -signal.SIGKILL
    finally:
        if driver.poll() is None:
            driver.kill()
        locks.release(fd)
    assert reg.sweep(sid)["restarts"] == 0


# ------------------------------------------------------------------------ real sweeps, real Ray


def sid_of(spec: dict) -> str:
    return parse_spec(spec).default_sweep_id()


@pytest.fixture(scope="module")
def server(tmp_path_factory, ray_cli_cluster):
    tmp = tmp_path_factory.mktemp("resume")
    s = Server(tmp / "results", ray_cli_cluster, MUTRANSFER_MAX_CONCURRENT=20, MUTRANSFER_SUPERVISE_S=0.5).start()
    yield s
    s.stop()


def _db(server: Server):
    db = sqlite3.connect(server.root / "registry.sqlite")
    db.row_factory = sqlite3.Row
    return db


def row(server: Server, sid: str) -> dict:
    with _db(server) as db:
        return dict(db.execute("SELECT * FROM sweeps WHERE sweep_id=?", (sid,)).fetchone())


def age_liveness(server: Server, sid: str) -> None:
    """Make the sweep's last driver look like it beat an hour ago (a resume an hour later)."""
    with _db(server) as db:
        db.execute("UPDATE sweeps SET heartbeat_at=coalesce(heartbeat_at, ?)-?, launched_at=launched_at-? "
                   "WHERE sweep_id=?", (row(server, sid)["updated_at"], HOUR, HOUR, sid))


def starts(server: Server, sid: str) -> int:
    return (server.root / "logs" / f"{sid}.log").read_text().count(f"started for sweep {sid}")


def ended(server: Server, sid: str) -> bool:
    """The registry (not the API's 0.5-s status cache) says the sweep's driver has ended it."""
    return row(server, sid)["status"] not in ("queued", "running")


def all_runs(server: Server, sid: str, st: dict) -> None:
    assert st["status"] == "finished" and st["runs_done"] == st["runs_total"] > 0, st
    runs = pd.read_parquet(f"{server.url}/sweeps/{sid}/runs")
    assert len(runs) == st["runs_total"] and runs["run_id"].is_unique


def no_kill(server: Server, sid: str) -> None:
    assert "silent for" not in "".join(ln for ln in server.log.read_text().splitlines() if sid in ln), \
        server.log.read_text()[-2000:]


NO_RELAUNCH = {"max_concurrent_trials": 1, "driver_restarts": 0}  # any kill would fail the sweep


def test_resubmitting_a_finished_sweep_hours_later_resumes_it(server):
    spec = {**TINY, "name": "res-finished", "resources": NO_RELAUNCH}
    sid = submit(server, spec).json()["id"]
    server.wait(sid)
    age_liveness(server, sid)
    r = submit(server, spec)
    assert r.status_code == 202 and r.json()["resubmitted"], r.text
    wait_for(lambda: starts(server, sid) == 2 and ended(server, sid), timeout=240)
    st = server.wait(sid, timeout=30)
    all_runs(server, sid, st)
    assert st["restarts"] == 0 and row(server, sid)["launch_gen"] == 2
    no_kill(server, sid)


def test_resubmitting_a_cancelled_sweep_computes_the_rest(server):
    spec = {**TINY, "name": "res-cancelled", "resources": NO_RELAUNCH}
    sid = submit(server, spec).json()["id"]
    assert server.get(f"/sweeps/{sid}").status_code == 200
    import httpx
    assert httpx.delete(f"{server.url}/sweeps/{sid}", timeout=30).json()["cancelled"]
    st = server.wait(sid, ("cancelled",), timeout=180)
    assert st["runs_done"] == 0
    lock = locks.lock_path(server.root / "registry.sqlite", sid)
    wait_for(lambda: not locks.held(lock), timeout=120)  # the cancelled driver has exited
    age_liveness(server, sid)
    # Resubmitted while a previous driver still holds the sweep (as one exiting after a cancel
    # does, for a moment): this test holds its lock. No driver can start yet, and none is killed.
    fd = locks.acquire(lock)
    try:
        assert submit(server, spec).status_code == 202
        assert row(server, sid)["launched_at"] is None and server.status(sid)["status"] == "queued"
    finally:
        locks.release(fd)
    # Once it is free, the supervisor starts the sweep's driver: a first launch, not a relaunch.
    st = server.wait(sid, timeout=240)
    all_runs(server, sid, st)
    assert st["restarts"] == 0 and starts(server, sid) == 2, st
    assert f"{sid}: started (its previous driver had not exited" in server.log.read_text()
    no_kill(server, sid)


def test_quarantined_part_is_recomputed_when_relaunches_are_spent(server):
    spec = {**TINY, "name": "res-quarantine", "resources": NO_RELAUNCH}  # driver_restarts 0: all spent
    sid = submit(server, spec).json()["id"]
    server.wait(sid)
    age_liveness(server, sid)
    (part,) = (server.root / "runs" / f"sweep_id={sid}").glob("cell-*.parquet")
    part.write_bytes(part.read_bytes()[:200])  # truncated: the supervisor quarantines and relaunches
    wait_for(lambda: starts(server, sid) == 2 and ended(server, sid), timeout=240)
    st = server.wait(sid, timeout=30)
    all_runs(server, sid, st)
    assert st["restarts"] == 0 and "recomputed" in (st["cells"][0]["note"] or ""), st
    no_kill(server, sid)


def test_relaunch_after_a_kill_spends_one_restart_and_finishes(server):
    spec = {**TINY, "name": "res-kill", "widths": [8, 16], "training": {"epochs": 6, "batch_size": 32},
            "resources": {"max_concurrent_trials": 1, "driver_restarts": 1}}
    sid = submit(server, spec).json()["id"]
    wait_for(lambda: any(c["status"] == "running" for c in server.status(sid)["cells"]), timeout=180)
    os.kill(row(server, sid)["driver_pid"], signal.SIGKILL)
    wait_for(lambda: row(server, sid)["launch_gen"] == 2, timeout=60)
    st = server.wait(sid, timeout=300)
    all_runs(server, sid, st)
    assert st["restarts"] == 1 and "relaunched (1 of at most 1)" in st["note"], st
    no_kill(server, sid)


def test_a_trial_that_cannot_run_fails_once_with_a_one_line_reason(ray_cli_cluster, tmp_path):
    """A spec the service would refuse (batch larger than the data), run through Ray directly (in a
    process of its own, so this session's Ray stays as it is): the cell fails once, not retried, with
    the trainer's one-line reason; no traceback or colour codes in the registry."""
    import sys

    from sweeps.registry import Registry

    spec = {**TINY, "name": "cannot-run", "training": {"epochs": 1, "batch_size": 512}}
    sid = sid_of(spec)
    code = ("import sys, json; from sweeps.ray_exec import run_sweep_ray; from sweeps.spec import parse_spec; "
            "out = run_sweep_ray(parse_spec(json.loads(sys.argv[1])), sys.argv[2], address=sys.argv[3], "
            "registry_path=sys.argv[4]); print(json.dumps(out.cells_failed))")
    import json
    done = subprocess.run([sys.executable, "-c", code, json.dumps(spec), str(tmp_path / "results"), ray_cli_cluster,
                           str(tmp_path / "registry.sqlite")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-3000:]
    reason = "ValueError: batch_size 512 exceeds the 320 training examples"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"cell-pc-mupc-w8-d2": reason}
    reg = Registry(tmp_path / "registry.sqlite")
    (cell,) = reg.trials(sid)
    assert (cell["status"], cell["attempts"], cell["error"]) == ("failed", 1, reason), cell
    row = reg.sweep(sid)
    assert row["status"] == "failed" and row["error"] == f"cell-pc-mupc-w8-d2: {reason}", row["error"]
