"""The decide loop end to end through the service: a real `mutransfer serve` (uvicorn on loopback),
a detached sweep driver on a Ray cluster started with the `ray` CLI, real training on digits. A spec
with a ``decide:`` field is submitted over HTTP; the test follows the sweep's server-sent progress
events to their end, then reads the rounds and the stop reason from the report JSON, the sweep's
status note and its optimum-shift page. Slow lane (Ray, a server, training)."""

import json

import httpx
import pytest
from serving import Server, follow_events, submit

pytestmark = pytest.mark.slow

# One seed: every verdict is undecided (too_few_seeds) or decided on one seed (then confirmed), so
# the loop adds seeds in round 1 whatever the losses; max_rounds 1 stops it after that round.
SPEC = {
    "name": "dec-e2e",
    "parametrizations": ["mupc"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [8, 16],
    "depths": [2],
    "weight_lrs": [1e-2, 1e-1, 3e-1],
    "activity_lrs": [0.5],
    "seeds": 1,
    "dataset": {"name": "digits", "train_examples": 640},
    "training": {"epochs": 1, "batch_size": 32},
    "logging": {"every": 5},
    "resources": {"max_concurrent_trials": 2},
    "decide": {"max_runs": 40, "max_rounds": 1, "max_seeds": 4},
}
OWN_RUNS = 2 * 3 * 1


@pytest.fixture
def server(tmp_path, ray_cli_cluster):
    s = Server(tmp_path / "results", ray_cli_cluster, MUTRANSFER_API_TOKEN="tok").start()
    yield s
    s.stop()


def test_a_decide_spec_over_http_runs_the_loop_and_reports_its_rounds(server):
    r = submit(server, SPEC, token="tok")
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    events = follow_events(server, sid, read_timeout=300)
    assert events[-1] == ("end", {"id": sid, "status": "finished"}), events[-3:]
    progress = [e for k, e in events if k == "progress"]

    rep = server.get(f"/sweeps/{sid}/report").json()
    rec = rep["decide"]
    assert rec is not None and len(rec["rounds"]) == 1, rec
    added = rec["runs_added"]
    assert added == rec["rounds"][0]["runs"] > 0
    adds = rec["rounds"][0]["additions"]
    assert adds and all(a["seeds"] and a["why"] and a["code"] for a in adds)
    assert all(len(a["seeds"]) > 1 for a in adds if a["code"] != "optimum_on_edge")  # seeds were added
    # One round allowed: it stopped on that limit, or the round decided every verdict; either way why.
    assert rec["stopped"] in ("max_rounds", "decided", "max_seeds"), rec
    if rec["stopped"] != "decided":
        assert rec["open"] and all(o["codes"] for o in rec["open"])
    assert [v["outcome"] for v in rec["verdicts"]] == [a["verdict"] for a in rep["analyses"]]

    # The round's runs are the sweep's: counted in its progress and trained by the driver.
    st = server.get(f"/sweeps/{sid}").json()
    assert st["runs_done"] == st["runs_total"] == OWN_RUNS + added, st
    assert max(p["runs_total"] for p in progress) == OWN_RUNS + added
    # Never "finished" between rounds: the stream (and any client) saw the end only after the loop stopped.
    assert all(p["status"] != "finished" for p in progress if p["runs_total"] < OWN_RUNS + added), progress
    assert st["note"].startswith("Decide: 1 round(s)") and "stopped:" in st["note"]
    runs = server.get(f"/sweeps/{sid}/runs?format=json").json()
    assert len(runs) == OWN_RUNS + added and len({x["run_id"] for x in runs}) == len(runs)

    # The sweep's optimum-shift page lists the round, what it added where, and why it stopped.
    page = server.get(f"/sweeps/{sid}/shift").text
    assert 'id="decide-rounds"' in page and f"round 1: +{added} runs" in page and "stopped:" in page
    for a in adds:
        assert a["cell"] in page
