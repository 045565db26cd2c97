"""The HTTP service, for real: uvicorn on loopback (`mutransfer serve`), sweeps driven by detached
driver processes on a Ray cluster started with the `ray` CLI, Parquet pulled with pandas."""

import os
import signal
import time

import httpx
import pandas as pd
import pytest
from conftest import SMALL_SPEC
from serving import Server, follow_events, submit

SPEC = {**SMALL_SPEC, "name": "svc", "algorithms": ["pc"], "dataset": {"name": "digits", "train_examples": 640},
        "logging": {"every": 5}, "resources": {"max_concurrent_trials": 2}}
RUNS = 2 * 2 * 2 * 2


@pytest.fixture
def server(tmp_path, ray_cli_cluster):
    s = Server(tmp_path / "results", ray_cli_cluster, MUTRANSFER_API_TOKEN="s3cret").start()
    yield s
    s.stop()


def test_submit_progress_report_and_pandas(server):
    assert submit(server, SPEC).status_code == 401  # writes need the token when it is set
    r = submit(server, SPEC, token="s3cret")
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    assert r.json()["links"]["runs"] == f"/sweeps/{sid}/runs"

    events = follow_events(server, sid)
    assert events[-1] == ("end", {"id": sid, "status": "finished"})
    progress = [e for k, e in events if k == "progress"]
    assert progress[-1]["runs_done"] == RUNS and progress[-1]["cells_done"] == 2

    st = server.get(f"/sweeps/{sid}").json()
    assert st["status"] == "finished" and st["runs_done"] == st["runs_total"] == RUNS
    assert {c["status"] for c in st["cells"]} == {"finished"}

    rep = server.get(f"/sweeps/{sid}/report").json()
    assert rep["analyses"][0]["axis"] == "width" and rep["analyses"][0]["verdict"]
    html = server.get(f"/sweeps/{sid}/report", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html") and "verdict" in html.text.lower()

    runs = pd.read_parquet(f"{server.url}/sweeps/{sid}/runs")
    assert len(runs) == RUNS and runs["run_id"].is_unique
    only64 = pd.read_parquet(f"{server.url}/sweeps/{sid}/runs?width=16&weight_lr=0.1")
    assert len(only64) == 4 and set(only64.width) == {16}
    csv = pd.read_csv(f"{server.url}/sweeps/{sid}/runs?format=csv")
    assert len(csv) == RUNS
    js = server.get(f"/sweeps/{sid}/runs?format=json").json()
    assert len(js) == RUNS and all(row["activity_lr"] is not None for row in js)
    curves = pd.read_parquet(f"{server.url}/sweeps/{sid}/curves?width=8")
    assert set(curves.run_id) == set(runs.loc[runs.width == 8, "run_id"])
    assert server.get(f"/sweeps/{sid}/contours").status_code == 200
    listing = server.get("/sweeps?status=finished").json()
    assert [i["id"] for i in listing["items"]] == [sid]


def test_cancel_stops_trials_and_keeps_finished_results(server):
    slow = {**SPEC, "name": "svc-cancel", "widths": [8, 16, 32, 64], "training": {"epochs": 30, "batch_size": 32},
            "resources": {"max_concurrent_trials": 1}}
    sid = submit(server, slow, token="s3cret").json()["id"]
    server.wait(sid, ("running",))
    deadline = time.time() + 180  # cancel once a cell has finished, while the next one trains
    while time.time() < deadline and not any(c["status"] == "finished" for c in server.get(f"/sweeps/{sid}").json()["cells"]):
        time.sleep(0.3)
    r = httpx.delete(f"{server.url}/sweeps/{sid}", headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert r.status_code == 202 and r.json()["cancelled"]
    st = server.wait(sid, ("cancelled",), timeout=120)
    assert 0 < st["runs_done"] < st["runs_total"]
    assert st["error"] is None  # not "failed: TypeError" from trials stopped before they started (issue 10 #11)
    statuses = [c["status"] for c in st["cells"]]
    assert "finished" in statuses and "cancelled" in statuses and set(statuses) <= {"finished", "cancelled"}
    runs = pd.read_parquet(f"{server.url}/sweeps/{sid}/runs") if st["runs_done"] else pd.DataFrame({"run_id": []})
    assert len(runs) == st["runs_done"] and runs["run_id"].is_unique
    again = httpx.delete(f"{server.url}/sweeps/{sid}", headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert again.status_code == 202 and not again.json()["cancelled"]


def test_restarting_the_api_mid_sweep_loses_nothing(tmp_path, ray_cli_cluster):
    spec = {**SPEC, "name": "svc-restart", "widths": [8, 16, 32], "training": {"epochs": 6, "batch_size": 32},
            "resources": {"max_concurrent_trials": 1}}
    root = tmp_path / "results"
    a = Server(root, ray_cli_cluster).start()
    sid = submit(a, spec).json()["id"]
    a.wait(sid, ("running",))
    from sweeps.registry import Registry
    driver = Registry(root / "registry.sqlite").sweep(sid)["driver_pid"]
    # The API and the sweep's driver both die (e.g. the machine's service manager restarts them).
    a.kill()
    os.kill(driver, signal.SIGKILL)
    b = Server(root, ray_cli_cluster).start()  # adopts the orphaned sweep and relaunches a driver
    try:
        st = b.wait(sid, ("finished",), timeout=300)
        assert st["runs_done"] == st["runs_total"] == 3 * 8
        runs = pd.read_parquet(f"{b.url}/sweeps/{sid}/runs")
        assert len(runs) == 24 and runs["run_id"].is_unique
    finally:
        b.stop()
