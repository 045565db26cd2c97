"""The dashboards in a real headless Chromium (Debian's ``chromium``, driven over the DevTools
protocol on a pipe: tests/chromium.py) against a real uvicorn on loopback serving real Parquet
results: pages render plotly offline with readable log ticks, every view is one click from
another, the runs table sorts / filters / pages / opens a run, the submit form puts errors next to
their fields and opens the new sweep, and figures export as SVG and PNG."""

import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from chromium import CHROMIUM, Chromium
from conftest import free_port
from sweeps.local import run_sweep
from sweeps.spec import parse_spec
from test_dashboards import make_curves, make_runs
from test_pages import write_sweep

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")

TOKEN = "browser-token"
SPEC = {
    "name": "browser",
    "parametrizations": ["mupc"],
    "widths": [8, 16],
    "depths": [2],
    "weight_lrs": [1e-2, 1e-1],
    "activity_lrs": [0.5, 1.0],
    "seeds": 1,
    "dataset": {"name": "digits", "train_examples": 320},
    "training": {"epochs": 1, "batch_size": 32},
}
BIG = "bigtable-5eedf00d"  # a synthetic 600-run sweep for the runs table


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "results"
    out = run_sweep(parse_spec(SPEC), root)
    assert not out.cells_failed
    big = make_runs(widths=(32, 64, 128, 256, 512), depths=(2,), seeds=(0, 1, 2), bp=False)
    big = make_runs_pair(big)  # 5 widths × 4 η × 5 β × 3 seeds × 2 parameterisations = 600 runs
    big["run_id"] = big["cell_id"] + "-" + big.index.map(lambda i: f"{i:06x}")
    write_sweep(root, BIG, big, make_curves(big, n_steps=3))
    port = free_port()
    env = {**os.environ, "MUTRANSFER_RESULTS": str(root), "MUTRANSFER_DRIVERS": "none",
           "MUTRANSFER_API_TOKEN": TOKEN}
    proc = subprocess.Popen(["uvicorn", "service.app:app", "--host", "127.0.0.1", "--port", str(port),
                             "--log-level", "warning"], env=env,
                            executable=shutil.which("uvicorn", path=os.path.dirname(os.sys.executable)))
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield url, out.sweep_id, big
    proc.terminate()
    proc.wait(timeout=30)


