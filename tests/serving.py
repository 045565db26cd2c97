"""A real `mutransfer serve` on loopback for tests (a uvicorn process on a free port)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml
from conftest import free_port

# A one-cell sweep small enough for fault-injection tests (a few seconds per cell on 2 cores).
TINY = {
    "name": "drv",
    "parametrizations": ["mupc"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [8],
    "depths": [2],
    "weight_lrs": [1e-2, 1e-1],
    "activity_lrs": [0.5],
    "seeds": 1,
    "dataset": {"name": "digits", "train_examples": 320},
    "training": {"epochs": 1, "batch_size": 32},
    "logging": {"every": 5},
    "resources": {"max_concurrent_trials": 1},
}


def wait_for(cond, timeout: float, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(every)
    raise AssertionError("timed out")


class Server:
    """`mutransfer serve --results ROOT [--address ADDRESS] [ARGS...]` with ENV added to this
    process's environment (less an inherited MUTRANSFER_API_TOKEN: writes are open unless ENV sets one)."""

    def __init__(self, root: Path, address: str | None, *args: str, **env):
        self.root, self.address, self.args, self.env = root, address, args, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log = root.parent / f"serve-{self.port}.log"

    def start(self, timeout: float = 60) -> "Server":
        exe = Path(sys.executable).with_name("mutransfer")
        env = {**{k: v for k, v in os.environ.items() if k != "MUTRANSFER_API_TOKEN"},
               **{k: str(v) for k, v in self.env.items()}}
        cmd = [str(exe), "serve", "--results", str(self.root), "--port", str(self.port), *self.args]
        if self.address:
            cmd += ["--address", self.address]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def get(self, path, **kw):
        return httpx.get(self.url + path, timeout=30, **kw)

    def status(self, sid: str) -> dict:
        return self.get(f"/sweeps/{sid}").json()

    def wait(self, sid: str, statuses=("finished",), timeout=240, check=None) -> dict:
        """Poll until the sweep reaches one of ``statuses`` (``check(status)`` on every poll)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status(sid)
            if check:
                check(st)
            if st["status"] in statuses:
                return st
            if st["status"] in ("failed", "cancelled", "finished"):
                raise AssertionError(f"sweep ended {st['status']}: {st.get('error')}")
            time.sleep(0.3)
        raise AssertionError(f"timed out; last status {st}")


def submit(server: Server, spec: dict, token: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/yaml"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(server.url + "/sweeps", content=yaml.safe_dump(spec), headers=headers, timeout=30)


def write_finished_sweep(root: Path, spec_dict: dict) -> str:
    """A finished sweep on disk without training: real Parquet parts (one per planned cell, every
    planned run with made-up metrics) and the spec saved beside them, as a driver leaves them."""
    import numpy as np
    import pandas as pd

    from mutransfer.results import ResultsStore
    from sweeps.bookkeeping import save_spec
    from sweeps.plan import trials
    from sweeps.spec import parse_spec

    spec = parse_spec(spec_dict)
    sid, store = spec.default_sweep_id(), ResultsStore(root)
    rng = np.random.default_rng(0)
    for t in trials(spec):
        cs, n = t.cell.spec, len(t.runs)
        runs = pd.DataFrame({
            "run_id": [r.run_id for r in t.runs], "cell_id": t.cell.cell_id, "algorithm": cs.algorithm,
            "parametrization": cs.parametrization, "width": cs.width, "depth": cs.depth,
            "activation": cs.activation, "dataset": spec.dataset.name, "weight_lr": [r.weight_lr for r in t.runs],
            "activity_lr": [r.activity_lr for r in t.runs], "seed": [r.seed for r in t.runs], "status": "ok",
            "min_train_loss": rng.uniform(0.1, 1, n), "final_train_loss": rng.uniform(0.1, 1, n),
            "best_test_acc": rng.uniform(0.5, 1, n), "final_test_acc": rng.uniform(0.5, 1, n), "steps": 10,
            "wall_s": 0.1, "spec_hash": spec.spec_hash()})
        curves = pd.DataFrame({"run_id": np.repeat(runs["run_id"].to_numpy(), 2), "step": np.tile([0, 10], n),
                               "train_loss": rng.uniform(0.1, 1, 2 * n)})
        store.write_part(sid, t.part, runs, curves)
    save_spec(store, sid, spec)
    return sid


def follow_events(server: "Server", sid: str, read_timeout: float = 240) -> list[tuple[str, dict]]:
    """The sweep's server-sent events, (event, data) pairs, until its ``end`` event (the stream ends
    with the sweep)."""
    import json

    events, kind = [], None
    with httpx.stream("GET", f"{server.url}/sweeps/{sid}/events?interval=0.2",
                      timeout=httpx.Timeout(30, read=read_timeout)) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "end":
                    break
    return events
