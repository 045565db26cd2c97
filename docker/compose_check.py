"""`make compose-check`: build the images and start the docker-compose stack for real, run sweeps
through it over HTTP, kill a worker mid-sweep, check the results, tear everything down.

    sudo python3 docker/compose_check.py [--keep-data-root] [--second-sweep-only]

Needs root (it installs Debian packages and runs its own dockerd), several GB of disk and minutes.
Standard library only, so Debian's python3 runs it; the images hold the project's Python.

Stages (each prints its wall time):
  install   apt-get: docker.io, docker-compose, debootstrap (only what is missing)
  daemon    its OWN dockerd: private socket, data root, exec root and pidfile; vfs storage, no
            iptables, no bridge. A system Docker daemon, if any, is never touched.
  base      docker/local_base.sh: a python:3.11-slim-bookworm stand-in from Debian's packages
            (no Docker Hub here); reused when its tag (a hash of the script) exists
  build     the stack's image through compose (docker-compose.yml + docker-compose.host-network.yml,
            BASE_IMAGE = that base); reused when a tag keyed by a hash of its inputs exists
  create    the containers (`compose up --no-start`), before the lock: with vfs each is a full copy
  lock      waits for the heavy-work lock (below)
  up        head, two CPU workers and the API (host network, loopback, non-default ports), until
            the API answers /health and Ray counts both workers' CPUs
  sweep-1   quickstart_digits over HTTP with the token (and refused without it); waits for it
  check-1   the runs table over HTTP: every planned run present exactly once, none failed; the
            dashboard pages answer 200 with HTML naming the sweep
  sweep-2   the same grid under another name; one worker container killed (docker kill) while it
            runs a trial; waits for the sweep
  check-2   every planned run present exactly once, and each run's results equal to sweep 1's
  down      compose down (containers, network, volumes), then its dockerd stopped

Held from `up` to `down`: flock /tmp/mutransfer-heavy.lock (other test Ray clusters on this machine
wait). The data root (/var/lib/mutransfer-compose-check by default) is kept between runs as a cache
of the base and the images (GBs: vfs stores each layer as a full copy); --no-keep-data-root deletes it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("MUTRANSFER_CHECK_STATE", "/var/lib/mutransfer-compose-check"))
RUN_DIR = Path("/run/mutransfer-cc")  # short: unix socket paths under the exec root are length-limited
SOCKET = RUN_DIR / "docker.sock"
PIDFILE = RUN_DIR / "dockerd.pid"
HEAVY_LOCK = "/tmp/mutransfer-heavy.lock"
PROJECT = "mutransfer-check"
DOCKER = "/usr/bin/docker"  # Debian's client, matched to its daemon (a newer one may be first on PATH)
APT_PACKAGES = {"docker.io": "/usr/sbin/dockerd", "docker-compose": "/usr/bin/docker-compose",
                "debootstrap": "/usr/sbin/debootstrap"}
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.host-network.yml")
SPEC = ROOT / "sweeps" / "specs" / "quickstart_digits.yaml"
# Loopback, and ports no default Ray or server uses (other helpers' test clusters run here too).
NET = {"RAY_NODE_IP": "127.0.0.1", "RAY_PORT": "26379", "MUTRANSFER_PORT": "28000"}
WORKERS = 2
WORKER_CPUS = 1  # two workers x one CPU: two trials at a time on this 2-core machine
# What a run computed (compared between sweeps); wall_s, ids and versions are not results.
RESULT_COLUMNS = ("status", "min_train_loss", "min_train_loss_25pct", "min_train_loss_50pct", "final_train_loss",
                  "best_test_acc", "final_test_acc", "steps", "diverged_step")
GRID_COLUMNS = ("algorithm", "parametrization", "width", "depth", "weight_lr", "activity_lr", "seed")
TERMINAL = ("finished", "failed", "cancelled")
PAGES = ("/", "/sweeps/{sid}/contours", "/sweeps/{sid}/shift", "/sweeps/{sid}/diagnostics", "/sweeps/{sid}/table",
         "/sweeps/{sid}/report?format=html")


class CheckFailed(RuntimeError):
    pass


def log(msg: str) -> None:
    print(f"[compose-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


class Stages:
    """Times each stage; the table is printed at the end, whatever happened."""

    def __init__(self) -> None:
        self.times: list[tuple[str, float, str]] = []

    @contextlib.contextmanager
    def __call__(self, name: str, what: str):
        log(f"--- {name}: {what}")
        t0 = time.perf_counter()
        outcome = "FAILED"
        try:
            yield
            outcome = "ok"
        finally:
            dt = time.perf_counter() - t0
            self.times.append((name, dt, outcome))
            log(f"--- {name}: {outcome} in {dt:.1f} s")

    def table(self) -> str:
        lines = ["stage      time     outcome"]
        lines += [f"{n:<10} {t:>7.1f} s  {o}" for n, t, o in self.times]
        lines.append(f"{'total':<10} {sum(t for _, t, _ in self.times):>7.1f} s")
        return "\n".join(lines)


def run(cmd: list[str], *, env: dict | None = None, check_rc: bool = True, capture: bool = False,
        nice: int | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    if nice is not None:
        cmd = ["nice", "-n", str(nice), *cmd]
    r = subprocess.run(cmd, env=env, text=True, timeout=timeout, cwd=ROOT,
                       stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT if capture else None)
    if check_rc and r.returncode != 0:
        tail = ("\n" + r.stdout[-3000:]) if capture and r.stdout else ""
        raise CheckFailed(f"`{' '.join(cmd)}` exited {r.returncode}{tail}")
    return r


# --- install -----------------------------------------------------------------------------------

def install() -> None:
    missing = [pkg for pkg, path in APT_PACKAGES.items() if not Path(path).exists()]
    if not missing:
        log("docker.io, docker-compose and debootstrap already installed")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, nice=10)
    # Debian's docker.io postinst would start a system daemon under systemd; there is none here, and
    # this check never uses one (its own dockerd below).
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, nice=10)


# --- daemon ------------------------------------------------------------------------------------

def docker_env() -> dict:
    # (docker-compose 1.29 builds by running the `docker` first on PATH: on the machine this ran on,
    # a newer client in /usr/local/bin, which talks to this daemon fine.)
    return {**os.environ, "DOCKER_HOST": f"unix://{SOCKET}"}


def docker(*args: str, **kw) -> subprocess.CompletedProcess:
    return run([DOCKER, *args], env=docker_env(), **kw)


def _alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pid_from(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_daemon(proc: subprocess.Popen | None = None, timeout: float = 300.0) -> None:
    """Stop the dockerd this check started (by its pidfile), and its managed containerd with it."""
    pid = _pid_from(PIDFILE)
    if pid is not None and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if _alive(pid):
            log(f"dockerd {pid} still running after {timeout:.0f} s: SIGKILL")
            os.kill(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)  # reap it
    # unmount anything left under the private exec root (netns files, shm of killed containers)
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        mnt = line.split()[1]
        if mnt.startswith(str(RUN_DIR)) or mnt.startswith(str(STATE / "docker")):
            subprocess.run(["umount", "-l", mnt], check=False)
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def start_daemon() -> subprocess.Popen:
    stop_daemon()  # one left over from an interrupted run of this check (ours: its pidfile)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (STATE / "docker").mkdir(parents=True, exist_ok=True)
    logf = open(STATE / "dockerd.log", "ab")
    # Under nice 19: the image builds run as the daemon's children. Lowered to 10 before the stack
    # starts (see renice_daemon).
    proc = subprocess.Popen(
        ["nice", "-n", "19", "/usr/sbin/dockerd",
         "--host", f"unix://{SOCKET}", "--data-root", str(STATE / "docker"), "--exec-root", str(RUN_DIR / "exec"),
         "--pidfile", str(PIDFILE), "--storage-driver=vfs", "--iptables=false", "--ip-masq=false",
         "--bridge=none", "--containerd-namespace", PROJECT, "--containerd-plugins-namespace", f"{PROJECT}-plugins"],
        stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckFailed(f"dockerd exited {proc.returncode}; see {STATE / 'dockerd.log'}")
        if docker("info", "--format", "{{.ServerVersion}}", check_rc=False, capture=True).returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise CheckFailed(f"dockerd did not answer on {SOCKET} within 120 s; see {STATE / 'dockerd.log'}")
    info = docker("info", "--format", "{{.ServerVersion}} {{.Driver}} {{.DockerRootDir}}", capture=True)
    log(f"dockerd {proc.pid}: {info.stdout.strip()} on {SOCKET}")
    return proc


def renice_daemon(proc: subprocess.Popen, niceness: int) -> None:
    """Set the niceness of our dockerd and its children (its managed containerd): containers started
    from now on inherit it."""
    pids = [proc.pid]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, pid, niceness)


# --- base and build ----------------------------------------------------------------------------

def build_base() -> str:
    r = run([str(ROOT / "docker" / "local_base.sh")], env={**docker_env(), "DOCKER": DOCKER}, capture=True)
    tag = r.stdout.strip().splitlines()[-1]
    for line in r.stdout.strip().splitlines()[:-1][-5:]:
        log(f"  {line}")
    check(docker("image", "inspect", tag, check_rc=False, capture=True).returncode == 0,
          f"docker/local_base.sh printed {tag!r} but no such image exists")
    return tag


def context_files() -> list[Path]:
    """What docker/Dockerfile copies (see .dockerignore): the inputs of the image besides itself."""
    files = [ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "docker" / "requirements.py"]
    for pkg in ("mutransfer", "sweeps", "service", "dashboards"):
        files += sorted(p for p in (ROOT / pkg).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
                        and not any(part.endswith(".egg-info") for part in p.parts))
    return files


def image_key(base: str) -> str:
    h = hashlib.sha256(base.encode())
    for p in [ROOT / "docker" / "Dockerfile", ROOT / ".dockerignore", ROOT / "docker-compose.yml", *context_files()]:
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def compose_cmd() -> list[str]:
    """`docker compose` (v2) where the client has it, else Debian's `docker-compose` (1.29)."""
    if run([DOCKER, "compose", "version"], env=docker_env(), check_rc=False, capture=True).returncode == 0:
        base = [DOCKER, "compose"]
    else:
        base = ["docker-compose"]
    files = [a for f in COMPOSE_FILES for a in ("-f", str(ROOT / f))]
    return [*base, "--project-name", PROJECT, "--project-directory", str(ROOT), *files]


