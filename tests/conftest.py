import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# Tests run on CPU with small shapes.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cli_cluster(tmp_path_factory):
    """A Ray cluster started the way users start one: `ray start --head` on loopback."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = free_port()
    tmp = tmp_path_factory.mktemp("raycli")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", str(tmp / "ray")],
                   check=True, capture_output=True, env=env, timeout=180)
    yield f"127.0.0.1:{port}"
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=180)
