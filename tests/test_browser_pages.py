"""Pages that never mislead and lead to the next step (issue 22), in a real headless Chromium
(tests/chromium.py) against a real uvicorn on loopback serving real Parquet results:

* the contours page draws each size's training curves at that size's optimum (the star) with a
  seed band, and the base optimum transferred as a second curve;
* a diverged run reads +∞ in the runs table (as the report counts it) and its page marks where it
  diverged;
* a click on a contour grid point opens that point's runs;
* ``/sweeps/{id}`` is an overview page in a browser and JSON otherwise; "report (JSON)" is JSON;
* ``/docs`` renders with no network (Swagger UI served by the app);
* the compare page labels its sides by parameterisation, its legend colours match its bars, and it
  warns when the sweeps differ in dataset or depth.
"""

import json
import os
import shutil
import subprocess
import time

import httpx
import pytest

from chromium import CHROMIUM, Chromium
from conftest import free_port
from mutransfer.results import ResultsStore
from test_dashboards import make_curves, make_runs
from test_pages import write_sweep

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")

SID = "synth-0badc0de"    # μPC and SP of one setting, widths 32-128, two seeds, some runs diverged
OTHER = "other-0badc0df"  # another dataset and depth, for the compare warning
RECORDED = 2.564          # what a diverged run recorded before it blew up (finite!)
SPEC = {"name": "synth", "parametrizations": ["mupc", "sp"], "widths": [32, 64, 128], "depths": [2],
        "weight_lrs": [1e-3, 1e-2, 5e-2, 1e-1, 5e-1], "activity_lrs": [0.1, 0.5, 1.0, 10.0], "seeds": 2,
        "dataset": {"name": "fashion_mnist"}, "training": {"epochs": 1, "batch_size": 64}}


