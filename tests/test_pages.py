"""The dashboard routes on the real app (in-process ASGI, drivers not launched) over real Parquet
results: every sweep page links every view, the runs table and run pages, the metric selector, and
errors as HTML pages (404 unknown sweep / run, 422 bad query) rather than JSON bodies."""

import json
import re

import pytest
from fastapi.testclient import TestClient

from mutransfer.results import ResultsStore
from service.app import create_app
from service.settings import from_env
from test_dashboards import make_curves, make_runs

SID = "synthetic-0badcafe"


def write_sweep(root, sid, runs, curves=None):
    """Write a runs table (and its curves) as a sweep's parts, one per cell, the way trials do."""
    store = ResultsStore(root)
    runs = runs.assign(sweep_id=sid, spec_hash="0badcafe")
    for cell, r in runs.groupby("cell_id"):
        c = None if curves is None else curves[curves.run_id.isin(r.run_id)].assign(sweep_id=sid)
        store.write_part(sid, f"cell-{cell}", r, c)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("pages")
    runs = make_runs(depths=(2,))
    runs["run_id"] = runs["cell_id"] + "-" + runs.index.map(lambda i: f"{i:06x}")
    write_sweep(root, SID, runs, make_curves(runs))
    settings = from_env({"MUTRANSFER_RESULTS": str(root), "MUTRANSFER_DRIVERS": "none"})
    with TestClient(create_app(settings)) as c:
        c.runs = runs
        yield c


def is_html(r) -> bool:
    return r.headers["content-type"].startswith("text/html") and r.text.lstrip().lower().startswith("<!doctype html>")


def test_every_sweep_page_links_every_view(client):
    tabs = ("contours", "shift", "diagnostics", "table", "report")
    urls = {"contours": f"/sweeps/{SID}/contours", "shift": f"/sweeps/{SID}/shift",
            "diagnostics": f"/sweeps/{SID}/diagnostics", "table": f"/sweeps/{SID}/table",
            "report": f"/sweeps/{SID}/report?format=html"}
    for active, url in urls.items():
        r = client.get(url)
        assert r.status_code == 200 and is_html(r), url
        for tab in tabs:
            assert re.search(rf'href="/sweeps/{SID}/{tab}[^"]*" data-tab="{tab}"', r.text), (url, tab)
        assert f'data-tab="{active}" class="active"' in r.text
    # The report (HTML) links back to the dashboards; the JSON report is unchanged.
    assert client.get(f"/sweeps/{SID}/report").json()["analyses"]


def test_index_shows_verdicts_and_a_compare_picker(client):
    r = client.get("/")
    assert r.status_code == 200 and is_html(r)
    assert f'data-id="{SID}"' in r.text and 'class="l verdicts"' in r.text
    verdicts = re.findall(r'class="badge (transfers|does-not-transfer|inconclusive)', r.text)
    assert len(verdicts) == 2  # pc mupc and bp sp along width
    assert '<form id="compare"' in r.text and f'<option value="{SID}"' in r.text
    for view in ("contours", "shift", "diagnostics", "table", "report"):
        assert f'data-view="{view}"' in r.text


def test_metric_selector_changes_the_pages(client):
    r = client.get(f"/sweeps/{SID}/contours?metric=best_test_acc")
    assert r.status_code == 200
    assert '<option value="best_test_acc" selected>' in r.text and "best_test_acc" in r.text
    assert "Training curves at the optimum" in r.text and "/runs/" in r.text  # at each size's optimum, linked
    assert f"/sweeps/{SID}/table?metric=best_test_acc" in r.text
    r = client.get(f"/sweeps/{SID}/shift?metric=final_test_acc")
    assert r.status_code == 200 and '<option value="final_test_acc" selected>' in r.text
    t = client.get(f"/sweeps/{SID}/table?metric=final_train_loss")
    assert '"metric": "final_train_loss"' in t.text


def test_runs_table_embeds_every_run(client):
    r = client.get(f"/sweeps/{SID}/table")
    assert r.status_code == 200 and is_html(r)
    payload = json.loads(re.search(r'<script id="page-data" type="application/json">(.*?)</script>', r.text,
                                   re.S).group(1))["table"]
    assert payload["n"] == len(client.runs)
    col = {c["name"]: c for c in payload["columns"]}["run_id"]
    ids = [col["cells"][k] + "-" + s for k, s in zip(col["cell_codes"], col["suffix"])]
    assert sorted(ids) == sorted(client.runs.run_id)
    assert f"/sweeps/{SID}/runs/" in r.text


