"""Run a sweep in this process, cell after cell (the Ray executor distributes the same cells).

Every finished cell is written to the results store atomically; cells already complete in the
store are skipped, so rerunning or resuming a sweep never recomputes or duplicates a run.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from mutransfer.results import ResultsStore
from sweeps.plan import trials as plan_trials
from sweeps.spec import SweepSpec
from sweeps.worker import device_data, execute_trial, run_analyses

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    sweep_id: str
    cells_total: int
    cells_skipped: list[str] = field(default_factory=list)
    cells_done: list[str] = field(default_factory=list)
    cells_failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def save_spec(store: ResultsStore, sweep_id: str, spec: SweepSpec) -> None:
    """Keep the spec beside its results (specs/<id>.json) so a sweep can be reported by id."""
    fs, base = store.filesystem, store.base_path
    fs.create_dir(f"{base}/specs", recursive=True)
    with fs.open_output_stream(f"{base}/specs/{sweep_id}.json") as f:
        f.write(json.dumps(spec.canonical(), indent=2).encode())


def run_sweep(spec: SweepSpec, results_root, *, sweep_id: str | None = None,
              on_cell: Callable[[str, str, int, int], None] | None = None) -> SweepOutcome:
    """Train every unfinished trial of ``spec`` in-process and write its results.

    ``on_cell(part, status, done, total)`` is called as trials finish (status: done, skipped,
    failed). A trial that raises is recorded as failed and the sweep goes on.
    """
    t0 = time.perf_counter()
    sweep_id = sweep_id or spec.default_sweep_id()
    store = ResultsStore(results_root)
    planned = plan_trials(spec)
    out = SweepOutcome(sweep_id, len(planned))
    complete = store.completed_parts(sweep_id)
    todo = [t for t in planned if t.part not in complete]
    out.cells_skipped = [t.part for t in planned if t.part in complete]
    for part in out.cells_skipped:
        on_cell and on_cell(part, "skipped", len(out.cells_skipped), len(planned))
    if todo:  # fail fast (before writing anything) when the dataset is missing
        device_data(spec.dataset, spec.logging.test_chunk)
    save_spec(store, sweep_id, spec)
    for trial in todo:
        try:
            execute_trial(spec, trial, store, sweep_id)
            out.cells_done.append(trial.part)
            status = "done"
        except Exception as e:  # a broken trial must not lose the others' results
            log.error("trial %s failed:\n%s", trial.part, traceback.format_exc())
            out.cells_failed[trial.part] = f"{type(e).__name__}: {e}"
            status = "failed"
        finished = len(out.cells_skipped) + len(out.cells_done) + len(out.cells_failed)
        on_cell and on_cell(trial.part, status, finished, len(planned))
    try:
        for name in run_analyses(spec, store, sweep_id):
            on_cell and on_cell(f"analysis {name}", "done", len(planned), len(planned))
    except Exception as e:
        log.error("analyses failed:\n%s", traceback.format_exc())
        out.cells_failed["analyses"] = f"{type(e).__name__}: {e}"
    out.wall_s = time.perf_counter() - t0
    return out
