"""Load test of the HTTP service: 50 concurrent clients polling one 660-run sweep.

50 clients poll GET /sweeps/{id}, /sweeps/{id}/report and /sweeps/{id}/contours of a finished
660-run sweep (5 widths × 4 weight lrs × 11 activity lrs × 3 seeds, μPC on the bundled ``digits``
data) for --seconds (default 30) against a real uvicorn (``mutransfer serve``) on 127.0.0.1, and
prints per endpoint: requests, p50/p99/max latency, errors (non-2xx or exceptions), and whether the
target is met. Targets: p99 < 200 ms for status and report, p99 < 1 s for the contour page, zero
errors.

The sweep is trained once, in-process (``sweeps.local.run_sweep``), and cached under --results
(default /tmp/mutransfer-load); it is recorded in the registry as a finished sweep, as a driver
would. The server runs with MUTRANSFER_DRIVERS=none (it never starts sweeps here). Each
endpoint is requested once before the timed phase (the report is computed once per set of
finished parts, then served from service/data.py's cache); those cold latencies are printed
separately. Each client is closed-loop (next request as soon as the previous answer is in; no
think time), so mean latency ≈ clients / throughput. The clients (one asyncio process, one
keep-alive connection each, a minimal HTTP/1.1 GET over asyncio streams; --client httpx for a
shared httpx.AsyncClient, which measured here needs more CPU per request than the server and so
benchmarks itself) and the server share this machine's cores; the CPU each used is printed.

Bounded: requests go only to 127.0.0.1, stop at the deadline (requests in flight then finish, 30 s
timeout each), and the server is terminated at the end.

    python benchmarks/service_load.py [--results DIR] [--clients 50] [--seconds 30] [--client raw|httpx]

Exit status 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"
SPEC = {
    "name": "service-load",
    "description": "load-test sweep: muPC tanh residual H=4 on digits, 660 runs, short budget",
    "algorithms": ["pc"],
    "parametrizations": ["mupc"],
    "architecture": {"kind": "residual_mlp", "activation": "tanh"},
    "widths": [8, 16, 32, 64, 128],
    "depths": [4],
    "weight_lrs": [1.0e-3, 1.0e-2, 5.0e-2, 1.0e-1],
    "activity_lrs": [5.0e-2, 1.0e-1, 2.0e-1, 5.0e-1, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0],
    "seeds": 3,
    "dataset": {"name": "digits"},
    "training": {"epochs": 1, "max_steps": 40, "batch_size": 32},
    "logging": {"every": 10},
}
# (label, path suffix, p99 target in seconds)
ENDPOINTS = [("status", "", 0.200), ("report", "/report", 0.200), ("contours", "/contours", 1.0)]


def build_sweep(root: str) -> str:
    """Train the sweep once (skipped when its results are complete) and register it as finished."""
    from mutransfer.results import ResultsStore
    from sweeps.local import run_sweep
    from sweeps.plan import trials as plan_trials
    from sweeps.registry import Registry, default_path
    from sweeps.spec import parse_spec

    spec = parse_spec(SPEC)
    sid = spec.default_sweep_id()
    planned = plan_trials(spec)
    n_runs = sum(len(t.runs) for t in planned)
    assert n_runs == 660, n_runs
    store = ResultsStore(root)
    done = store.completed_parts(sid)
    if {t.part for t in planned} <= done:
        print(f"sweep {sid}: {n_runs} runs already in {root} (cached)")
    else:
        print(f"sweep {sid}: training {n_runs} runs in {len(planned)} trials into {root} ...", flush=True)
        t0 = time.perf_counter()
        out = run_sweep(spec, root, sweep_id=sid)
        if out.cells_failed:
            raise SystemExit(f"sweep failed: {out.cells_failed}")
        print(f"  trained in {time.perf_counter() - t0:.1f} s")
    reg = Registry(default_path(root))
    reg.register(sid, spec.name, spec.canonical(), spec.spec_hash(),
                 [(t.part, t.cell.cell_id, len(t.runs)) for t in planned])
    for t in planned:
        reg.set_trial(sid, t.part, "finished", progress=1.0)
    reg.set_sweep(sid, "finished")
    return sid


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(root: str, port: int) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("mutransfer")
    cmd = [str(exe), "serve", "--results", root, "--host", HOST, "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUTRANSFER_")}
    env["MUTRANSFER_DRIVERS"] = "none"
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before answering /health")
        try:
            if httpx.get(f"http://{HOST}:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("server did not answer /health within 60 s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RawHTTP:
    """One keep-alive HTTP/1.1 connection per client over asyncio streams: a minimal GET, so the
    load generator costs far less CPU per request than httpx (which, measured here, needed more CPU
    than the server and made the client the bottleneck on 2 cores)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.reader = self.writer = None

    async def _connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self):
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def _get(self, path: str) -> tuple[int, int]:
        if self.writer is None:
            await self._connect()
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          "Accept: */*\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
        if "content-length" in headers:
            size = int(headers["content-length"])
            await self.reader.readexactly(size)
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            size = 0
            while True:
                n = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(n + 2)
                size += n
                if n == 0:
                    break
        else:
            raise RuntimeError("response without Content-Length or chunked encoding")
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, size

    async def get(self, path: str) -> tuple[int, int]:
        try:
            return await asyncio.wait_for(self._get(path), self.timeout)
        except BaseException:
            await self.close()  # never reuse a connection in an unknown state
            raise


