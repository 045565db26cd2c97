"""Where Ray listens, and what is left when a driver is killed (issue 10 items 12 and 15), checked on
the machine itself: `ss` for listening sockets, /proc for processes. No mocks."""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest
from serving import TINY, Server, submit, wait_for

from sweeps import processes

pytestmark = pytest.mark.skipif(not shutil.which("ss") or not os.path.isdir("/proc"), reason="needs ss and /proc")
LOOPBACK = re.compile(r"^(127\.\d+\.\d+\.\d+|\[::ffff:127\.\d+\.\d+\.\d+\]|\[::1\]):\d+$")


def listening(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process) of every TCP/UDP socket the given processes listen on."""
    out = []
    for flags in ("-ltnpH", "-lunpH"):
        for line in subprocess.run(["ss", flags], capture_output=True, text=True, check=True).stdout.splitlines():
            owners = {int(p) for p in re.findall(r"pid=(\d+),", line)}
            if owners & pids:
                out.append((line.split()[3], line.split("users:")[-1]))
    return out


def test_item15_the_test_cluster_listens_and_advertises_on_loopback_only(ray_cli_cluster_info):
    group = ray_cli_cluster_info["pgid"]
    pids = {p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if _pgid(p) == group}
    socks = listening(pids)
    assert {"gcs_server", "raylet"} <= {processes._stat(p)[2] for p in pids if processes._stat(p)}
    assert socks and all(LOOPBACK.match(addr) for addr, _ in socks), socks
    assert "Local node IP: 127.0.0.1" in ray_cli_cluster_info["log"].read_text()  # what it advertises


def test_item12_item15_embedded_ray_dies_or_driver_killed_loopback_and_no_orphans(tmp_path):
    """A service whose drivers embed their own Ray (no --address). Its processes listen on loopback
    only. When the embedded raylet dies, the driver exits at once and the service relaunches it;
    when the driver is SIGKILLed, none of its Ray processes is left, and with no relaunch left the
    sweep fails with its log."""
    s = Server(tmp_path / "results", None, MUTRANSFER_SUPERVISE_S=0.5).start()
    try:
        spec = {**TINY, "name": "emb", "widths": [8, 16], "training": {"epochs": 40, "batch_size": 32},
                "resources": {"max_concurrent_trials": 1, "driver_restarts": 1}}
        sid = submit(s, spec).json()["id"]

        def driver_with_ray(before: int | None = None) -> tuple[int, dict]:
            """The (new) driver's pid and its processes, once a cell is training."""
            def ready():
                if not any(c["status"] == "running" for c in s.status(sid)["cells"]):
                    return None
                with sqlite3.connect(s.root / "registry.sqlite") as db:
                    (pid,) = db.execute("SELECT driver_pid FROM sweeps WHERE sweep_id=?", (sid,)).fetchone()
                below = processes.descendants(pid) if pid and pid != before else {}
                return {"gcs_server", "raylet"} <= {name for name, _ in below.values()} and (pid, below)
            return wait_for(ready, timeout=240)

        def all_gone(below: dict) -> None:
            deadline = time.time() + 20
            while (left := [p for p, (_, st) in below.items() if processes.alive(p, st)]) and time.time() < deadline:
                time.sleep(0.25)
            assert not left, [below[p] for p in left]  # before: ray::DashboardAgent, ray::RuntimeEnvAgent stayed

        pid, below = driver_with_ray()
        socks = listening(set(below) | {pid})
        assert socks and all(LOOPBACK.match(addr) for addr, _ in socks), socks

        # The embedded Ray dies under a live driver: the driver notices, exits, and is relaunched.
        (raylet,) = [p for p, (name, _) in below.items() if name == "raylet"]
        os.kill(raylet, signal.SIGKILL)
        st = wait_for(lambda: (x := s.status(sid))["restarts"] == 1 and x, timeout=30)
        assert "embedded Ray cluster stopped" in st["note"] and "relaunched (1 of at most 1)" in st["note"]
        all_gone(below)

        # The relaunched driver is SIGKILLed: its Ray processes go with it; no relaunch is left.
        pid, below = driver_with_ray(before=pid)
        os.kill(pid, signal.SIGKILL)
        all_gone(below)
        st = wait_for(lambda: (x := s.status(sid))["status"] == "failed" and x, timeout=20)
        assert "driver log" in st["error"]
    finally:
        s.stop()


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
