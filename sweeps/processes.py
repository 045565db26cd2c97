"""Processes a sweep driver starts, and cleaning them up when it dies.

An embedded Ray (``ray.init()`` without an address) starts a GCS server and a raylet as children of
the driver, bound to it with ``PR_SET_PDEATHSIG``; the raylet starts agents and workers. When the
driver is SIGKILLed, the kernel kills the GCS and the raylet, but the raylet's agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) are re-parented to init and live on (measured
on Ray 2.60). :func:`start_reaper` starts a small watchdog process that outlives the driver: it
keeps a snapshot of the driver's descendants (refreshed every half second) and, when the driver
dies without disarming it, kills every process of that snapshot still alive. Linux only (``/proc``);
elsewhere it does nothing.

    python -m sweeps.processes PARENT_PID   (the reaper; reads its stdin until EOF)
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

_PROC = Path("/proc")
DISARM = b"x"


def _stat(pid: int) -> tuple[int, str, str, int] | None:
    """(ppid, state, name, start time) of a process, or None if it is gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1: raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], name, int(fields[19])


def alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, given ``start``, is still the same process."""
    st = _stat(pid)
    return st is not None and st[1] not in ("Z", "X") and (start is None or st[3] == start)


def descendants(pid: int) -> dict[int, tuple[str, int]]:
    """pid -> (name, start time) of every process below ``pid``."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
                info[int(entry.name)] = (st[2], st[3])
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        if p in info and p not in out:
            out[p] = info[p]
            todo.extend(children.get(p, []))
    return out


class Reaper:
    """Handle on a running reaper: :meth:`disarm` before a clean exit (nothing is killed then)."""

    def __init__(self, proc: subprocess.Popen | None, pipe_w: int | None):
        self.proc, self._w = proc, pipe_w

    def disarm(self) -> None:
        if self._w is None:
            return
        try:
            os.write(self._w, DISARM)
            os.close(self._w)
        except OSError:
            pass
        self._w = None
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_reaper() -> Reaper:
    """Start the reaper for this process (see the module docstring). Processes already below this
    one now (e.g. a test session's own cluster) are never touched."""
    if not _PROC.is_dir():
        return Reaper(None, None)
    r, w = os.pipe()  # non-inheritable: only the reaper holds the read end, only we the write end
    proc = subprocess.Popen([sys.executable, "-m", "sweeps.processes", str(os.getpid())], stdin=r,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True)
    os.close(r)
    return Reaper(proc, w)


def _reap(parent: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C to the driver's group must not stop us first
    me = os.getpid()
    before = set(descendants(parent))
    seen: dict[int, tuple[str, int]] = {}
    while True:
        ready, _, _ = select.select([0], [], [], 0.5)
        if ready:
            data = os.read(0, 64)
            if DISARM in data:
                return 0
            if not data:  # the parent is gone, and did not disarm us
                break
        now = descendants(parent)
        seen.update({p: v for p, v in now.items() if p != me and p not in before})
        seen = {p: v for p, v in seen.items() if alive(p, v[1])}
    for _ in range(2):  # twice: a process may have started a child while we killed its parent
        for pid, (_, start) in list(seen.items()):
            for child, v in descendants(pid).items():
                seen.setdefault(child, v)
            if alive(pid, start):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(_reap(int(sys.argv[1])))
