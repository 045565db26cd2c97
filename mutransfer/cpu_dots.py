"""A CPU fast path for the trainer's matrix products: XLA's own multi-threaded dot instead of the
single-threaded YNNPACK dot fusion.

Why (measured, docs/performance/trainer.md#the-cpu-dot): XLA:CPU in this JAX (jaxlib 0.10) lowers
a dot to a YNNPACK fusion (``__ynn_fusion``) that runs on **one thread**, and gets multi-core speed
only by running *independent* thunks at once. The unrolled hidden layers gave it H − 1 independent
dots per inference step; the depth scan's one stacked product gives it one, so the grid trainer
used one core of two (≈ 1.6× slower at N = 256, ≈ 1.2× at N = 64). With the dot and individual-dot
YNN fusions turned off (``--xla_cpu_experimental_ynn_fusion_type=-dot,-individual_dot``) XLA
emits its Eigen dot, which uses every core of the CPU client's thread pool, and the stacked program
keeps its depth-independent compile time.

Only the CPU backend reads the flag: the same program runs unchanged on a GPU. The flag is added to
``XLA_FLAGS`` only

* before JAX has started a backend in this process (XLA parses ``XLA_FLAGS`` once, at that start),
* when the installed jaxlib knows the flag (an unknown flag in ``XLA_FLAGS`` aborts the process;
  the experimental flag may come and go between jaxlib versions),
* when ``XLA_FLAGS`` does not set it already, and
* unless ``MUTRANSFER_CPU_DOTS=xla`` asks for XLA's default dots.

It is set in the environment, so the processes this one starts (Ray workers, sweep drivers) inherit
it; a process whose JAX started earlier keeps what it has.
"""

from __future__ import annotations

import mmap
import os
import sys
from importlib.util import find_spec
from pathlib import Path

FLAG = "--xla_cpu_experimental_ynn_fusion_type=-dot,-individual_dot"
FLAG_NAME = FLAG[2:].split("=", 1)[0]
ENV = "MUTRANSFER_CPU_DOTS"  # "eigen" (default) or "xla" (leave XLA's default dots)


def jaxlib_knows_flag() -> bool:
    """Whether the installed jaxlib's XLA defines :data:`FLAG_NAME` (its flag table is in the
    shared library's read-only data; scanned with ``mmap``, a few hundred ms once per process)."""
    spec = find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    for lib in sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.so")):
        try:
            with open(lib, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                if m.find(FLAG_NAME.encode()) >= 0:
                    return True
        except (OSError, ValueError):
            continue
    return False


def backend_started() -> bool:
    """Whether JAX has created a backend in this process (then ``XLA_FLAGS`` is read already)."""
    xb = sys.modules.get("jax._src.xla_bridge")
    return bool(xb is not None and getattr(xb, "_backends", None))


def enable(environ=os.environ) -> bool:
    """Add :data:`FLAG` to ``XLA_FLAGS`` when the module docstring's conditions hold; True if the
    flag is (now) in force for backends started from ``environ``."""
    flags = environ.get("XLA_FLAGS", "")
    if FLAG_NAME in flags:
        return FLAG in flags.split()
    if environ.get(ENV, "eigen").strip().lower() == "xla" or backend_started() or not jaxlib_knows_flag():
        return False
    environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    return True