def build_image(compose: list[str], compose_env: dict) -> None:
    key = image_key(compose_env["MUTRANSFER_BASE_IMAGE"])
    cached = f"mutransfer:check-{key}"
    if docker("image", "inspect", cached, check_rc=False, capture=True).returncode == 0:
        docker("tag", cached, "mutransfer:latest")
        log(f"image inputs unchanged ({cached}): not rebuilt")
        return
    # the CPU services share one image; building one of them builds it (compose would build it three
    # times over, from cache)
    run([*compose, "build", "ray-head"], env=compose_env, nice=19)
    docker("tag", "mutransfer:latest", cached)
    size = docker("image", "inspect", "mutransfer:latest", "--format", "{{.Size}}", capture=True).stdout.strip()
    log(f"built mutransfer:latest = {cached} ({int(size) / 1e9:.2f} GB)")


# --- the stack ---------------------------------------------------------------------------------

def api_url(path: str) -> str:
    return f"http://127.0.0.1:{NET['MUTRANSFER_PORT']}{path}"


def http(method: str, path: str, *, token: str | None = None, body: bytes | None = None,
         content_type: str | None = None, accept: str | None = None, timeout: float = 30.0):
    """(status, headers, body bytes); an HTTP error status is returned, not raised."""
    req = urllib.request.Request(api_url(path), data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    if accept:
        req.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def get_json(path: str):
    status, _, body = http("GET", path)
    check(status == 200, f"GET {path}: HTTP {status}: {body[:300]!r}")
    return json.loads(body)


def ports_free() -> None:
    import socket

    for host, port in ((NET["RAY_NODE_IP"], NET["RAY_PORT"]), ("127.0.0.1", NET["MUTRANSFER_PORT"])):
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                raise CheckFailed(f"{host}:{port} is already in use; set other ports (NET in {__file__})")


def cluster_cpus(compose: list[str], env: dict) -> float:
    r = run([*compose, "exec", "-T", "ray-head", "ray", "status", "--address",
             f"{NET['RAY_NODE_IP']}:{NET['RAY_PORT']}"], env=env, check_rc=False, capture=True, timeout=60)
    m = re.search(r"([\d.]+)/([\d.]+) CPU", r.stdout or "")
    return float(m.group(2)) if m else 0.0


def non_loopback_listeners() -> set[str]:
    """The host's listening TCP sockets (`ss -ltn`) whose local address is not a loopback one. On the
    host network the stack's sockets are the host's, so the stack's own are those new after `up`."""
    listening = subprocess.run(["ss", "-ltnH"], text=True, capture_output=True, check=True).stdout
    return {ln.split()[3] for ln in listening.splitlines()
            if ln.split() and not ln.split()[3].startswith(("127.", "[::1]", "[::ffff:127."))}


def stack_up(compose: list[str], env: dict) -> None:
    ports_free()
    before = non_loopback_listeners()
    run([*compose, "up", "-d", "--no-build", "--scale", f"ray-worker={WORKERS}"], env=env)
    want = WORKERS * WORKER_CPUS
    deadline = time.monotonic() + 300
    healthy = False
    while time.monotonic() < deadline:
        if not healthy:
            with contextlib.suppress(OSError):
                healthy = http("GET", "/health", timeout=5)[0] == 200
        if healthy and cluster_cpus(compose, env) >= want:
            break
        time.sleep(2)
    else:
        raise CheckFailed(f"within 300 s: API healthy={healthy}, cluster CPUs={cluster_cpus(compose, env)} "
                          f"(want {want})")
    log(f"API healthy at {api_url('/health')}; Ray cluster has {want} CPUs (2 workers)")
    exposed = sorted(non_loopback_listeners() - before)
    check(not exposed, f"the stack listens beyond loopback on {exposed} (host network: every Ray process must "
                       "bind 127.0.0.1; see docker-compose.host-network.yml)")
    log("every listening socket the stack opened is on loopback (ss -ltn, compared with before `up`)")


def submit(spec_text: str, token: str) -> str:
    body = spec_text.encode()
    status, _, resp = http("POST", "/sweeps", body=body, content_type="application/yaml")
    check(status == 401, f"POST /sweeps without the token: HTTP {status}, want 401")
    status, _, resp = http("POST", "/sweeps", token="wrong-" + token, body=body, content_type="application/yaml")
    check(status in (401, 403), f"POST /sweeps with a wrong token: HTTP {status}, want 401/403")
    status, _, resp = http("POST", "/sweeps", token=token, body=body, content_type="application/yaml")
    check(status == 202, f"POST /sweeps: HTTP {status}: {resp[:500]!r}")
    sid = json.loads(resp)["id"]
    log(f"submitted {sid} (refused without the token, and with a wrong one)")
    return sid


def wait_for(sid: str, timeout: float, on_poll=None) -> dict:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        st = get_json(f"/sweeps/{sid}")
        line = f"{st['status']} {st['runs_done']}/{st['runs_total']} runs (+{st.get('runs_in_progress', 0):.0f})"
        if line != last:
            log(f"  {sid}: {line}")
            last = line
        if st["status"] in TERMINAL:
            return st
        if on_poll:
            on_poll(st)
        time.sleep(2)
    raise CheckFailed(f"{sid} not finished within {timeout:.0f} s")


def runs_table(sid: str) -> list[dict]:
    return get_json(f"/sweeps/{sid}/runs?format=json")


def grid_key(row: dict) -> tuple:
    return tuple(row[c] if not (isinstance(row[c], float) and math.isnan(row[c])) else None for c in GRID_COLUMNS)


def check_runs(sid: str, state: dict) -> dict[tuple, dict]:
    check(state["status"] == "finished", f"{sid}: {state['status']} ({state.get('error')})")
    rows = runs_table(sid)
    total = state["runs_total"]
    ids = [r["run_id"] for r in rows]
    keys = [grid_key(r) for r in rows]
    check(len(rows) == total, f"{sid}: {len(rows)} rows in the runs table, {total} planned")
    check(len(set(ids)) == len(ids), f"{sid}: a run_id appears twice")
    check(len(set(keys)) == len(keys), f"{sid}: a grid point appears twice")
    statuses = {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
    check("failed" not in statuses, f"{sid}: failed runs: {statuses}")
    log(f"{sid}: runs table over HTTP: {len(rows)} rows = {total} planned, each run once; statuses {statuses}")
    return dict(zip(keys, rows))


def check_pages(sid: str, other: str | None = None) -> None:
    paths = [p.format(sid=sid) for p in PAGES]
    rows = runs_table(sid)
    paths.append(f"/sweeps/{sid}/runs/{rows[0]['run_id']}")
    if other:
        paths.append(f"/compare?a={sid}&b={other}")
    for path in paths:
        status, headers, body = http("GET", path, accept="text/html", timeout=120)
        ctype = headers.get("content-type", headers.get("Content-Type", ""))
        check(status == 200 and ctype.startswith("text/html"), f"GET {path}: HTTP {status} {ctype}")
        check(sid.encode() in body or path == "/", f"GET {path}: the page does not name {sid}")
        if path == "/":
            check(sid.encode() in body, f"GET /: the index does not list {sid}")
    log(f"pages: {len(paths)} answered 200 text/html naming the sweep: {', '.join(p.split('?')[0] for p in paths)}")


def compare_results(first: dict[tuple, dict], second: dict[tuple, dict]) -> None:
    common = set(first) & set(second)
    check(common, "the two sweeps have no grid point in common")
    differ = []
    for k in sorted(common, key=str):
        a, b = first[k], second[k]
        for c in RESULT_COLUMNS:
            if a[c] != b[c]:  # JSON null for NaN/inf on both sides compares equal
                differ.append((k, c, a[c], b[c]))
    if differ:
        for k, c, x, y in differ[:10]:
            log(f"  differs: {dict(zip(GRID_COLUMNS, k))} {c}: {x!r} vs {y!r}")
    check(not differ, f"{len(differ)} values differ between the clean sweep and the one with a killed worker")
    log(f"results equal to the clean sweep's in all {len(RESULT_COLUMNS)} result columns for all "
        f"{len(common)} common runs")


def worker_containers(compose: list[str], env: dict) -> list[str]:
    r = run([*compose, "ps", "-q", "ray-worker"], env=env, capture=True)
    return [c for c in r.stdout.split() if c]


def trial_processes(container: str) -> list[str]:
    """Processes of a container running a Tune trial (Ray names a trial's actor ImplicitFunc)."""
    r = docker("top", container, "-eo", "pid,args", check_rc=False, capture=True)
    return [ln.strip() for ln in (r.stdout or "").splitlines() if "ImplicitFunc" in ln]


def second_sweep(compose: list[str], env: dict, token: str, first: dict[tuple, dict], timeout: float) -> None:
    spec = SPEC.read_text()
    spec2 = re.sub(r"^name:.*$", "name: compose-check-killed-worker", spec, count=1, flags=re.M)
    check(spec2 != spec, f"{SPEC}: no `name:` line to rename")
    sid = submit(spec2, token)
    killed: dict = {}

    def maybe_kill(state: dict) -> None:
        if killed or state["status"] != "running":
            return
        if state["runs_done"] == 0:  # mid-sweep: after a first cell has finished, not before
            return
        for c in worker_containers(compose, env):
            procs = trial_processes(c)
            if procs:
                docker("kill", c, capture=True)
                killed.update(container=c[:12], procs=procs, at=f"{state['runs_done']}/{state['runs_total']}")
                log(f"KILLED worker container {c[:12]} at {killed['at']} runs done; it was running: {procs}")
                return

    state = wait_for(sid, timeout, on_poll=maybe_kill)
    check(bool(killed), f"{sid} finished before a worker could be killed mid-trial")
    runs = check_runs(sid, state)
    attempts = {c["part"]: c["attempts"] for c in state["cells"]}
    retried = {p: a for p, a in attempts.items() if a > 1}
    log(f"{sid}: cells retried after the kill: {retried or 'none recorded'}")
    compare_results(first, runs)
    check(set(runs) == set(first), "the two sweeps' grids differ")
    after = docker("inspect", "--format", "{{.State.Status}} restarts={{.RestartCount}}", killed["container"],
                   check_rc=False, capture=True).stdout.strip()
    log(f"killed worker container afterwards: {after or 'gone'}")
    check_pages(sid, other=None)


def dump_logs(compose: list[str], env: dict) -> None:
    with contextlib.suppress(Exception):
        run([*compose, "ps"], env=env, check_rc=False)
        run([*compose, "logs", "--no-color", "--tail", "60"], env=env, check_rc=False)


# --- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-keep-data-root", action="store_true",
                    help=f"delete {STATE} (the cached base and images) at the end")
    ap.add_argument("--sweep-timeout", type=float, default=900.0, help="seconds each sweep may take")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("compose-check: needs root (apt-get, its own dockerd); run `sudo make compose-check`", file=sys.stderr)
        return 2

    stages = Stages()
    token, ray_token = secrets.token_hex(16), secrets.token_hex(32)
    envdir = Path(tempfile.mkdtemp(prefix="mutransfer-cc-"))
    daemon = None
    compose: list[str] = []
    env: dict = {}
    lock = None
    stack_started = False
    ok = False
    try:
        with stages("install", "Debian packages"):
            install()
        with stages("daemon", "a private dockerd (vfs, no bridge, no iptables)"):
            daemon = start_daemon()
        with stages("base", "local base image from Debian packages (docker/local_base.sh)"):
            base = build_base()
        # Every variable compose reads comes from here, never from a .env in the checkout.
        env = {**docker_env(), "RAY_AUTH_TOKEN": ray_token, "MUTRANSFER_API_TOKEN": token,
               "MUTRANSFER_BASE_IMAGE": base, "RAY_WORKER_CPUS": str(WORKER_CPUS), **NET,
               "COMPOSE_FILE": "", "COMPOSE_PROJECT_NAME": PROJECT,
               "COMPOSE_HTTP_TIMEOUT": "900"}  # vfs: removing a container deletes a full filesystem copy
        (envdir / ".env").write_text("")  # an empty env file: a .env in the checkout is not read
        compose = [*compose_cmd(), "--env-file", str(envdir / ".env")]
        with stages("build", "the stack's image through compose"):
            build_image(compose, env)
        renice_daemon(daemon, 10)
        with stages("create", f"the containers, before taking the lock (vfs copies each one's filesystem)"):
            stack_started = True
            # what an interrupted earlier run may have left (its containers, volumes)
            run([*compose, "down", "--volumes", "--remove-orphans"], env=env, check_rc=False)
            run([*compose, "up", "--no-start", "--no-build", "--scale", f"ray-worker={WORKERS}"], env=env)
        with stages("lock", f"wait for {HEAVY_LOCK}"):
            lock = open(HEAVY_LOCK, "a")
            fcntl.flock(lock, fcntl.LOCK_EX)
        with stages("up", f"head + {WORKERS} CPU workers + API, host network on loopback"):
            stack_up(compose, env)
        spec = SPEC.read_text()
        with stages("sweep-1", f"{SPEC.name} over HTTP"):
            sid = submit(spec, token)
            state = wait_for(sid, args.sweep_timeout)
        with stages("check-1", "runs table and pages over HTTP"):
            first = check_runs(sid, state)
            check_pages(sid)
        with stages("sweep-2", "the same grid, one worker container killed mid-sweep; checks"):
            second_sweep(compose, env, token, first, args.sweep_timeout)
        ok = True
    except CheckFailed as e:
        log(f"FAILED: {e}")
        if stack_started:
            dump_logs(compose, env)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        with stages("down", "compose down -v, then the private dockerd stopped"):
            if stack_started:
                run([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "20"], env=env, check_rc=False)
            if lock is not None:
                lock.close()  # releases the heavy lock
            if daemon is not None:
                with contextlib.suppress(Exception):
                    df = docker("system", "df", capture=True, check_rc=False).stdout
                    log("data root kept for the next run:\n" + df.rstrip())
            stop_daemon(daemon)
            if args.no_keep_data_root:
                shutil.rmtree(STATE, ignore_errors=True)
            shutil.rmtree(envdir, ignore_errors=True)
        print("\ncompose-check stage times:\n" + stages.table(), flush=True)
        print(f"compose-check: {'PASSED' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
