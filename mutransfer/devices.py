"""A process and its accelerator: the environment a sweep trial's process gets, and what JAX
reports about the device it runs on. Ray-free, so a trial's setup can be reproduced (and checked
on a GPU, benchmarks/device_check.py) where Ray is not installed.

Trial environment (set before JAX starts its backend in the trial's process)
-----------------------------------------------------------------------------
* ``OMP_NUM_THREADS`` = the trial's CPUs (at least 1).
* One CPU or less: XLA's CPU thread pool is limited to one thread
  (``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``), so
  concurrent trials don't oversubscribe the cores.
* Any GPU share: ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (JAX would otherwise grab 75 % of the
  device at start, and a second trial on the same GPU could not start).
* A fractional share g < 1: ``XLA_PYTHON_CLIENT_MEM_FRACTION = 0.95·g`` caps the trial's
  allocator at that fraction of the device (5 % left for the CUDA context and fragmentation).
  Ray itself sets ``CUDA_VISIBLE_DEVICES`` to the GPU(s) it assigned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

# Headroom per trial: the fraction of its GPU share a trial's allocator may use.
GPU_SHARE_USABLE = 0.95


def trial_env(cpus_per_trial: float, gpus_per_trial: float) -> dict[str, str]:
    """Environment variables for a trial with ``cpus_per_trial`` CPUs and ``gpus_per_trial``
    GPUs (fractional allowed); see the module docstring."""
    env = {"OMP_NUM_THREADS": str(max(1, int(cpus_per_trial)))}
    if cpus_per_trial <= 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if gpus_per_trial > 0:
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if gpus_per_trial < 1:
            env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{GPU_SHARE_USABLE * gpus_per_trial:.3f}"
    return env


def apply_trial_env(env: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> None:
    """Set ``env`` in ``environ`` (default ``os.environ``), keeping ``XLA_FLAGS`` the cluster's
    operator already set."""
    environ = os.environ if environ is None else environ
    for k, v in env.items():
        if k == "XLA_FLAGS" and environ.get(k):
            continue
        environ[k] = v


def memory_stats(device=None) -> dict[str, int]:
    """The allocator's counters of ``device`` (default: the first JAX device) in bytes:
    ``bytes_in_use``, ``peak_bytes_in_use``, ``bytes_limit``, ...; empty where the backend keeps
    none (XLA:CPU)."""
    import jax

    device = device or jax.devices()[0]
    stats = getattr(device, "memory_stats", lambda: None)()
    return {k: int(v) for k, v in (stats or {}).items() if isinstance(v, (int, float))}


def describe() -> dict:
    """What JAX sees: backend, devices and their kinds, the allocator's limit, versions (JAX,
    jaxlib, the CUDA plugin's runtime/driver/cuDNN where installed)."""
    import jax
    import jaxlib

    devs = jax.devices()
    out = {
        "backend": jax.default_backend(),
        "device_count": len(devs),
        "devices": [{"id": d.id, "platform": d.platform, "kind": d.device_kind} for d in devs],
        "memory": memory_stats(devs[0]),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "default_matmul_precision": jax.config.jax_default_matmul_precision,
    }
    try:
        from jax.extend import backend

        out["platform_version"] = backend.get_backend().platform_version
    except Exception as e:  # noqa: BLE001 - optional detail, recorded as missing
        out["platform_version"] = f"unavailable ({type(e).__name__})"
    out["cuda"] = _cuda_versions()
    return out


def _cuda_versions() -> dict[str, str]:
    """Versions the CUDA plugin reports (``jax._src.lib.cuda_versions``); empty without one."""
    try:
        from jax._src.lib import cuda_versions
    except ImportError:
        return {}
    if cuda_versions is None:
        return {}
    out = {}
    for name in sorted(dir(cuda_versions)):
        fn = getattr(cuda_versions, name)
        if "version" in name and not name.startswith("_") and callable(fn):
            try:
                out[name] = str(fn())
            except Exception as e:  # noqa: BLE001 - some need a device or arguments
                out[name] = f"unavailable ({type(e).__name__})"
    return out
