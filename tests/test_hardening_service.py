"""Issue 21 items 2-5 against a real `mutransfer serve` on loopback (drivers off: nothing trains):
forged Host/Origin headers, a registry on a full disk (a small tmpfs), results without a registry
row, the cost bound at submit and in the CLI, slow headers and bodies, the connection cap, the
Accept header, and a rebuilt registry keeping `cancelled`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from serving import TINY, Server, submit, wait_for, write_finished_sweep

from sweeps.spec import parse_spec

SPEC2 = {**TINY, "name": "two-cells", "widths": [8, 16]}  # two cells of two runs


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("harden")
    s = Server(tmp / "results", None, "--allow-host", "lab.example", MUTRANSFER_DRIVERS="none",
               MUTRANSFER_MAX_CONCURRENT=50, MUTRANSFER_HEADER_TIMEOUT_S=1, MUTRANSFER_BODY_TIMEOUT_S=1).start()
    yield s
    s.stop()


def post(server, spec, **headers):
    return httpx.post(server.url + "/sweeps", content=yaml.safe_dump(spec),
                      headers={"Content-Type": "application/yaml", **headers}, timeout=30)


# ------------------------------------------------------------------ item 3: who may write without a token


def test_serve_warns_that_writes_are_open(server):
    assert "warning: writes are open: MUTRANSFER_API_TOKEN is not set" in server.log.read_text()


def test_forged_host_and_origin_are_refused_and_start_nothing(server):
    p = server.port
    spec = {**TINY, "name": "forged"}
    sid = parse_spec(spec).default_sweep_id()
    for headers in ({"Host": f"attacker.example:{p}"},                                  # DNS rebinding
                    {"Host": f"attacker.example:{p}", "Origin": f"http://attacker.example:{p}"},
                    {"Host": f"127.0.0.1:{p + 1}"},                                      # another port
                    {"Origin": "http://attacker.example"},                               # cross-site page
                    {"Origin": f"http://localhost:{p}"},                                 # not this Host
                    {"Origin": "null"}):                                                 # sandboxed frame
        r = post(server, spec, **headers)
        assert r.status_code == 403, (headers, r.text)
        assert "MUTRANSFER_API_TOKEN" in r.json()["message"] and "\n" not in r.json()["message"]
    assert server.get(f"/sweeps/{sid}").status_code == 404  # nothing was registered
    for host in (f"127.0.0.1:{p}", f"localhost:{p}", f"lab.example:{p}"):  # loopback names and the allowed one
        r = post(server, {**spec, "name": f"ok-{host.split(':')[0].replace('.', '-')}"}, Host=host,
                 Origin=f"http://{host}")
        assert r.status_code == 202, (host, r.text)
    ok = post(server, spec)
    assert ok.status_code == 202
    d = httpx.delete(f"{server.url}/sweeps/{sid}", headers={"Host": f"attacker.example:{p}"}, timeout=30)
    assert d.status_code == 403 and server.status(sid)["status"] == "queued"
    d = httpx.delete(f"{server.url}/sweeps/{sid}", headers={"Origin": f"http://127.0.0.1:{p}"}, timeout=30)
    assert d.status_code == 202 and server.status(sid)["status"] == "cancelled"


def test_ipv6_loopback_host_is_loopback():
    from service.origin import host_allowed, write_refusal

    assert host_allowed("[::1]:8000", 8000) and not host_allowed("[::2]:8000", 8000)
    assert write_refusal("[::1]:8000", "http://[::1]:8000", 8000) is None
    assert write_refusal("localhost.attacker.example:8000", None, 8000) is not None
    assert write_refusal("127.0.0.1:8000@attacker.example", None, 8000) is not None


# ------------------------------------------------------------------ item 4: the cost bound


def test_cost_bombs_and_unrunnable_specs_are_refused_at_submit_naming_the_fields(server):
    bomb = {**TINY, "name": "bomb", "widths": [8192], "depths": [256], "dataset": {"name": "digits"},
            "training": {"epochs": 100, "inference_steps": 10000}}
    r = post(server, bomb)
    assert r.status_code == 422, r.text
    fields = {d["field"]: d["msg"] for d in r.json()["detail"]}
    assert "GiB" in fields["resources"] and "shrink widths, depths" in fields["resources"]
    assert "MUTRANSFER_MAX_SWEEP_PFLOP" in fields["training"]
    many = {**TINY, "name": "many", "widths": [1024, 2048], "depths": [16], "seeds": 1000,
            "weight_lrs": [10.0 ** -k for k in range(1, 11)], "dataset": {"name": "digits"},
            "training": {"epochs": 100, "batch_size": 32}}  # 20,000 runs: each fits, the sum does not
    r = post(server, many)
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["training"], r.text
    r = post(server, {**TINY, "name": "bigbatch", "training": {"epochs": 1, "batch_size": 512}})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("training.batch_size: 512 exceeds the 320 training examples")
    r = post(server, {**TINY, "name": "subset", "dataset": {"name": "digits", "train_examples": 5000}})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "dataset.train_examples", r.text


def test_the_cli_refuses_a_cost_bomb_before_anything_starts(tmp_path):
    spec = tmp_path / "bomb.yaml"
    spec.write_text(yaml.safe_dump({**TINY, "name": "bomb", "widths": [8192], "depths": [256],
                                    "training": {"epochs": 100, "inference_steps": 10000}}))
    exe = Path(sys.executable).with_name("mutransfer")
    out = subprocess.run([str(exe), "run", str(spec), "--results", str(tmp_path / "results")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "MUTRANSFER_MAX_RUN_MEMORY_GB" in errors[0], out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "results").exists()
    env = {**os.environ, "MUTRANSFER_MAX_SWEEP_PFLOP": "1e-9"}  # the override reaches the CLI too
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(TINY))
    out = subprocess.run([str(exe), "run", str(small), "--results", str(tmp_path / "results")],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "MUTRANSFER_MAX_SWEEP_PFLOP" in out.stderr, out.stderr


# ------------------------------------------------------------------ item 2: never a guessed "finished"


def _write_some_parts(root: Path, spec_dict: dict, keep: int) -> str:
    """A sweep's saved spec and real parts for its first ``keep`` planned cells (as a driver leaves them)."""
    sid = write_finished_sweep(root, spec_dict)
    parts = sorted((root / "runs" / f"sweep_id={sid}").glob("cell-*.parquet"))
    for p in parts[keep:]:
        p.unlink()
        for c in (root / "curves" / f"sweep_id={sid}").glob(p.name):
            c.unlink()
    return sid


