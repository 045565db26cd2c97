"""Drive one registered sweep to the end, in a process of its own.

    python -m sweeps.driver SWEEP_ID --results ROOT [--registry FILE] [--address HOST:PORT]

The service starts one of these per submitted sweep (in a new session, so restarting the web
process does not stop it) and starts another for any sweep left queued/running by a dead driver;
finished trials are never recomputed. The registry's cancel flag (DELETE /sweeps/{id}) cancels
the sweep: running trials stop, finished results stay.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from sweeps.registry import Registry, default_path
from sweeps.spec import parse_spec

log = logging.getLogger("sweeps.driver")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sweeps.driver")
    ap.add_argument("sweep_id")
    ap.add_argument("--results", required=True)
    ap.add_argument("--registry", default=None)
    ap.add_argument("--address", default=None)
    ap.add_argument("--jax-cache", default=None)
    ap.add_argument("--max-failures", type=int, default=2)
    args = ap.parse_args(argv)
    registry = Registry(args.registry or default_path(args.results))
    row = registry.sweep(args.sweep_id)
    if row is None or row.get("spec") is None:
        print(f"error: sweep {args.sweep_id!r} is not in the registry (or its spec is unreadable)", file=sys.stderr)
        return 2
    if row.get("cancel"):
        registry.set_sweep(args.sweep_id, "cancelled")
        return 0
    registry.set_driver(args.sweep_id, os.getpid())
    try:
        from sweeps import compile_cache
        from sweeps.ray_exec import run_sweep_ray

        cache = compile_cache.enable(args.jax_cache)
        run_sweep_ray(parse_spec(row["spec"]), args.results, sweep_id=args.sweep_id, address=args.address,
                      registry_path=registry.path, max_failures=args.max_failures, jax_cache=str(cache))
        return 0
    except Exception as e:  # recorded for GET /sweeps/{id}; the process still exits non-zero
        log.exception("sweep %s failed", args.sweep_id)
        registry.set_sweep(args.sweep_id, "failed", error=f"{type(e).__name__}: {e}")
        return 1
    finally:
        registry.set_driver(args.sweep_id, None)


if __name__ == "__main__":
    sys.exit(main())
