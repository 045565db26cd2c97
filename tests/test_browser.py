"""The contour dashboard in a real headless Chromium (Debian's `chromium`): the page must render
plotly figures offline (SVG present in the DOM), not merely answer 200."""

import os
import re
import shutil
import subprocess
import time

import httpx
import pytest

from conftest import free_port
from sweeps.local import run_sweep
from sweeps.spec import parse_spec

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1800", "--virtual-time-budget=15000"]

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


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "results"
    out = run_sweep(parse_spec(SPEC), root)
    assert not out.cells_failed
    port = free_port()
    env = {**os.environ, "MUTRANSFER_RESULTS": str(root), "MUTRANSFER_DRIVERS": "none"}
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
    yield url, out.sweep_id
    proc.terminate()
    proc.wait(timeout=30)


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_contour_page_renders_plots_offline(served, tmp_path):
    url, sid = served
    page = f"{url}/sweeps/{sid}/contours"
    html = httpx.get(page).text
    assert "cdn.plot.ly" not in html and "/static/plotly.min.js" in html
    dom = chromium(tmp_path, "--dump-dom", page).stdout
    # plotly draws each figure into <svg class="main-svg">; contour panels add "contour" layers.
    assert len(re.findall(r'class="main-svg"', dom)) >= 4, dom[:2000]
    assert "contourlayer" in dom or "heatmaplayer" in dom
    assert "N = 8" in dom and "N = 16" in dom  # one panel per width
    shot = tmp_path / "contours.png"
    chromium(tmp_path, f"--screenshot={shot}", page)
    assert shot.exists() and shot.stat().st_size > 30_000  # a blank page is a few KB