def test_results_without_a_registry_row_are_finished_only_when_every_planned_run_is_there(server):
    partial = _write_some_parts(server.root, {**SPEC2, "name": "unregistered"}, keep=1)
    st = server.status(partial)
    assert st["status"] == "unknown" and (st["runs_done"], st["runs_total"]) == (2, 4), st
    assert st["progress"] < 1 and "2 of 4 planned runs" in st["error"]
    listed = httpx.get(server.url + "/sweeps", params={"status": "finished"}, timeout=30).json()["items"]
    assert partial not in [i["id"] for i in listed]
    done = write_finished_sweep(server.root, {**SPEC2, "name": "complete"})
    st = server.status(done)
    assert st["status"] == "finished" and st["runs_done"] == st["runs_total"] == 4


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True)
    if ok.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({ok.stderr.decode().strip()}); see the read-only-root test")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> Path:
    filler = path / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_makes_status_unavailable_not_finished_and_writes_507(tmpfs):
    s = Server(tmpfs / "results", None, MUTRANSFER_DRIVERS="none", MUTRANSFER_MAX_CONCURRENT=50).start()
    try:
        spec = {**SPEC2, "name": "fulldisk"}
        sid = submit(s, spec).json()["id"]
        _write_some_parts(s.root, spec, keep=1)  # 2 of its 4 runs are stored
        assert s.status(sid)["status"] == "queued"
        filler = _fill(tmpfs)

        def unavailable():  # until the status cached before the disk filled (0.5 s) has expired
            r = s.get(f"/sweeps/{sid}")
            assert r.status_code == 503 or r.json()["status"] == "queued", r.text  # never "finished"
            return r.status_code == 503 and r
        r = wait_for(unavailable, timeout=30, every=0.1)
        assert int(r.headers["Retry-After"]) > 0, r.headers
        assert "registry cannot be read" in r.json()["message"] and "finished" not in r.json()["message"]
        for path in ("/sweeps", f"/sweeps/{sid}/events"):
            assert s.get(path).status_code == 503
        h = wait_for(lambda: (j := s.get("/health").json())["status"] == "degraded" and j, timeout=30, every=0.1)
        assert "registry" in h["reason"]  # (the probe's answer is kept for 1 s)
        w = post(s, {**TINY, "name": "while-full"})
        assert w.status_code == 507, w.text
        assert "no space left" in w.json()["message"] and "\n" not in w.json()["message"]
        filler.unlink()  # space again: the same sweep, as it was
        st = s.status(sid)
        assert st["status"] == "queued" and st["runs_done"] == 2 and st["runs_total"] == 4, st
        assert post(s, {**TINY, "name": "after-full"}).status_code == 202
    finally:
        s.stop()


# ------------------------------------------------------------------ item 5


