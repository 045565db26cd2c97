"""Hostile requests against a live `mutransfer serve` on loopback (issue 10): a bounded set of each
class of bad input and fault, sent by a few concurrent clients while another polls /health.

Prints per class the requests sent and their status codes, then the totals the issue targets:
5xx answers (target 0), the slowest refusal (target < 1 s) and /health p99 latency during the run
(target < 200 ms), next to /health's latency under as many benign requests (a control run first).
Twenty identical submissions race during the run; after it, the registry file is overwritten with
garbage and every read must still answer. Issue 21 adds: forged Host/Origin writes (403 expected: the
server has no token), cost bombs (422), uncached dashboard pages of a finished sweep (the /health
figures show whether they starve it), and, after the timed run, half-open connections with
unfinished headers or bodies (408 expected within MUTRANSFER_HEADER/BODY_TIMEOUT_S) and one
connection past the cap (503). Starts its own server (drivers off: nothing trains; the results root
is a temp dir) unless --url is given.

    .venv/bin/python benchmarks/abuse.py [--rounds 10] [--clients 4] [--url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import yaml

SPEC = {"name": "abuse", "parametrizations": ["mupc"], "widths": [8, 16], "depths": [2],
        "weight_lrs": [0.01, 0.1], "activity_lrs": [0.5], "seeds": 1, "dataset": {"name": "digits"}}
Y = {"Content-Type": "application/yaml"}
BIG = "100000000000000000000"
METRIC_NAMES = ("min_train_loss", "final_train_loss", "best_test_acc", "final_test_acc")


def _yaml(**change) -> str:
    return yaml.safe_dump({**SPEC, **change})


def _bomb(levels: int = 9) -> str:
    names = "abcdefghijklmnop"[:levels]
    out = "name: x\na: &a [1,1,1,1,1,1,1,1,1]\n"
    for p, k in zip(names, names[1:]):
        out += f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n"
    return out


def attacks(sid: str, port: int, pages_sid: str, run_ids: list[str]) -> dict[str, list[tuple[str, str, bytes | None, dict]]]:
    """Class -> requests (method, path, body, headers). Each is bounded; none should answer 5xx."""
    base = yaml.safe_dump({k: v for k, v in SPEC.items() if k not in ("training", "logging", "resources")})
    bad = sid + "%0A"
    return {
        "1 odd YAML (dates, sets, binary, aliases, 1000-deep)": [
            ("POST", "/sweeps", (_yaml() + "created: 2024-05-01 10:00:00\n").encode(), Y),
            ("POST", "/sweeps", (_yaml() + "tags: !!set {a, b}\n").encode(), Y),
            ("POST", "/sweeps", (_yaml() + "blob: !!binary aGVsbG8=\n").encode(), Y),
            ("POST", "/sweeps", b"a: &a [*a]\n", Y),
            ("POST", "/sweeps", b"a: &a {b: *a}\n", Y),
            ("POST", "/sweeps", ("a: " + "[" * 1000 + "]" * 1000).encode(), Y),
            ("POST", "/sweeps", "".join(" " * i + f"k{i}:\n" for i in range(1000)).encode(), Y),
            ("POST", "/sweeps", b"!!python/object/apply:os.system ['true']", Y),
            ("POST", "/sweeps", b'{"name": NaN, "widths": [1e999]}', {"Content-Type": "application/json"}),
            ("POST", "/sweeps", ("[" * 100000).encode(), {"Content-Type": "application/json"}),
        ],
        "2 size (alias bomb, 1 MB of keys, 12 MB description)": [
            ("POST", "/sweeps", _bomb().encode(), Y),
            ("POST", "/sweeps", "\n".join(f"k{i}: {i}" for i in range(80_000)).encode(), Y),
            ("POST", "/sweeps", _yaml(description="x" * 12_000_000).encode(), Y),
            ("POST", "/sweeps", ("name: x\n" + "\n".join(f"k{i}: [{i}, {i}]" for i in range(9000))).encode(), Y),
            ("POST", "/sweeps", _yaml(description="x" * 200_000).encode(), Y),
        ],
        "3 millions of runs": [
            ("POST", "/sweeps", _yaml(seeds=3_000_000).encode(), Y),
            ("POST", "/sweeps", _yaml(seeds=1000, weight_lrs=[10.0 ** -k for k in range(1, 200)],
                                      activity_lrs=[10.0 ** -k for k in range(1, 200)]).encode(), Y),
            ("POST", "/sweeps", _yaml(widths=list(range(1, 65)), depths=list(range(1, 65)), seeds=1000).encode(), Y),
        ],
        "4 absurd numbers, coerced types": [
            ("POST", "/sweeps", (base + change + "\n").encode(), Y) for change in (
                f"training: {{batch_size: {BIG}}}", f"training: {{inference_steps: {BIG}}}",
                f"training: {{max_steps: {BIG}}}", f"logging: {{every: {BIG}}}", f"logging: {{test_chunk: {BIG}}}",
                f"dataset: {{name: digits, train_examples: {BIG}}}",
                f"architecture: {{kind: cnn, downsample_layers: {BIG}}}",
                "training: {divergence_factor: .inf}", "resources: {cpus_per_trial: .inf}",
                "resources: {gpus_per_trial: .inf}", "resources: {memory_budget_gb: .inf}")
        ] + [("POST", "/sweeps", _yaml(widths=[True]).encode(), Y)],
        "5 ids with an encoded newline, traversal": [
            ("GET", p, None, {}) for p in (f"/sweeps/{bad}", f"/sweeps/{bad}/runs", f"/sweeps/{bad}/curves",
                                           f"/sweeps/{bad}/report", f"/sweeps/{bad}/events",
                                           f"/sweeps/{bad}/contours", "/sweeps/..%2F..%2Fetc%2Fpasswd",
                                           "/sweeps/" + "a" * 5000)
        ] + [("DELETE", f"/sweeps/{bad}", None, {})],
        "6 cross-site content types": [
            ("POST", "/sweeps", _yaml(name="csrf").encode(), {"Content-Type": ct}) for ct in (
                "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "")
        ],
        "7 dataset not installed": [
            ("POST", "/sweeps", _yaml(name="nodata", dataset={"name": "mnist", "data_dir": "/nonexistent"}).encode(), Y),
            ("POST", "/sweeps", _yaml(name="nodata2", dataset={"name": "cifar10", "data_dir": "/nonexistent"}).encode(), Y),
        ],
        "14 forged Host / Origin on writes (no token)": [
            ("POST", "/sweeps", _yaml(name="forged").encode(), {**Y, **h}) for h in (
                {"Host": f"attacker.example:{port}"},
                {"Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"},
                {"Origin": "http://attacker.example"}, {"Origin": "null"},
                {"Host": f"127.0.0.1:{port + 1}"}, {"Origin": f"http://localhost:{port}"})
        ] + [("DELETE", f"/sweeps/{sid}", None, {"Host": f"attacker.example:{port}"}),
             ("DELETE", f"/sweeps/{sid}", None, {"Origin": "http://attacker.example"})],
        "15 cost bombs (memory per run, total compute, unrunnable)": [
            ("POST", "/sweeps", _yaml(name="bomb", widths=[8192], depths=[256], dataset={"name": "digits"},
                                      training={"epochs": 100, "inference_steps": 10000}).encode(), Y),
            ("POST", "/sweeps", _yaml(name="bomb2", widths=[1024, 2048], depths=[16], seeds=1000,
                                      weight_lrs=[10.0 ** -k for k in range(1, 11)],
                                      training={"epochs": 100, "batch_size": 32}).encode(), Y),
            ("POST", "/sweeps", _yaml(name="bomb3", widths=[8192], depths=[256], seeds=1000,
                                      weight_lrs=[10.0 ** -k for k in range(1, 21)],
                                      training={"epochs": 100}).encode(), Y),
            ("POST", "/sweeps", _yaml(name="bigbatch", training={"batch_size": 4096}).encode(), Y),
            ("POST", "/sweeps", _yaml(name="subset", dataset={"name": "digits", "train_examples": 100000}).encode(), Y),
        ],
        "16 uncached dashboard pages (compare, run pages)": [
            ("GET", f"/compare?a={pages_sid}&b={pages_sid}&metric={m}", None, {}) for m in METRIC_NAMES
        ] + [("GET", f"/sweeps/{pages_sid}/runs/{rid}", None, {}) for rid in run_ids[:6]],
        "13 unknown filters, foreign statuses": [
            ("GET", p, None, {}) for p in (f"/sweeps/{sid}/runs?widht=128", "/sweeps?status=done",
                                           "/sweeps?stauts=running", f"/sweeps/{sid}/runs?status=finished",
                                           f"/sweeps/{sid}/report?metric=accuracy", "/health?verbose=1",
                                           "/sweeps?limit=100000000000000000000")
        ],
    }


def write_finished_sweep(root: Path) -> tuple[str, list[str]]:
    """A finished sweep on disk without training (real Parquet parts with made-up metrics, the spec
    saved beside them), for the dashboard-page class; returns its id and run ids."""
    import numpy as np
    import pandas as pd

    from mutransfer.results import ResultsStore
    from sweeps.bookkeeping import save_spec
    from sweeps.plan import trials
    from sweeps.spec import parse_spec

    spec = parse_spec({**SPEC, "name": "abuse-pages", "widths": [8, 16, 32, 64], "depths": [2, 4],
                       "weight_lrs": [10.0 ** -k for k in range(1, 7)], "activity_lrs": [0.1, 0.5], "seeds": 2})
    sid, store, rng, ids = spec.default_sweep_id(), ResultsStore(root), np.random.default_rng(0), []
    for t in trials(spec):
        cs, n = t.cell.spec, len(t.runs)
        runs = pd.DataFrame({
            "run_id": [r.run_id for r in t.runs], "cell_id": t.cell.cell_id, "algorithm": cs.algorithm,
            "parametrization": cs.parametrization, "width": cs.width, "depth": cs.depth,
            "activation": cs.activation, "dataset": spec.dataset.name, "weight_lr": [r.weight_lr for r in t.runs],
            "activity_lr": [r.activity_lr for r in t.runs], "seed": [r.seed for r in t.runs], "status": "ok",
            "min_train_loss": rng.uniform(0.1, 1, n), "final_train_loss": rng.uniform(0.1, 1, n),
            "best_test_acc": rng.uniform(0.5, 1, n), "final_test_acc": rng.uniform(0.5, 1, n), "steps": 200,
            "wall_s": 0.1, "spec_hash": spec.spec_hash()})
        steps = np.arange(0, 201, 5)
        curves = pd.DataFrame({"run_id": np.repeat(runs["run_id"].to_numpy(), len(steps)),
                               "step": np.tile(steps, n), "train_loss": rng.uniform(0.1, 1, n * len(steps))})
        store.write_part(sid, t.part, runs, curves)
        ids += list(runs["run_id"])
    save_spec(store, sid, spec)
    return sid, ids


def slow_connections(url: str, n: int, body: bool) -> tuple[Counter, float]:
    """``n`` connections that send part of a request's headers (or all headers and part of a
    declared body) and then nothing; returns the status codes the server answered with (-1: closed
    without an answer, 0: still open after 120 s) and the longest time a connection was held."""
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /sweeps HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/yaml\r\n"
    data = (head + "Content-Length: 10000\r\n\r\nname: slow\n" if body else head + "X-Slow: ").encode()

    def hold() -> tuple[int, float]:
        t0 = time.perf_counter()
        try:
            with socket.create_connection((host, int(port)), timeout=120) as sock:
                sock.sendall(data)
                got = b""
                while chunk := sock.recv(65536):
                    got += chunk
        except socket.timeout:
            return 0, time.perf_counter() - t0
        except OSError:
            return -1, time.perf_counter() - t0
        code = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else -1
        return code, time.perf_counter() - t0

    with cf.ThreadPoolExecutor(n) as pool:
        out = list(pool.map(lambda _: hold(), range(n)))
    return Counter(c for c, _ in out), max(t for _, t in out)


def poll_health(url: str, stop, results) -> None:
    """GET /health every 20 ms until ``stop``; puts [(seconds, status)] on ``results``."""
    out = []
    with httpx.Client() as c:
        c.get(url + "/health", timeout=30)
        results.put("ready")
        while not stop.is_set():
            t0 = time.perf_counter()
            r = c.get(url + "/health", timeout=30)
            out.append((time.perf_counter() - t0, r.status_code))
            time.sleep(0.02)
    results.put(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, cap: int = 200) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).with_name("mutransfer")
    env = {**os.environ, "MUTRANSFER_DRIVERS": "none", "MUTRANSFER_MAX_CONCURRENT": "1000",
           "MUTRANSFER_MAX_CONNECTIONS": str(cap)}
    env.pop("MUTRANSFER_API_TOKEN", None)  # the forged-header class tests the token-less policy
    proc = subprocess.Popen([str(exe), "serve", "--results", str(root), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(root.parent / "serve.log", "ab"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start: " + (root.parent / "serve.log").read_text()[-2000:])


def send(client: httpx.Client, url: str, req) -> tuple[int, float]:
    method, path, body, headers = req
    t0 = time.perf_counter()
    try:
        if path.endswith("/events"):  # a stream: status line only
            with client.stream(method, url + path, headers=headers, timeout=10) as r:
                code = r.status_code
        else:
            code = client.request(method, url + path, content=body, headers=headers, timeout=60).status_code
    except httpx.HTTPError as e:
        code = -1  # dropped connection / no answer: counted as a failure like a 5xx
        print(f"  no answer to {method} {path[:60]}: {type(e).__name__}", flush=True)
    return code, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default=None, help="a running server (default: start one on a free loopback port)")
    ap.add_argument("--rounds", type=int, default=10, help="times each request is sent")
    ap.add_argument("--clients", type=int, default=4, help="concurrent hostile clients")
    ap.add_argument("--slow", type=int, default=100, help="half-open connections per slow class")
    ap.add_argument("--cap", type=int, default=200, help="MUTRANSFER_MAX_CONNECTIONS of the server started here")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="abuse-"))
    root = tmp / "results"
    proc = None
    pages_sid, run_ids = write_finished_sweep(root)
    if args.url:
        url = args.url.rstrip("/")
    else:
        proc, url = start_server(root, args.cap)
    try:
        ok = httpx.post(url + "/sweeps", content=_yaml(name="abuse-target"), headers=Y, timeout=60)
        assert ok.status_code == 202, ok.text
        sid = ok.json()["id"]
        classes = attacks(sid, int(url.rsplit(":", 1)[1]), pages_sid, run_ids)

        # Control: as many benign requests (status polls of the sweep), from as many clients, while
        # /health is polled, so the hostile run below can be compared with plain load.
        jobs = [(name, req) for _ in range(args.rounds) for name, reqs in classes.items() for req in reqs]
        benign = [("GET", f"/sweeps/{sid}", None, {})] * len(jobs)
        control, control_wall = _with_health(url, lambda: _fire(url, benign, args.clients))

        # /health is polled from a process of its own, so the hostile clients' threads (this
        # process) cannot delay its measurements: what it sees is the server's latency.
        ctx = mp.get_context("spawn")
        stop, results = ctx.Event(), ctx.Queue()
        poller = ctx.Process(target=poll_health, args=(url, stop, results), daemon=True)
        poller.start()
        assert results.get(timeout=120) == "ready"
        per_class: dict[str, Counter] = defaultdict(Counter)
        slowest: dict[str, tuple[float, str]] = {}
        t_start = time.perf_counter()
        with httpx.Client(limits=httpx.Limits(max_connections=args.clients)) as client, \
                cf.ThreadPoolExecutor(args.clients) as pool:
            futures = {pool.submit(send, client, url, req): (name, req) for name, req in jobs}
            # Fault: twenty identical submissions at once (one registry row, one 202 id).
            race = [pool.submit(send, client, url, ("POST", "/sweeps", _yaml(name="abuse-race").encode(), Y))
                    for _ in range(20)]
            for fut in cf.as_completed(futures):
                name, req = futures[fut]
                code, dt = fut.result()
                per_class[name][code] += 1
                if code >= 500:
                    print(f"  {code} from {req[0]} {req[1][:80]}", flush=True)
                if 400 <= code < 500 and dt > slowest.get(name, (0, ""))[0]:
                    slowest[name] = (dt, f"{req[0]} {req[1][:50]}")
            race_codes = Counter(f.result()[0] for f in race)
        wall = time.perf_counter() - t_start
        stop.set()
        health = results.get(timeout=60)
        poller.join(30)
        # Fault, after the timed run (its recovery holds the registry for a moment on purpose): the
        # registry file is overwritten with garbage while the server runs; every read must answer.
        reg = root / "registry.sqlite"
        fault_codes, recovery_s = Counter(), 0.0
        if not args.url and reg.exists():
            reg.write_bytes(b"not a database" * 1000)
            with httpx.Client() as c:
                for path in ("/sweeps", f"/sweeps/{sid}", f"/sweeps/{sid}/runs?format=json", "/health", "/"):
                    t0 = time.perf_counter()
                    code = c.get(url + path, timeout=60).status_code
                    recovery_s = max(recovery_s, time.perf_counter() - t0)
                    fault_codes[code] += 1
                    if code >= 500:
                        print(f"  {code} from GET {path} after the registry was overwritten", flush=True)
        # Faults on the connection, after the timed run: unfinished headers and bodies are cut with
        # 408 (not held for ever); one more connection than the cap gets 503.
        slow_head, head_held = slow_connections(url, args.slow, body=False)
        slow_body, body_held = slow_connections(url, args.slow, body=True)
        cap_codes = over_the_cap(url, args.cap) if not args.url else Counter()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"mutransfer serve at {url} (drivers off); {args.clients} hostile clients × {args.rounds} rounds, "
          f"/health polled throughout; client and server share this machine's {os.cpu_count()} CPU cores")
    print(f"{'class':<56}{'sent':>6}  status codes{'':<18}slowest refusal")
    total, fivexx = 0, 0
    for name in sorted(classes, key=lambda n: int(n.split()[0])):
        codes = per_class[name]
        n = sum(codes.values())
        total += n
        fivexx += sum(v for k, v in codes.items() if k >= 500 or k < 0)
        dt, what = slowest.get(name, (0.0, ""))
        print(f"{name:<56}{n:>6}  {dict(sorted(codes.items()))!s:<30}{dt * 1000:7.0f} ms  {what}")
    n_race = sum(race_codes.values())
    print(f"{'10 twenty identical submissions at once':<56}{n_race:>6}  {dict(race_codes)!s:<30}")
    n_fault = sum(fault_codes.values())
    if n_fault:
        print(f"{'9 registry overwritten with garbage, then reads':<56}{n_fault:>6}  {dict(fault_codes)!s:<30}"
              f"{recovery_s * 1000:7.0f} ms  (slowest read: the one that rebuilt it)")
    print(f"{'11 unfinished request headers (half-open)':<56}{sum(slow_head.values()):>6}  "
          f"{dict(slow_head)!s:<30}{head_held * 1000:7.0f} ms  (longest a connection was held)")
    print(f"{'12 unfinished request bodies':<56}{sum(slow_body.values()):>6}  "
          f"{dict(slow_body)!s:<30}{body_held * 1000:7.0f} ms  (longest a connection was held)")
    if cap_codes:
        print(f"{f'17 connections past the cap ({args.cap} held open)':<56}{sum(cap_codes.values()):>6}  "
              f"{dict(cap_codes)!s:<30}")
    total += n_race + n_fault + sum(slow_head.values()) + sum(slow_body.values()) + sum(cap_codes.values())
    fivexx += sum(v for k, v in (race_codes + fault_codes).items() if k >= 500 or k < 0)
    unfinished = sum(v for k, v in (slow_head + slow_body).items() if k not in (408, 503))
    print(f"connections with unfinished headers/bodies not cut with 408 (or 503 past the cap): {unfinished}  (target 0: "
          f"{'met' if unfinished == 0 else 'NOT met'})")
    worst = max(slowest.values(), default=(0.0, ""))
    p99 = _p99(health)
    print()
    print(f"requests sent: {total} in {wall:.1f} s")
    print(f"5xx or no answer: {fivexx}  (target 0: {'met' if fivexx == 0 else 'NOT met'})")
    print(f"slowest refusal: {worst[0] * 1000:.0f} ms ({worst[1]})  (target < 1000 ms: "
          f"{'met' if worst[0] < 1 else 'NOT met'})")
    print(f"/health during the hostile run: {_lat(health)}  (target p99 < 200 ms: {'met' if p99 < 0.2 else 'NOT met'})")
    print(f"/health during the control run ({len(benign)} benign status polls, {args.clients} clients, "
          f"{control_wall:.1f} s): {_lat(control)}")
    return 0 if fivexx == 0 and unfinished == 0 else 1


def over_the_cap(url: str, cap: int) -> Counter:
    """``cap`` connections held open with unfinished headers, then one complete request: its code
    (503 expected while the others are held); the held ones are closed afterwards."""
    host, port = url.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(cap):
            c = socket.create_connection((host, int(port)), timeout=60)
            c.sendall(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n".encode())
            held.append(c)
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            got = b""
            while chunk := sock.recv(65536):
                got += chunk
        return Counter([int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else -1])
    finally:
        for c in held:
            c.close()


def _p99(samples) -> float:
    lat = sorted(d for d, _ in samples)
    return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")


def _lat(samples) -> str:
    lat = sorted(d for d, _ in samples)
    if not lat:
        return "no samples"
    return (f"{len(lat)} requests, p50 {statistics.median(lat) * 1000:.1f} ms, p99 {_p99(samples) * 1000:.1f} ms, "
            f"max {lat[-1] * 1000:.1f} ms, non-200: {sum(c != 200 for _, c in samples)}")


def _fire(url: str, reqs, clients: int) -> None:
    with httpx.Client(limits=httpx.Limits(max_connections=clients)) as client, cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda r: send(client, url, r), reqs))


def _with_health(url: str, work) -> tuple[list, float]:
    """Run ``work()`` while /health is polled from another process; returns (samples, wall s)."""
    ctx = mp.get_context("spawn")
    stop, results = ctx.Event(), ctx.Queue()
    poller = ctx.Process(target=poll_health, args=(url, stop, results), daemon=True)
    poller.start()
    assert results.get(timeout=120) == "ready"
    t0 = time.perf_counter()
    work()
    wall = time.perf_counter() - t0
    stop.set()
    samples = results.get(timeout=60)
    poller.join(30)
    return samples, wall


if __name__ == "__main__":
    sys.exit(main())
