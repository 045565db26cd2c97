"""JAX's persistent compilation cache, so a cell shape compiles once per machine/cluster rather than
once per trial or per sweep (compilation is ≈3–4 s of a small cell's time on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV = "MUTRANSFER_JAX_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(ENV) or platformdirs.user_cache_dir("mutransfer")) / "jax"


def enable(cache_dir: str | os.PathLike | None = None) -> Path:
    """Point JAX's persistent cache at ``cache_dir`` (shared storage on a cluster) and cache every
    compiled program, however small or quick to compile."""
    import jax

    path = Path(cache_dir) if cache_dir else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