def _raw(server, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_slow_headers_and_bodies_get_408(server):
    got = _raw(server, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nX-Slow: ".encode())
    assert got.startswith(b"HTTP/1.1 408"), got  # the connection is closed, not held for ever
    got = _raw(server, (f"POST /sweeps HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/yaml"
                        "\r\nContent-Length: 1000\r\n\r\nname: slow\n").encode())
    assert got.startswith(b"HTTP/1.1 408"), got
    assert b"MUTRANSFER_BODY_TIMEOUT_S" in got
    assert server.get("/health").status_code == 200


def test_connections_beyond_the_cap_get_503(tmp_path):
    s = Server(tmp_path / "results", None, MUTRANSFER_DRIVERS="none", MUTRANSFER_MAX_CONNECTIONS=4,
               MUTRANSFER_HEADER_TIMEOUT_S=120).start()
    held = []
    try:
        for _ in range(4):  # half-open requests hold connections
            c = socket.create_connection(("127.0.0.1", s.port), timeout=60)
            c.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(c)
        got = _raw(s, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nConnection: close\r\n\r\n".encode())
        assert got.startswith(b"HTTP/1.1 503"), got
        for c in held:
            c.close()
        held.clear()
        ok = _raw(s, f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nConnection: close\r\n\r\n".encode())
        assert ok.startswith(b"HTTP/1.1 200"), ok
    finally:
        for c in held:
            c.close()
        s.stop()


def test_accept_html_q0_gets_json(server):
    sid = write_finished_sweep(server.root, {**TINY, "name": "accept"})
    r = server.get(f"/sweeps/{sid}/report", headers={"Accept": "text/html;q=0, application/json"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json"), r.headers
    r = server.get(f"/sweeps/{sid}/report", headers={"Accept": "text/html;q=0"})
    assert r.headers["content-type"].startswith("application/json")
    r = server.get(f"/sweeps/{sid}/report", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.headers["content-type"].startswith("text/html")
    r = server.get("/sweeps/nope-00000000", headers={"Accept": "text/html;q=0"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/json")


def test_a_rebuilt_registry_keeps_cancelled(server):
    spec = {**TINY, "name": "keep-cancelled"}
    sid = submit(server, spec).json()["id"]
    assert httpx.delete(f"{server.url}/sweeps/{sid}", timeout=30).status_code == 202
    assert server.status(sid)["status"] == "cancelled"
    (server.root / "registry.sqlite").write_bytes(b"not a database" * 1000)
    r = server.get("/sweeps")  # the first read notices, moves the file aside and rebuilds it
    assert r.status_code == 200
    def rebuilt():  # until the status cached before the rebuild (0.5 s) has expired
        st = server.status(sid)
        assert st["status"] == "cancelled", st
        return "rebuilt" in (st["note"] or "") and st
    st = wait_for(rebuilt, timeout=30, every=0.1)
    assert {c["status"] for c in st["cells"]} == {"cancelled"}


def test_eta_is_never_zero_while_runs_are_left():
    from sweeps.progress import eta_seconds

    start = 1000.0
    burst = [(1100.0, 9), (1100.01, 9)]  # two cells finish together: the rate looks huge
    shown = [eta_seconds(t, start, burst, 18, 90) for t in (1101.0, 1120.0, 1200.0, 2000.0)]
    assert all(e is not None and e > 0 for e in shown), shown
    assert shown[-1] > shown[-2]  # re-measured up to now: slower pace, later end
    assert eta_seconds(2000.0, start, burst, 90, 90) == 0.0  # nothing left: 0
    from sweeps.registry import one_line_error

    ray_text = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=127.0.0.1)\n  File \"x.py\", line 3, in f\n"
                "    raise ValueError('batch_size 512 exceeds the 320 training examples')\n"
                "ValueError: batch_size 512 exceeds the 320 training examples")
    assert one_line_error(ray_text) == "ValueError: batch_size 512 exceeds the 320 training examples"


def test_page_gate_lets_two_pages_in_and_never_holds_health():
    """The gate in front of the app (service/guard.py): page requests beyond two wait on the event
    loop; /health and API routes pass at once (an inner app that blocks until released)."""
    import asyncio

    from service.guard import PageGate

    inside, most, release = [0], [0], None

    async def app(scope, receive, send):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        await release.wait()
        inside[0] -= 1

    async def main():
        nonlocal release
        release = asyncio.Event()
        gate = PageGate(app, limit=2)
        pages = [asyncio.create_task(gate({"type": "http", "path": p}, None, None))
                 for p in ("/", "/compare", "/sweeps/x-01234567/contours", "/sweeps/x-01234567/runs/r1")]
        others = [asyncio.create_task(gate({"type": "http", "path": p}, None, None))
                  for p in ("/health", "/sweeps/x-01234567", "/sweeps/x-01234567/runs")]
        for _ in range(1000):  # let every task run to where it waits
            await asyncio.sleep(0)
        assert inside[0] == 5 and not any(t.done() for t in pages)  # two pages and the three others
        release.set()
        await asyncio.gather(*pages, *others)
        assert most[0] == 5

    asyncio.run(main())
