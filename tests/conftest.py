import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The fast lane (`make test-fast`, `pytest -m "not slow"`) is every test that needs no Ray cluster, no
# uvicorn server, no browser, no subprocess sweep and no training beyond a few steps; `make test` runs
# everything. A test is slow when it asks for one of SLOW_FIXTURES (directly or through another
# fixture), lives in one of SLOW_MODULES, or carries ``@pytest.mark.slow`` itself.
SLOW_FIXTURES = frozenset({
    "ray_cli_cluster", "ray_cli_cluster_info",  # a `ray start --head` cluster
    "embedded_ray", "reference",                # tests/test_ray.py: the embedded cluster
    "server", "served",                         # a real uvicorn server (tests/serving.py)
    "browser",                                  # headless Chromium
    "swept",                                    # tests/test_cli.py: a whole sweep through the CLI
})
SLOW_MODULES = frozenset({
    "test_browser", "test_ray", "test_reliability_ray", "test_reliability_drivers", "test_service",
    "test_reliability_api", "test_compose_check",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = getattr(item.module, "__name__", "").rsplit(".", 1)[-1]
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or module in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


# Tests run on CPU with small shapes.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def digits():
    """The bundled digits data set (``load_dataset("digits")``: 8×8 images, 10 classes), loaded once."""
    from mutransfer.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_on_device(digits):
    """:func:`digits` as the trainer takes it (``mutransfer.trainer.to_device``)."""
    from mutransfer.trainer import to_device

    return to_device(digits)


@pytest.fixture(scope="session")
def digits_small():
    """A 512-train / 200-test slice of the digits, for the CNN tests' compile-bound shapes."""
    from mutransfer.data import load_dataset

    return load_dataset("digits", train_examples=512, test_examples=200)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cli_cluster(ray_cli_cluster_info) -> str:
    """The session cluster's address (HOST:PORT)."""
    return ray_cli_cluster_info["address"]


@pytest.fixture(scope="session")
def ray_cli_cluster_info(tmp_path_factory):
    """A Ray cluster started the way users start one: `ray start --head` on loopback.

    `--node-ip-address 127.0.0.1` alone is not enough: Ray 2.60 rewrites a loopback node address to
    the machine's routable one and binds there. `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (what
    sweeps.ray_exec.loopback_only sets for the embedded cluster) keeps it on 127.0.0.1, for every
    process of the cluster (checked with `ss` in tests/test_reliability_ray.py).

    `--block` keeps the `ray start` process in the foreground so that terminating it stops exactly
    this cluster's processes (`ray stop` would stop every Ray cluster of the user on the machine): the
    cluster's processes share the new session's process group, which teardown kills.
    """
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    tmp = tmp_path_factory.mktemp("raycli")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    log = open(tmp / "ray_start.log", "wb")
    proc = subprocess.Popen([str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--temp-dir", str(tmp / "ray")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + 180
    while "block forever" not in (tmp / "ray_start.log").read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            log.close()
            raise RuntimeError("ray start --head failed: " + (tmp / "ray_start.log").read_text()[-2000:])
        time.sleep(0.5)
    # the address, the process group of the whole cluster, and the `ray start` output
    yield {"address": f"127.0.0.1:{port}", "pgid": proc.pid, "log": tmp / "ray_start.log"}
    # The whole process group is this cluster (gcs, raylet, its workers): stop it without the 30-s drain.
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    log.close()