def _sweep_runs():
    import pandas as pd

    mupc = make_runs(depths=(2,), bp=False, parametrization="mupc")
    sp = make_runs(depths=(2,), bp=False, parametrization="sp", shift=0.6, rng_seed=1)
    runs = pd.concat([mupc, sp], ignore_index=True)
    runs["run_id"] = runs["cell_id"] + "-" + runs.index.map(lambda i: f"{i:06x}")
    bad = runs.status == "diverged"
    runs.loc[bad, "min_train_loss"] = RECORDED  # the trainer keeps the best loss seen before diverging
    return runs


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from sweeps.bookkeeping import save_spec
    from sweeps.spec import parse_spec

    root = tmp_path_factory.mktemp("pages-browser") / "results"
    runs = _sweep_runs()
    write_sweep(root, SID, runs, make_curves(runs))
    save_spec(ResultsStore(root), SID, parse_spec(SPEC))
    other = make_runs(depths=(4,), bp=False, parametrization="mupc").assign(dataset="digits")
    other["run_id"] = other["cell_id"] + "-" + other.index.map(lambda i: f"o{i:05x}")
    write_sweep(root, OTHER, other, make_curves(other, n_steps=3))
    port = free_port()
    env = {**os.environ, "MUTRANSFER_RESULTS": str(root), "MUTRANSFER_DRIVERS": "none"}
    proc = subprocess.Popen(["uvicorn", "service.app:app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env,
                            executable=shutil.which("uvicorn", path=os.path.dirname(os.sys.executable)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url, runs
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Chromium(tmp_path_factory.mktemp("chromium-pages")) as b:
        yield b


RENDERED = ("document.querySelectorAll('.plotly-graph-div').length > 0 && Array.from("
            "document.querySelectorAll('.plotly-graph-div')).every(d => d.querySelector('.main-svg'))")
TRACES = """Array.from(document.querySelectorAll('.plotly-graph-div')).flatMap((gd, g) =>
    gd.data.map((t, k) => ({g, k, meta: t.meta || {}, mode: t.mode || '', n: (t.x || []).length,
                           marker: t.marker || {}, name: t.name || '', type: t.type || 'scatter'})))"""


def test_contour_curves_are_at_each_sizes_optimum(served, browser):
    url, runs = served
    report = httpx.get(f"{url}/sweeps/{SID}/report?format=json", timeout=60).json()
    page = browser.open(f"{url}/sweeps/{SID}/contours", height=1600)
    page.wait_for(RENDERED)
    traces = page.eval(TRACES)
    curves = [t["meta"] for t in traces if t["meta"].get("role") == "optimum_curve"]
    by_run = runs.set_index("run_id")
    checked = 0
    for a in report["analyses"]:
        for e in a["sizes"]:
            drawn = [c for c in curves if c["size"] == e["size"] and c["run_ids"]
                     and by_run.loc[c["run_ids"][0], "parametrization"] == a["group"]["parametrization"]]
            assert len(drawn) == 1, (a["group"], e["size"])
            c = drawn[0]
            assert c["lrs"]["weight_lr"] == pytest.approx(e["eta_star"])
            assert c["lrs"]["activity_lr"] == pytest.approx(e["beta_star"])
            seeds = by_run.loc[c["run_ids"]]  # every seed of the star's grid point, no other run
            assert len(seeds) == 2 and set(seeds.seed) == {0, 1}
            assert (seeds.weight_lr == e["eta_star"]).all() and (seeds.activity_lr == e["beta_star"]).all()
            checked += 1
    assert checked == 6
    roles = [t["meta"].get("role") for t in traces]
    assert roles.count("seed_band") == 6  # a band per size's optimum curve (2 seeds each)
    # The base optimum transferred, as a second (dashed) curve where it differs from the size's own.
    assert "base_curve" in roles
    # Test accuracy (measured at a few steps) as markers, not a bare line.
    acc = [t for t in traces if t["meta"].get("role") == "test_acc"]
    assert acc and all("markers" in t["mode"] for t in acc)


def test_diverged_run_reads_diverged_in_table_and_is_marked_on_its_page(served, browser):
    url, runs = served
    bad = runs.loc[runs.status == "diverged"].iloc[0]
    page = browser.open(f"{url}/sweeps/{SID}/table#f.run_id={bad.run_id}")
    page.wait_for("window.__table && window.__table.ready")
    cells = page.eval("""Array.from(document.querySelectorAll('#runs tbody tr')).map(tr =>
        Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()))""")
    head = page.eval("Array.from(document.querySelectorAll('#runs thead tr.names th')).map(th => th.dataset.col)")
    assert len(cells) == 1
    value = cells[0][head.index("min_train_loss")]
    assert value.startswith("+∞") and "diverged" in value and "2.564" not in value
    # Sorted by the metric, best first: the diverged runs come last, as the report ranks them.
    page = browser.open(f"{url}/sweeps/{SID}/table#sort=min_train_loss&size=500")
    page.wait_for("window.__table && window.__table.ready")
    assert page.eval("document.querySelector('#runs tbody tr:last-child td.diverged') !== null")
    # Its run page: a warning card naming the step and a dashed line at that step on the curves.
    page.goto(f"{url}/sweeps/{SID}/runs/{bad.run_id}")
    page.wait_for(RENDERED)
    assert "diverged at step 50" in page.eval("document.getElementById('diverged').textContent")
    lines = page.eval("""Array.from(document.querySelectorAll('.plotly-graph-div')).flatMap(gd =>
        (gd.layout.shapes || []).filter(s => s.type === 'line' && s.x0 === s.x1).map(s => s.x0))""")
    assert lines and set(lines) == {50}
    marked = page.eval(TRACES)
    assert any(t["meta"].get("role") == "diverged_at" and t["meta"].get("step") == 50 for t in marked)
    assert "+∞" in page.eval("document.getElementById('run-settings').textContent")


def test_click_on_a_contour_grid_point_opens_its_runs(served, browser):
    url, runs = served
    page = browser.open(f"{url}/sweeps/{SID}/contours", height=1200)
    page.wait_for(RENDERED)
    page.wait_for("document.body.dataset.figuresWired > 0")
    target = page.eval("""(() => {
      const gd = Array.from(document.querySelectorAll('.plotly-graph-div'))
        .find(g => g.data.some(t => t.meta && t.meta.role === 'grid_point'));
      gd.scrollIntoView({block: 'center'});
      const k = gd.data.findIndex(t => t.meta && t.meta.role === 'grid_point');
      const t = gd.data[k], full = gd._fullData[k];
      const stars = gd.data.filter(s => s.meta && s.meta.role === 'optimum').map(s => s.customdata[0]);
      const i = t.customdata.findIndex(u => u && !stars.includes(u));
      const xa = gd._fullLayout[full.xaxis.replace('x', 'xaxis')], ya = gd._fullLayout[full.yaxis.replace('y', 'yaxis')];
      const r = gd.getBoundingClientRect();
      return {x: r.left + xa._offset + xa.l2p(t.x[i]), y: r.top + ya._offset + ya.l2p(t.y[i]),
              url: t.customdata[i], ids: t.meta.run_ids[i]};
    })()""")
    assert target["url"].startswith(f"/sweeps/{SID}/runs/") and len(target["ids"]) == 2
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": target["x"], "y": target["y"]})
    page.wait_for("Array.from(document.querySelectorAll('.plotly-graph-div')).some(gd => (gd._hoverdata || [])"
                  ".some(p => p.data.meta && p.data.meta.role === 'grid_point'))")
    page._forget_events()
    for kind in ("mousePressed", "mouseReleased"):
        page.send("Input.dispatchMouseEvent", {"type": kind, "x": target["x"], "y": target["y"], "button": "left",
                                               "clickCount": 1})
    page.wait_loaded()
    assert page.eval("location.pathname + location.search") == target["url"]
    text = page.eval("document.body.innerText")
    assert f"run {target['ids'][0]}" in text
    overlaid = page.eval(TRACES)
    assert {t["meta"].get("run_id") for t in overlaid if t["meta"].get("role") == "train_loss"} == set(target["ids"])


def test_sweep_address_is_an_overview_in_a_browser_and_json_otherwise(served, browser):
    url, runs = served
    page = browser.open(f"{url}/")
    page.click_and_wait_load(f'#sweeps tr[data-id="{SID}"] a.overview')
    assert page.eval("location.pathname") == f"/sweeps/{SID}"
    assert "overview" in page.eval("document.querySelector('h1').textContent")
    verdicts = page.eval("document.getElementById('verdicts').innerText")
    assert "mupc" in verdicts and "sp" in verdicts and page.eval(
        "document.querySelectorAll('#verdicts .badge').length") >= 2
    assert "regret" in verdicts and "grid steps" in verdicts  # each verdict with its reasons, not just a word
    assert "runs" in page.eval("document.getElementById('progress').innerText")
    assert "no restarts" in page.eval("document.getElementById('progress').innerText")
    spec = page.eval("document.querySelector('#spec pre').textContent")
    assert "parametrizations:" in spec and "mupc" in spec
    snippets = page.eval("document.querySelector('#pandas pre').textContent")
    assert f"{url}/sweeps/{SID}/runs" in snippets and "read_parquet" in snippets
    views = page.eval("Array.from(document.querySelectorAll('#views a')).map(a => a.getAttribute('href'))")
    for view in ("contours", "shift", "diagnostics", "table", "report"):
        assert any(f"/sweeps/{SID}/{view}" in v for v in views), view
    # "report (JSON)" opens JSON in the browser, not the HTML report.
    page.click_and_wait_load("#views a[href$='/report?format=json']")
    assert page.eval("document.contentType") == "application/json"
    assert json.loads(page.eval("document.querySelector('pre').textContent"))["metric"] == "min_train_loss"
    # Any other client gets the status JSON at the same address.
    r = httpx.get(f"{url}/sweeps/{SID}", timeout=60)
    assert r.headers["content-type"].startswith("application/json") and r.json()["id"] == SID


def test_docs_need_no_network(served):
    """/docs loads Swagger UI from this server only (no CDN), and the server has the files."""
    url, _ = served
    html = httpx.get(f"{url}/docs", timeout=60).text
    assert "cdn" not in html.lower() and "//" not in html.split("<script src=")[1][:60]
    for path in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css"):
        assert path in html and httpx.get(url + path, timeout=60).status_code == 200


def test_docs_render_offline(served, browser):
    """Swagger UI draws the API in a Chromium that resolves no host name (tests/chromium.py FLAGS):
    everything it loads comes from this server. A /docs that loads Swagger UI from a CDN draws
    nothing here, and its CDN requests are seen."""
    url, _ = served
    page = browser.open(f"{url}/docs")  # returns after the load event: every <script src> has run or failed
    loaded = "performance.getEntriesByType('resource').map(e => e.name)"
    assert page.eval("typeof SwaggerUIBundle") == "function", f"Swagger UI's script did not load: {page.eval(loaded)}"
    # Swagger UI fetches and resolves the whole OpenAPI document before it draws (seconds); the wait
    # ends as soon as the title or an error is drawn.
    page.wait_for("document.querySelector('.swagger-ui .info .title, .swagger-ui .errors-wrapper')", timeout=120)
    assert page.eval("!!document.querySelector('.swagger-ui .info .title')"), page.eval(
        "document.getElementById('swagger-ui').innerText.slice(0, 500)")
    assert "mutransfer" in page.eval("document.querySelector('.swagger-ui .info .title').textContent")
    page.wait_for("document.querySelectorAll('.opblock').length > 5", timeout=60)
    assert page.eval("Array.from(document.querySelectorAll('.opblock-summary-path')).some(p => "
                     "p.textContent.includes('/sweeps/{sweep_id}'))")
    loaded = page.eval(loaded)
    assert any(u.endswith("/openapi.json") for u in loaded) and any("swagger-ui-bundle.js" in u for u in loaded)
    assert all(u.startswith(url + "/") for u in loaded), [u for u in loaded if not u.startswith(url + "/")]


def test_compare_labels_colours_and_warnings(served, browser):
    url, _ = served
    page = browser.open(f"{url}/compare")  # bare: the picker
    page.wait_for("document.getElementById('compare')")
    assert page.eval("document.querySelectorAll('#compare-a option').length") == 2
    page.goto(f"{url}/compare?a={SID}&b={SID}")
    page.wait_for(RENDERED)
    meta = page.eval("Array.from(document.querySelectorAll('.plotly-graph-div')).map(gd => gd.layout.meta)")
    assert [m["labels"] for m in meta] == [["mupc", "sp"]]
    bars = page.eval("""Array.from(document.querySelectorAll('.plotly-graph-div')).flatMap(gd =>
        gd._fullData.filter(t => t.type === 'bar').map(t => ({name: t.name, colors: [].concat(t.marker.color),
          legend: gd.querySelector('.legend .traces') ? true : false})))""")
    assert len(bars) == 2
    for b in bars:  # one colour per side, the colour its legend entry shows
        assert len(set(b["colors"])) == 1, b
    assert bars[0]["colors"][0] != bars[1]["colors"][0]
    legend = page.eval("""Array.from(document.querySelectorAll('.legend .traces')).filter(g =>
        g.textContent.includes('regret')).map(g => [g.textContent, g.querySelector('.legendpoints path').style.fill])""")
    colors = {b["name"]: b["colors"][0] for b in bars}
    assert len(legend) == 2
    for text, fill in legend:
        want = colors[text.strip()]
        rgb = tuple(int(want[k:k + 2], 16) for k in (1, 3, 5))
        assert fill.replace(" ", "") == "rgb(%d,%d,%d)" % rgb, (text, fill, want)
    assert not page.eval("document.querySelector('.compare-warning')")  # same dataset and depth
    # Two sweeps that differ in dataset and depth: said above the figure.
    page.goto(f"{url}/compare?a={SID}&b={OTHER}")
    page.wait_for(RENDERED)
    warning = page.eval("document.querySelector('.compare-warning').textContent")
    assert "dataset (fashion_mnist vs digits)" in warning and "depth (2 vs 4)" in warning
    labels = page.eval("Array.from(document.querySelectorAll('.plotly-graph-div')).map(gd => gd.layout.meta.labels)")
    assert all(la[0].startswith("synth") and la[1].startswith("other") for la in labels)