def test_run_page_and_overlay(client):
    runs = client.runs
    rid = runs.run_id.iloc[3]
    other = runs.run_id.iloc[4]
    r = client.get(f"/sweeps/{SID}/runs/{rid}")
    assert r.status_code == 200 and is_html(r) and f"run {rid}" in r.text
    assert '"train_loss"' in r.text and "energy" in r.text and 'class="plotly-graph-div"' in r.text
    r2 = client.get(f"/sweeps/{SID}/runs/{rid}", params={"also": [other]})
    assert r2.status_code == 200 and r2.text.count('"role":"train_loss"') == 2
    r3 = client.get(f"/sweeps/{SID}/runs/{rid}", params={"also": [other, "not-a-run"]})
    assert r3.status_code == 404 and is_html(r3) and "not-a-run" in r3.text  # an unknown overlay id


def test_html_routes_answer_html_errors(client):
    r = client.get("/sweeps/nope-12345678/contours")
    assert r.status_code == 404 and is_html(r)
    assert "There is no sweep &#x27;nope-12345678&#x27;" in r.text and f'href="/sweeps/{SID}"' in r.text
    for path in ("shift", "diagnostics", "table", "runs/x"):
        r = client.get(f"/sweeps/nope-12345678/{path}")
        assert r.status_code == 404 and is_html(r), path
    r = client.get(f"/sweeps/{SID}/runs/no-such-run")
    assert r.status_code == 404 and is_html(r) and "no finished run" in r.text
    assert f'href="/sweeps/{SID}/table"' in r.text
    r = client.get(f"/sweeps/{SID}/contours?metric=accuracy")
    assert r.status_code == 422 and is_html(r) and "metric: unknown &#x27;accuracy&#x27;" in r.text
    r = client.get(f"/sweeps/{SID}/report?diverged=nan")
    assert r.status_code == 422 and r.json()["message"].startswith("diverged: ")
    assert client.get(f"/sweeps/{SID}/report?diverged=best_before").json()["diverged"] == "best_before"
    r = client.get(f"/compare?a={SID}")  # half a choice: the picker, with A chosen
    assert r.status_code == 200 and is_html(r) and '<form id="compare"' in r.text
    r = client.get("/compare")  # bare: the picker
    assert r.status_code == 200 and is_html(r) and '<form id="compare"' in r.text
    r = client.get(f"/compare?a={SID}&b=nope-12345678")
    assert r.status_code == 404 and is_html(r)


def test_api_routes_answer_html_errors_to_browsers(client):
    """A browser (Accept led by text/html) or ?format=html gets an HTML error page from API routes
    too; API clients keep the JSON body with ``message``."""
    r = client.get("/sweeps/nope-12345678/report?format=html")
    assert r.status_code == 404 and is_html(r) and "nope-12345678" in r.text
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    r = client.get("/sweeps/nope-12345678", headers=browser)
    assert r.status_code == 404 and is_html(r)
    r = client.get(f"/sweeps/{SID}/report?metric=accuracy", headers=browser)
    assert r.status_code == 422 and is_html(r) and "metric" in r.text and "field-error" in r.text
    r = client.get("/sweeps/nope-12345678/report")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")
    assert "nope-12345678" in r.json()["message"]


def test_pages_status_vocabulary_matches_the_registry():
    """The listing's provisional statuses are the registry's active ones (one vocabulary)."""
    from sweeps import listing, registry

    assert listing.ACTIVE == registry.ACTIVE and set(registry.ACTIVE) <= set(registry.STATUSES)


def test_compare_same_sweep_draws_every_setting(client):
    r = client.get(f"/compare?a={SID}&b={SID}")
    assert r.status_code == 200 and is_html(r)
    assert r.text.count('class="plotly-graph-div"') >= 1 and "comparison(s)" in r.text


def test_big_pages_and_plotly_are_gzipped(client):
    r = client.get(f"/sweeps/{SID}/contours", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip" and is_html(r)  # httpx decoded it
    js = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert js.headers["content-encoding"] == "gzip" and "Plotly" in js.text[:2000]
    raw = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == js.content
    assert js.num_bytes_downloaded < len(raw.content) / 2


def test_report_is_provisional_from_the_registry_plan(client, monkeypatch):
    """The report route takes k/n cells and the spec's sizes from the sweep's registry row."""
    data = client.app.state.data
    cells = [{"part": f"cell-{c}", "cell_id": c, "status": "finished"} for c in sorted(client.runs.cell_id.unique())]
    cells.append({"part": "cell-pc-mupc-w256-d2", "cell_id": "pc-mupc-w256-d2", "status": "running"})
    monkeypatch.setattr(data, "row", lambda sid: {"spec": {"widths": [32, 64, 128, 256], "depths": [2]}})
    monkeypatch.setattr(data, "status", lambda sid: {"cells": cells, "metric": "min_train_loss", "status": "running"})
    rep = client.get(f"/sweeps/{SID}/report").json()
    assert rep["provisional"] == {"cells_done": len(cells) - 1, "cells_total": len(cells)}
    a = next(a for a in rep["analyses"] if a["group"]["algorithm"] == "pc" and a["axis"] == "width")
    assert any(r["code"] == "partial" and r["missing_sizes"] == [256] for r in a["reasons"])
