"""Service settings, from environment variables (one table-driven place for every limit).

    MUTRANSFER_RESULTS           results root (default: the user data dir)
    MUTRANSFER_REGISTRY          sweep registry SQLite file (default: RESULTS/registry.sqlite)
    MUTRANSFER_API_TOKEN         when set, POST/DELETE need `Authorization: Bearer <token>`
    MUTRANSFER_RAY_ADDRESS       Ray cluster for sweeps (default: each sweep embeds a local Ray)
    MUTRANSFER_MAX_RUNS          max runs per sweep                 (default 20000)
    MUTRANSFER_MAX_WIDTH         max width N                        (default 8192)
    MUTRANSFER_MAX_DEPTH         max hidden layers H                (default 256)
    MUTRANSFER_MAX_EPOCHS        max epochs                         (default 100)
    MUTRANSFER_MAX_CONCURRENT    max sweeps queued/running at once  (default 2)
    MUTRANSFER_JAX_CACHE         JAX compilation cache directory for sweep drivers (shared storage)
    MUTRANSFER_DRIVERS           local (default): the API starts a detached driver per sweep;
                                 none: sweeps stay queued for an external supervisor
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from mutransfer.results import default_results_root


@dataclass(frozen=True)
class Limits:
    max_runs: int = 20000
    max_width: int = 8192
    max_depth: int = 256
    max_epochs: int = 100
    max_concurrent: int = 2


@dataclass(frozen=True)
class Settings:
    results: str
    registry: str
    api_token: str | None
    ray_address: str | None
    limits: Limits
    jax_cache: str | None = None
    launch_drivers: bool = True


def from_env(env: dict | None = None) -> Settings:
    env = os.environ if env is None else env
    results = env.get("MUTRANSFER_RESULTS") or str(default_results_root())
    registry = env.get("MUTRANSFER_REGISTRY") or str(Path(results.removeprefix("file://")) / "registry.sqlite")
    limits = Limits(**{f.name: int(env[f"MUTRANSFER_{f.name.upper()}"]) for f in fields(Limits)
                       if env.get(f"MUTRANSFER_{f.name.upper()}")})
    return Settings(results=results, registry=registry, api_token=env.get("MUTRANSFER_API_TOKEN") or None,
                    ray_address=env.get("MUTRANSFER_RAY_ADDRESS") or None, limits=limits,
                    jax_cache=env.get("MUTRANSFER_JAX_CACHE") or None,
                    launch_drivers=env.get("MUTRANSFER_DRIVERS", "local") != "none")
