"""Every limit on what this system accepts, in one table.

Each row is a field of :class:`Limits`: its default, and the environment variable that overrides it
(``MUTRANSFER_<NAME>``, read by :func:`from_env`). The service reads them at start-up
(``service/settings.py``); the CLI applies the document limits to the spec files it reads. What a
limit protects is stated next to it. Exceeding one is refused before the work it would cost is done:
body size before the body is read in full, document shape while it is parsed (never after), the run
count arithmetically from the spec (never by building the runs).

Hard bounds of single spec fields (a batch size, an lr, a seed) are not operator settings: they live
on the fields of the spec model (``sweeps/spec.py``), which the JSON Schema (``mutransfer schema``)
publishes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Mapping


def _limit(default, doc: str):
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class Limits:
    """Operator limits (defaults suit one lab server; raise them per deployment)."""

    # -- what one sweep may ask for ---------------------------------------------------------
    max_runs: int = _limit(20000, "runs per sweep (cells × lr pairs × seeds), counted from the spec; with "
                                  "decide: its own runs plus decide.max_runs")
    max_width: int = _limit(8192, "network width N (units or channels)")
    max_depth: int = _limit(256, "hidden layers H")
    max_epochs: int = _limit(100, "training epochs")
    max_concurrent: int = _limit(2, "sweeps queued or running at once (429 beyond)")
    # -- what one sweep may cost (sweeps/cost.py; checked at submit and by `mutransfer run`) ---
    max_run_memory_gb: float = _limit(16.0, "device memory of one run by the trainer's estimate, GiB "
                                            "(resources.memory_budget_gb, when smaller, is the bound)")
    max_sweep_pflop: float = _limit(5000.0, "nominal compute of a sweep: run-steps × FLOP per run-step, PFLOP")
    # -- what one request may carry (checked before and while parsing) -----------------------
    max_body_bytes: int = _limit(64 * 1024, "request body bytes (413 beyond; a spec is ~1 KB)")
    max_document_depth: int = _limit(32, "nesting depth of a YAML/JSON document")
    max_document_nodes: int = _limit(5000, "values in a YAML/JSON document, counting alias expansions")
    max_document_aliases: int = _limit(64, "YAML aliases (*name) in a document")
    parse_seconds: float = _limit(2.0, "wall time to parse one document (refused beyond)")
    # -- connections (service/guard.py, `mutransfer serve`) ------------------------------------
    header_timeout_s: float = _limit(10.0, "seconds a connection may take to send a request's headers "
                                           "(closed with 408 beyond)")
    body_timeout_s: float = _limit(30.0, "seconds between two chunks of a request body (408 beyond)")
    max_connections: int = _limit(200, "open connections and requests at once (503 beyond)")

    @property
    def env_names(self) -> dict[str, str]:
        return {f.name: env_name(f.name) for f in fields(self)}


def env_name(limit: str) -> str:
    return f"MUTRANSFER_{limit.upper()}"


def describe() -> list[tuple[str, object, str]]:
    """(environment variable, default, what it limits) for every limit: the README's table."""
    return [(env_name(f.name), f.default, f.metadata["doc"]) for f in fields(Limits)]


def from_env(env: Mapping[str, str] | None = None) -> Limits:
    """Limits with every ``MUTRANSFER_<NAME>`` set in ``env`` applied (a bad value names the variable)."""
    env = os.environ if env is None else env
    values = {}
    for f in fields(Limits):
        raw = env.get(env_name(f.name))
        if not raw:
            continue
        kind = float if isinstance(f.default, float) else int
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{env_name(f.name)}: expected a number, got {raw!r}") from None
        if value <= 0:
            raise ValueError(f"{env_name(f.name)}: must be > 0, got {raw!r}")
        values[f.name] = value
    return Limits(**values)
