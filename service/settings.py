"""Service settings, from environment variables. The limits on what requests may ask for are one
table in ``sweeps/limits.py`` (``MUTRANSFER_MAX_RUNS``, ``MUTRANSFER_MAX_BODY_BYTES``, ...).

    MUTRANSFER_RESULTS           results root (default: ./results in the working directory)
    MUTRANSFER_REGISTRY          sweep registry SQLite file (default: RESULTS/registry.sqlite)
    MUTRANSFER_API_TOKEN         when set, POST/DELETE need `Authorization: Bearer <token>`; when not,
                                 they are taken only for a loopback Host and a same-origin Origin
    MUTRANSFER_ALLOWED_HOSTS     more Host names token-less writes are taken for (comma-separated;
                                 `name` on the server's port, `name:port` exactly); see service/origin.py
    MUTRANSFER_RAY_ADDRESS       Ray cluster for sweeps (default: each sweep embeds a local Ray)
    MUTRANSFER_JAX_CACHE         JAX compilation cache directory for sweep drivers (shared storage)
    MUTRANSFER_DRIVERS           local (default): the API starts a detached driver per sweep and
                                 relaunches it if it dies; none: sweeps stay queued for an external
                                 supervisor
    MUTRANSFER_CHECK_DATASETS    1 (default): refuse a spec whose dataset is not installed on this
                                 host; 0 where only the cluster's workers hold the data
    MUTRANSFER_SUPERVISE_S       how often drivers are checked, seconds (default 1)
    MUTRANSFER_HUNG_AFTER_S      a live driver silent this long is killed and relaunched (default 30)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mutransfer.results import default_results_root
from service.origin import parse_allowed
from sweeps import limits as limits_table
from sweeps.limits import Limits

__all__ = ["Limits", "Settings", "from_env"]

__doc__ += "\nLimits, from the one table in sweeps/limits.py:\n\n" + "\n".join(
    f"    {env:<32} {doc} (default {default})" for env, default, doc in limits_table.describe())


@dataclass(frozen=True)
class Settings:
    results: str
    registry: str
    api_token: str | None
    ray_address: str | None
    limits: Limits
    jax_cache: str | None = None
    launch_drivers: bool = True
    check_datasets: bool = True
    supervise_s: float = 1.0
    hung_after_s: float = 30.0
    allowed_hosts: tuple[str, ...] = ()


def from_env(env: dict | None = None) -> Settings:
    env = os.environ if env is None else env
    results = env.get("MUTRANSFER_RESULTS") or str(default_results_root())
    registry = env.get("MUTRANSFER_REGISTRY") or str(Path(results.removeprefix("file://")) / "registry.sqlite")
    return Settings(results=results, registry=registry, api_token=env.get("MUTRANSFER_API_TOKEN") or None,
                    ray_address=env.get("MUTRANSFER_RAY_ADDRESS") or None, limits=limits_table.from_env(env),
                    jax_cache=env.get("MUTRANSFER_JAX_CACHE") or None,
                    launch_drivers=env.get("MUTRANSFER_DRIVERS", "local") != "none",
                    check_datasets=env.get("MUTRANSFER_CHECK_DATASETS", "1") != "0",
                    supervise_s=float(env.get("MUTRANSFER_SUPERVISE_S") or 1.0),
                    hung_after_s=float(env.get("MUTRANSFER_HUNG_AFTER_S") or 30.0),
                    allowed_hosts=parse_allowed(env.get("MUTRANSFER_ALLOWED_HOSTS")))
