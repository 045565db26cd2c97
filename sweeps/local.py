"""Run a sweep in this process, cell after cell (the Ray executor distributes the same cells).

Every finished cell is written to the results store atomically; cells already complete in the
store (verified: readable, expected row count) are skipped, so rerunning or resuming a sweep never
recomputes or duplicates a run, and a corrupt part is quarantined and recomputed.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Callable

from mutransfer.results import ResultsStore
from sweeps.bookkeeping import SweepOutcome, check_parts, save_spec
from sweeps.decide import all_trials
from sweeps.spec import SweepSpec
from sweeps.worker import device_data, execute_trial, run_analyses

log = logging.getLogger(__name__)


def run_sweep(spec: SweepSpec, results_root, *, sweep_id: str | None = None,
              on_cell: Callable[[str, str, int, int], None] | None = None,
              refine_record=None,
              on_steps: Callable[[str, int, int], None] | None = None,
              decide_record=None) -> SweepOutcome:
    """Train every unfinished trial of ``spec`` (and of ``refine_record``'s rounds,
    sweeps/refine.py, and ``decide_record``'s, sweeps/decide.py) in-process and write its results.

    ``on_cell(part, status, done, total)`` is called as trials finish (status: done, skipped,
    failed); ``on_steps(part, done, total)`` within a trial, after every block of training steps
    (the trainer's chunk-steps). A trial that raises is recorded as failed and the sweep goes on.
    """
    t0 = time.perf_counter()
    sweep_id = sweep_id or spec.default_sweep_id()
    store = ResultsStore(results_root)
    planned = all_trials(spec, refine_record, decide_record)
    out = SweepOutcome(sweep_id, len(planned))
    complete, _ = check_parts(store, sweep_id, planned)
    todo = [t for t in planned if t.part not in complete]
    out.cells_skipped = [t.part for t in planned if t.part in complete]
    for part in out.cells_skipped:
        on_cell and on_cell(part, "skipped", len(out.cells_skipped), len(planned))
    if todo:  # fail fast (before writing anything) when the dataset is missing
        device_data(spec.dataset, spec.logging.test_chunk)
    save_spec(store, sweep_id, spec)
    for trial in todo:
        try:
            steps = on_steps and (lambda done, total, part=trial.part: on_steps(part, done, total))
            execute_trial(spec, trial, store, sweep_id, progress=steps)
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