class HttpxClient:
    """The same interface over one shared httpx.AsyncClient (--client httpx)."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def get(self, path: str) -> tuple[int, int]:
        r = await self.http.get(path)
        return r.status_code, len(r.content)

    async def close(self):
        pass


async def load(host: str, port: int, sid: str, clients: int, seconds: float, seed: int,
               kind: str = "raw") -> tuple[dict, dict, float]:
    lat: dict[str, list[float]] = {e[0]: [] for e in ENDPOINTS}
    errors: dict[str, list[str]] = {e[0]: [] for e in ENDPOINTS}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", limits=limits, timeout=30.0) as http:
        cold = {}
        for name, suffix, _ in ENDPOINTS:  # warm-up: first request computes and caches
            t = time.perf_counter()
            r = await http.get(f"/sweeps/{sid}{suffix}")
            cold[name] = (time.perf_counter() - t, r.status_code, len(r.content))
        rng = random.Random(seed)
        deadline = time.monotonic() + seconds

        async def client(k: int) -> None:
            conn = RawHTTP(host, port) if kind == "raw" else HttpxClient(http)
            order = list(ENDPOINTS)
            i = rng.randrange(len(order))  # staggered start; then round-robin
            await asyncio.sleep(rng.random() * 0.1)
            try:
                while time.monotonic() < deadline:
                    name, suffix, _ = order[i % len(order)]
                    i += 1
                    t = time.perf_counter()
                    try:
                        code, _ = await conn.get(f"/sweeps/{sid}{suffix}")
                        dt = time.perf_counter() - t
                        if not 200 <= code < 300:
                            errors[name].append(f"HTTP {code}")
                    except Exception as e:  # noqa: BLE001 - every failure counts as an error
                        dt = time.perf_counter() - t
                        errors[name].append(f"{type(e).__name__}: {e}")
                    lat[name].append(dt)
            finally:
                await conn.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - t0
    return {"lat": lat, "errors": errors}, cold, elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default="/tmp/mutransfer-load")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--client", choices=["raw", "httpx"], default="raw",
                   help="raw: one keep-alive asyncio-stream connection per client (cheap); "
                        "httpx: one shared httpx.AsyncClient (costs more CPU than the server here)")
    a = p.parse_args(argv)

    root = str(Path(a.results).resolve())
    sid = build_sweep(root)
    port = a.port or free_port()
    base = f"http://{HOST}:{port}"
    print(f"server: mutransfer serve --results {root} --host {HOST} --port {port} (MUTRANSFER_DRIVERS=none)")
    proc = start_server(root, port)
    try:
        srv0, cli0 = cpu_seconds(proc.pid), time.process_time()
        res, cold, elapsed = asyncio.run(load(HOST, port, sid, a.clients, a.seconds, a.seed, a.client))
        srv_cpu, cli_cpu = cpu_seconds(proc.pid) - srv0, time.process_time() - cli0
    finally:
        stop_server(proc)

    ncpu = os.cpu_count()
    print(f"\n{a.clients} {a.client} clients × {elapsed:.1f} s (until the last in-flight request) against {base}, "
          f"sweep {sid} (660 runs); "
          f"client and server share this machine's {ncpu} CPU cores.")
    print(f"CPU used: server {srv_cpu:.1f} s ({srv_cpu / elapsed:.2f} cores), "
          f"load clients {cli_cpu:.1f} s ({cli_cpu / elapsed:.2f} cores)")
    print("cold (first request, before the timed phase): "
          + ", ".join(f"{n} {t * 1000:.0f} ms [{code}, {size / 1024:.0f} KiB]" for n, (t, code, size) in cold.items()))
    print(f"\n{'endpoint':<10}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'errors':>8}  target (p99, 0 errors)")
    all_ok = True
    for name, _, target in ENDPOINTS:
        xs = np.array(res["lat"][name]) * 1000
        errs = res["errors"][name]
        if len(xs):
            p50, p99, mx = np.percentile(xs, 50), np.percentile(xs, 99), xs.max()
        else:
            p50 = p99 = mx = float("nan")
        ok = len(xs) > 0 and p99 < target * 1000 and not errs
        all_ok &= ok
        print(f"{name:<10}{len(xs):>9}{len(xs) / elapsed:>8.1f}{p50:>9.1f}{p99:>9.1f}{mx:>9.1f}{len(errs):>8}  "
              f"< {target * 1000:.0f} ms: {'met' if ok else 'MISSED'}")
        for e in sorted(set(errs))[:5]:
            print(f"    error: {e} (×{errs.count(e)})")
    total = sum(len(v) for v in res["lat"].values())
    print(f"\ntotal {total} requests, {total / elapsed:.1f} req/s; all targets {'met' if all_ok else 'NOT met'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
