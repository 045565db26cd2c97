"""`python -m sweeps.ray_node start ...`: Ray's own `ray start`, for a node of a one-host cluster whose
every process must stay on loopback (docker-compose.host-network.yml: all nodes on the host's network).

Ray 2.60 decides where its servers listen from the node's IP: the GCS, raylet, object manager and
agents listen on 127.0.0.1 only when the node IP is exactly ``127.0.0.1``, and on all interfaces for
any other address (127.0.0.2 included: `make compose-check` saw ``*:26379``). But `ray start` rewrites
``--node-ip-address 127.0.0.1`` to the host's outward address (``resolve_ip_for_localhost``), and its
one switch that keeps 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, which the embedded cluster and
the tests use for a single node) also refuses to start a worker node ("Multi-node Ray clusters are not
supported"). This entry point runs `ray start` unchanged except that an explicit ``127.0.0.1`` node
address is kept as given; every other argument and address behaves as in `ray start`.
"""
from __future__ import annotations

import sys

LOOPBACK = "127.0.0.1"


def main(argv: list[str] | None = None) -> int:
    import ray._private.services as services
    from ray.scripts.scripts import main as ray_main

    resolve = services.resolve_ip_for_localhost
    services.resolve_ip_for_localhost = lambda host: host if host == LOOPBACK else resolve(host)
    sys.argv = ["ray", *(sys.argv[1:] if argv is None else argv)]
    return ray_main()


if __name__ == "__main__":
    sys.exit(main())
