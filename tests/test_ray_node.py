"""sweeps.ray_node: `ray start` that keeps an explicit 127.0.0.1 node address (the host-network
compose stack's nodes; the stack itself is checked by `make compose-check`)."""
import pytest

from sweeps import ray_node


def test_keeps_loopback_and_nothing_else(monkeypatch):
    import ray._private.services as services

    seen = []
    monkeypatch.setattr(services, "resolve_ip_for_localhost", lambda host: seen.append(host) or "10.1.2.3")
    with pytest.raises(SystemExit) as e:
        ray_node.main(["--version"])  # Ray's own CLI ran (click exits after printing the version)
    assert e.value.code == 0
    assert services.resolve_ip_for_localhost("127.0.0.1") == "127.0.0.1"
    assert services.resolve_ip_for_localhost("localhost") == "10.1.2.3"  # Ray's rule for the rest
    assert seen == ["localhost"]
