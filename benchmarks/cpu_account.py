"""Where a command's CPU time goes, by kind of process: run it, sample every process once a second.

    python benchmarks/cpu_account.py [--every 1.0] -- make test

Prints the command's wall time, how busy the machine's CPUs were while it ran, and the CPU seconds
spent per kind of process (pytest workers, Ray trial workers, sweep drivers, servers, Chromium, ...),
told apart by their command lines. Every process on the machine is counted (the command's and any
other), from the CPU time it had at the first sample it was seen in; a process that starts and ends
between two samples is missed, so the figures are a lower bound. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter

HZ = os.sysconf("SC_CLK_TCK")
# (substring of the command line, kind), first match wins.
KINDS = (
    ("exec(eval(sys.stdin", "pytest worker (xdist)"), ("bin/pytest", "pytest (controller)"),
    ("-m pytest", "pytest (subprocess)"), ("sweeps.driver", "sweep driver"),
    ("ray::IDLE", "Ray worker (idle)"), ("ray::", "Ray worker (trial)"), ("default_worker.py", "Ray worker (trial)"),
    ("raylet", "Ray raylet"), ("gcs_server", "Ray GCS"), ("dashboard", "Ray agents"), ("runtime_env", "Ray agents"),
    ("ray start", "Ray other"), ("log_monitor", "Ray other"), ("monitor.py", "Ray other"),
    ("chrom", "Chromium"), ("device_check", "device check"), ("mkdocs", "mkdocs"),
    ("mutransfer serve", "server"), ("uvicorn", "server"), ("bin/mutransfer", "CLI"), ("cpu_account", "this sampler"),
)


def kind(pid: str) -> str:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return "gone"
    for key, name in KINDS:
        if key in cmd or key in comm:
            return name
    return "python (other)" if "python" in cmd else "other"


def ticks_by_process() -> dict[tuple[str, str], int]:
    """(pid, start time) -> user + system clock ticks, for every process now."""
    out = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            out[pid, fields[19]] = int(fields[11]) + int(fields[12])
    return out


def cpu_busy_ticks() -> tuple[int, int]:
    values = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(values) - values[3] - values[4], sum(values)  # busy, total (idle and iowait not busy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    seen = ticks_by_process()  # what ran before the command: counted from here on
    busy0, total0 = cpu_busy_ticks()
    t0 = time.perf_counter()
    proc = subprocess.Popen(command)
    spent: Counter = Counter()
    while True:
        done = proc.poll() is not None
        now = ticks_by_process()
        for key, ticks in now.items():
            delta = ticks - seen.get(key, 0)
            if delta > 0:
                spent[kind(key[0])] += delta / HZ
        seen = now
        if done:
            break
        time.sleep(args.every)
    wall = time.perf_counter() - t0
    busy1, total1 = cpu_busy_ticks()
    busy = (busy1 - busy0) / max(1, total1 - total0)
    total = sum(spent.values())
    print(f"\ncpu_account: `{' '.join(command)}` exited {proc.returncode} after {wall:.0f} s; CPUs "
          f"{busy:.0%} busy ({os.cpu_count()} CPUs); {total:.0f} CPU-s counted:")
    for name, seconds in spent.most_common():
        if seconds >= 0.5:
            print(f"  {seconds:8.1f} s  {seconds / total:5.1%}  {name}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
