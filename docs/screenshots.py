"""Regenerate the dashboard screenshots in docs/ from real sweeps, in headless Chromium.

Data: the quickstart sweep (``sweeps/specs/quickstart.yaml``, run in-process when it is not under
--results yet: a few minutes on 2 cores) and a small coordinate-check sweep (the spec below: one
trivial training cell plus the μP coordinate check over widths 64–1024 for μPC and SP, the part
worth showing). The pages are served by a real uvicorn on loopback (MUTRANSFER_DRIVERS=none) and
captured at 1400 px wide.

    python docs/screenshots.py [--results DIR] [--out docs]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from chromium import Chromium  # noqa: E402  (the tests' stdlib DevTools driver)

from mutransfer.results import ResultsStore  # noqa: E402
from sweeps.local import run_sweep  # noqa: E402
from sweeps.spec import load_spec, parse_spec  # noqa: E402

COORD_SPEC = {
    "name": "coordcheck",
    "description": "μP coordinate check of tanh residual PC nets (H = 4), μPC vs SP, 3 Adam steps",
    "parametrizations": ["mupc"],
    "widths": [64],
    "depths": [4],
    "weight_lrs": [1e-2],
    "activity_lrs": [1.0],
    "seeds": 1,
    "dataset": {"name": "digits", "train_examples": 320},
    "training": {"epochs": 1, "batch_size": 64},
    "analyses": [{"kind": "coordinate_check", "settings": {
        "parametrizations": ["mupc", "sp"], "widths": [64, 128, 256, 512, 1024], "depths": [4], "steps": 3,
        "record_every": 1,
        "lr": 0.01, "activity_lr": 1.0, "dataset": "fashion_mnist"}}],
}

RENDERED = ("Array.from(document.querySelectorAll('.plotly-graph-div')).every(d => d.querySelector('.main-svg'))"
            " && document.readyState === 'complete'")


def ensure_sweeps(results: Path) -> tuple[str, str]:
    store = ResultsStore(results)
    quick = load_spec(ROOT / "sweeps/specs/quickstart.yaml")
    qid = quick.default_sweep_id()
    if qid not in store.sweeps():
        print(f"running the quickstart into {results} (minutes)…", flush=True)
        run_sweep(quick, results)
    coord = parse_spec(COORD_SPEC)
    cid = coord.default_sweep_id()
    if cid not in store.sweeps() or not store.analyses(cid):
        print("running the coordinate-check sweep…", flush=True)
        run_sweep(coord, results)
    return qid, cid


def serve(results: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MUTRANSFER_RESULTS": str(results), "MUTRANSFER_DRIVERS": "none"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.app:app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(Path(tempfile.gettempdir()) / "mutransfer-docs"),
                    help="results root holding (or receiving) the quickstart and coordinate-check sweeps")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="where the PNGs go")
    args = ap.parse_args()
    results, out = Path(args.results), Path(args.out)
    qid, cid = ensure_sweeps(results)
    runs = ResultsStore(results).load_runs(qid)
    rid = runs.sort_values("min_train_loss").run_id.iloc[0]
    bad = runs.loc[runs.status == "diverged"]
    proc, url = serve(results)
    figs = RENDERED
    # (file, path, viewport height, what to capture: None = viewport, or a CSS selector, wait for)
    shots = [
        ("index.png", "/", 760, None, figs),
        ("overview.png", f"/sweeps/{qid}", 1300, None, "document.getElementById('verdicts')"),
        ("contours.png", f"/sweeps/{qid}/contours", 1220, None, figs),
        ("lr_transfer.png", f"/sweeps/{qid}/contours", 1000, "#lr ~ .fig", figs),
        ("curves.png", f"/sweeps/{qid}/contours", 1000, "#curves ~ .fig", figs),
        ("shift.png", f"/sweeps/{qid}/shift", 1400, None, figs),
        ("table.png", f"/sweeps/{qid}/table#sort=min_train_loss&f.width=%3E%3D64", 900, None, figs),
        ("run.png", f"/sweeps/{qid}/runs/{rid}", 1500, None, figs),
        ("report.png", f"/sweeps/{qid}/report?format=html", 1100, None, "document.querySelector('table.sizes')"),
        ("compare.png", f"/compare?a={qid}&b={qid}", 1000, ".fig", figs),
        ("coord_check.png", f"/sweeps/{cid}/diagnostics", 1000, ".fig", figs),
        ("api_docs.png", "/docs", 900, None, "document.querySelectorAll('.opblock').length > 3"),
    ]
    if len(bad):
        shots.insert(8, ("run_diverged.png", f"/sweeps/{qid}/runs/{bad.run_id.iloc[0]}", 1300, None, figs))
        shots.insert(8, ("table_diverged.png", f"/sweeps/{qid}/table#sort=-min_train_loss", 700, None, figs))
    failed: list[str] = []
    try:
        with Chromium(tempfile.mkdtemp(prefix="mutransfer-shots-")) as browser:
            for name, path, height, selector, ready in shots:
                page = browser.open(url + path, width=1400, height=height)
                try:
                    page.wait_for(ready, timeout=90)
                except TimeoutError:
                    print(f"{name}: not ready after 90 s ({path}); page text: "
                          f"{page.eval('document.body.innerText.slice(0, 300)')!r}", file=sys.stderr)
                    failed.append(name)
                    continue
                time.sleep(0.5)
                shot = page.screenshot(out / name, selector=selector)
                print(f"{shot}: {shot.stat().st_size / 1e3:.0f} kB ({path})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