def make_runs_pair(runs):
    """The same grid under a second parameterisation, so the table has 600 runs."""
    import pandas as pd

    sp = runs.assign(parametrization="sp", cell_id=runs.cell_id.str.replace("mupc", "sp"),
                     min_train_loss=runs.min_train_loss * 1.2)
    return pd.concat([runs, sp], ignore_index=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Chromium(tmp_path_factory.mktemp("chromium")) as b:
        yield b


RENDERED = ("Array.from(document.querySelectorAll('.plotly-graph-div')).every(d => d.querySelector('.main-svg'))"
            " && document.querySelectorAll('.plotly-graph-div').length > 0")


def test_contour_page_renders_plots_offline_with_readable_log_ticks(served, browser, tmp_path):
    url, sid, _ = served
    page_url = f"{url}/sweeps/{sid}/contours"
    html = httpx.get(page_url, timeout=60).text  # a loaded machine renders a first page slowly
    assert "cdn.plot.ly" not in html and "/static/plotly.min.js" in html
    page = browser.open(page_url, height=1800)
    page.wait_for(RENDERED)
    assert page.eval("document.querySelectorAll('.main-svg').length") >= 4
    assert page.eval("!!document.querySelector('.contourlayer .contour, .heatmaplayer image')")
    text = page.eval("document.body.innerText")
    assert "N = 8" in text and "N = 16" in text  # one panel per width
    # Every rendered log axis reads as numbers that grow upwards (no bare minor digits).
    axes = page.eval("""Array.from(document.querySelectorAll('.plotly-graph-div')).flatMap(gd =>
        Object.keys(gd._fullLayout).filter(k => /^yaxis\\d*$/.test(k) && gd._fullLayout[k].type === 'log')
          .map(k => { const id = gd._fullLayout[k]._id;
            return Array.from(gd.querySelectorAll('g.' + id + 'tick text'))
              .map(t => [t.textContent, t.getBoundingClientRect().top]); }))""")
    assert axes and all(len(a) >= 2 for a in axes)
    for ticks in axes:
        vals = [float(t.replace("−", "-")) for t, _ in sorted(ticks, key=lambda p: -p[1])]  # bottom to top
        assert vals == sorted(vals) and len(set(vals)) == len(vals), ticks
    shot = page.screenshot(tmp_path / "contours.png")
    assert shot.stat().st_size > 30_000  # a blank page is a few KB


def test_navigation_between_every_view(served, browser):
    url, sid, _ = served
    page = browser.open(url + "/")
    page.wait_for(f"document.querySelector('tr[data-id=\"{sid}\"]')")
    assert page.eval(f"document.querySelector('tr[data-id=\"{sid}\"] .verdicts .badge') !== null")
    page.click_and_wait_load(f'tr[data-id="{sid}"] a[data-view="contours"]')
    assert page.eval("location.pathname") == f"/sweeps/{sid}/contours"
    for tab, title in (("shift", "optimum shift"), ("diagnostics", "diagnostics"), ("table", "runs table"),
                       ("report", "report"), ("contours", "contours")):
        page.click_and_wait_load(f'nav.tabs a[data-tab="{tab}"]')
        assert page.eval("document.title").endswith(title), tab
        assert page.eval(f"document.querySelector('nav.tabs a.active').dataset.tab") == tab
    # The metric selector reloads the page with the metric, and the tabs keep it.
    page.eval("(() => { const s = document.getElementById('metric'); s.value = 'best_test_acc'; "
              "s.dispatchEvent(new Event('change')); })()")
    page.wait_for("location.search === '?metric=best_test_acc' && document.readyState === 'complete'")
    assert "metric=best_test_acc" in page.eval("document.querySelector('a[data-tab=shift]').href")
    # The compare picker: the sweep against itself compares its settings; titles never cover legends.
    page.goto(url + "/")
    page.eval(f"document.getElementById('compare-a').value = '{sid}'; document.getElementById('compare-b').value = '{BIG}'")
    page.click_and_wait_load("#compare button[type=submit]")
    assert page.eval("location.pathname") == "/compare"
    page.wait_for(RENDERED)
    overlaps = page.eval("""Array.from(document.querySelectorAll('.plotly-graph-div')).map(gd => {
        const t = gd.querySelector('.gtitle'), l = gd.querySelector('.legend');
        if (!t || !l) return false; const a = t.getBoundingClientRect(), b = l.getBoundingClientRect();
        return !(a.bottom <= b.top || b.bottom <= a.top || a.right <= b.left || b.right <= a.left); })""")
    assert overlaps and not any(overlaps)


def test_runs_table_sorts_filters_pages_and_opens_a_run(served, browser):
    url, _, big = served
    page = browser.open(f"{url}/sweeps/{BIG}/table")
    page.wait_for("window.__table && window.__table.ready")
    rows = "document.querySelectorAll('#runs tbody tr').length"
    assert page.eval(rows) == 100 and page.eval("document.getElementById('count').textContent") == "600 runs"
    # Sort by width: ascending, then descending.
    col = "Array.from(document.querySelectorAll('#runs thead tr.names th')).findIndex(th => th.dataset.col === 'width')"
    first_width = f"+document.querySelector('#runs tbody tr').children[{col}].textContent"
    page.click('#runs th[data-col="width"]')
    assert page.eval(first_width) == big.width.min()
    page.click('#runs th[data-col="width"]')
    assert page.eval(first_width) == big.width.max()
    # Filter widths >= 128 and status diverged (a chip).
    page.type('input[data-filter="width"]', ">=128")
    n = int((big.width >= 128).sum())
    page.wait_for(f"document.getElementById('count').textContent === '{n} of 600 runs match'")
    page.click('#status-chips [data-status="diverged"]')
    n_div = int(((big.width >= 128) & (big.status == "diverged")).sum())
    assert 0 < n_div < n
    page.wait_for(f"document.getElementById('count').textContent === '{n_div} of 600 runs match'")
    assert page.eval("Array.from(document.querySelectorAll('#runs tbody .badge')).every(b => b.textContent === 'diverged')")
    page.click("#clear")
    page.wait_for("document.getElementById('count').textContent === '600 runs'")
    page.click("#next")
    assert page.eval("document.getElementById('pageinfo').textContent").startswith("101–200 of 600")
    # Open a run, then come back to the same view (state in the URL hash).
    page.type('input[data-filter="parametrization"]', "sp")
    page.wait_for("document.getElementById('count').textContent === '300 of 600 runs match'")
    rid = page.eval("document.querySelector('#runs tbody a.run').textContent")
    page.click_and_wait_load("#runs tbody a.run")
    assert page.eval("document.title") == f"run {rid}"
    page.wait_for(RENDERED)
    assert page.eval("document.querySelector('#run-settings').innerText").count("sp") >= 1
    page.eval("history.back()")
    page.wait_for("window.__table && window.__table.ready && location.pathname.endsWith('/table')")
    assert page.eval("document.querySelector('input[data-filter=parametrization]').value") == "sp"
    assert page.eval("document.getElementById('count').textContent") == "300 of 600 runs match"


def test_submit_form_errors_next_to_fields_then_redirects(served, browser):
    url, _, _ = served
    page = browser.open(url + "/")
    good = ("name: fromform\nparametrizations: [mupc]\nwidths: [8, 16]\ndepths: [2]\n"
            "weight_lrs: [0.01, 0.1]\nactivity_lrs: [0.5]\nseeds: 1\ndataset: {name: digits}\n")
    page.type("#spec", good)
    page.click("#submit")  # no token: 401, said next to the token field
    page.wait_for("document.querySelector('#token-errors .field-error')")
    assert "token" in page.eval("document.querySelector('#token-errors').textContent").lower()
    assert page.eval("document.querySelector('#spec-errors').textContent") == ""
    page.type("#token", TOKEN)
    bad = good.replace("widths: [8, 16]", "widths: [0, 16]").replace("seeds: 1", "seeds: 1\nwidht: 3")
    page.type("#spec", bad)
    page.click("#submit")
    page.wait_for("document.querySelectorAll('#spec-errors .field-error').length >= 2")
    errors = page.eval("Array.from(document.querySelectorAll('#spec-errors .field-error')).map(e => "
                       "[e.dataset.field, e.textContent])")
    fields = {f: t for f, t in errors}
    assert "widths[0]" in fields and "widht" in fields
    lines = bad.splitlines()
    assert f"line {lines.index('widths: [0, 16]') + 1}" in fields["widths[0]"]
    assert f"line {lines.index('widht: 3') + 1}" in fields["widht"]
    assert page.eval("location.pathname") == "/"  # nothing lost: still on the form
    page.type("#spec", good)
    page.click("#submit")
    page.wait_for("location.pathname.endsWith('/contours') && document.readyState === 'complete'")
    path = page.eval("location.pathname")
    assert re.fullmatch(r"/sweeps/fromform-[0-9a-f]{8}/contours", path)
    assert page.eval("document.querySelector('.badge.queued') !== null")


def test_figures_export_as_svg_and_png(served, browser):
    url, sid, _ = served
    page = browser.open(f"{url}/sweeps/{sid}/shift")
    page.wait_for(RENDERED)
    for fmt, magic in (("svg", b"<svg"), ("png", b"\x89PNG")):
        page.click(f'.fig [data-export="{fmt}"]')
        deadline = time.monotonic() + 30
        files = []
        while time.monotonic() < deadline and not files:
            files = [f for f in browser.downloads.glob(f"*.{fmt}") if f.stat().st_size > 1000]
            time.sleep(0.2)
        assert files, f"no {fmt} downloaded"
        assert magic in files[0].read_bytes()[:200]
