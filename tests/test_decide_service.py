"""The decide loop over HTTP (fast lane: the app in-process, no driver launched): the ``decide:`` field is
validated and counted against the run limit; ``POST /sweeps/{id}/decide`` resubmits the same sweep with
it; the shift page offers a decide button per undecided analysis and shows the loop's rounds."""

import pandas as pd
import pytest

from dashboards.decide_panel import decide_panel, inject, rounds_html
from mutransfer.results import ResultsStore
from sweeps import decide
from sweeps.spec import parse_spec
from test_api import SPEC, make_client


@pytest.fixture
def client(tmp_path):
    with make_client(tmp_path, MUTRANSFER_MAX_RUNS=100, MUTRANSFER_API_TOKEN="tok") as c:
        c.headers["Authorization"] = "Bearer tok"
        yield c


def test_decide_field_is_validated_and_counted_against_max_runs(client):
    r = client.post("/sweeps", json={**SPEC, "decide": {"max_seeds": 1}})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "decide.max_seeds"
    r = client.post("/sweeps", json={**SPEC, "decide": {"max_runs": 200}})
    assert r.status_code == 422 and "decide.max_runs" in r.text and "MUTRANSFER_MAX_RUNS" in r.text


def write_runs(store, spec, sid):
    """One cell per width with a seed-noisy loss: inconclusive (one seed: too_few_seeds)."""
    for t in decide.all_trials(spec, None, None):
        c = t.cell.spec
        rows = [dict(run_id=r.run_id, cell_id=t.cell.cell_id, algorithm=c.algorithm, parametrization=c.parametrization,
                     width=c.width, depth=c.depth, activation=c.activation, dataset="digits", weight_lr=r.weight_lr,
                     activity_lr=r.activity_lr, seed=r.seed, status="ok", min_train_loss=1.0 + abs(r.weight_lr - 0.05),
                     steps=10, wall_s=0.5, spec_hash=spec.spec_hash()) for r in t.runs]
        store.write_part(sid, t.part, pd.DataFrame(rows), None)


def test_decide_endpoint_resubmits_the_same_sweep_and_the_page_offers_it(client, tmp_path):
    spec = parse_spec({**SPEC, "weight_lrs": [0.01, 0.05, 0.1]})
    r = client.post("/sweeps", json=spec.canonical())
    sid = r.json()["id"]
    assert client.delete(f"/sweeps/{sid}").status_code == 202  # no driver here: end it, keep its row
    write_runs(ResultsStore(tmp_path), spec, sid)
    page = client.get(f"/sweeps/{sid}/shift").text
    assert 'class="decide"' in page and f"/sweeps/{sid}/decide" in page and "too_few_seeds" in page
    assert "at most <b>6</b> runs added" in page and "≈ 3 s" in page  # the spec's run count × its 0.5 s a run

    r = client.post(f"/sweeps/{sid}/decide", json={"max_seeds": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "decide.max_seeds"
    r = client.post(f"/sweeps/{sid}/decide", content=b"not json")
    assert r.status_code == 422
    r = client.post(f"/sweeps/{sid}/decide", json={"max_runs": 12, "max_rounds": 2})
    assert r.status_code == 202 and r.json()["id"] == sid  # decide: is not in the hash: the same sweep
    row = client.get(f"/sweeps/{sid}").json()
    assert row["status"] == "queued"
    assert parse_spec(client.app.state.data.registry.sweep(sid)["spec"]).decide.max_runs == 12


def test_panel_shows_rounds_and_why_it_stopped():
    record = {"rounds": [{"number": 1, "runs": 4, "additions": [
        {"cell": "pc-mupc-w16-d2", "runs": 4, "code": "uncertain", "why": "4 seeds at 2 candidate point(s)"}]}],
        "runs_added": 4, "stopped": "max_runs", "detail": "the next round needs 9 runs",
        "open": [{"analysis": "pc/mupc over width", "outcome": "inconclusive", "codes": ["uncertain"]}]}
    html = rounds_html(record)
    assert "round 1: +4 runs" in html and "limit hit: max_runs" in html and "pc/mupc over width" in html
    assert decide_panel(None, "s-1", None) == ""
    assert inject("<main>x</main>", html) == f"<main>x{html}</main>" and inject("<p>", html) == "<p>"
