"""Run a sweep in this process, cell after cell (the Ray executor distributes the same cells).

Every finished cell is written to the results store atomically; cells already complete in the
store (verified: readable, expected row count) are skipped, so rerunning or resuming a sweep never
recomputes or duplicates a run, and a corrupt part is quarantined and recomputed.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from mutransfer.results import ResultsStore
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


def load_saved_spec(store: ResultsStore, sweep_id: str) -> SweepSpec | None:
    """The spec saved beside a sweep's results (None when missing or unreadable)."""
    from sweeps.spec import parse_spec

    try:
        with store.filesystem.open_input_stream(f"{store.base_path}/specs/{sweep_id}.json") as f:
            return parse_spec(json.loads(f.read().decode()))
    except (OSError, ValueError):
        return None


def saved_spec_ids(store: ResultsStore) -> list[str]:
    """Ids of the sweeps whose spec is saved under ``specs/``."""
    from pyarrow import fs as pafs

    try:
        infos = store.filesystem.get_file_info(pafs.FileSelector(f"{store.base_path}/specs", allow_not_found=True))
    except OSError:
        return []
    return sorted(i.base_name[:-5] for i in infos if i.base_name.endswith(".json") and not i.base_name.startswith("."))


def check_parts(store: ResultsStore, sweep_id: str, planned) -> tuple[frozenset, dict[str, str]]:
    """Parts of ``planned`` verified done, and a note per bad part, which is quarantined here so the
    sweep recomputes it (``ResultsStore.verify_parts``/``quarantine``)."""
    check = store.verify_parts(sweep_id, {t.part: len(t.runs) for t in planned})
    notes = {}
    for part, why in check.bad.items():
        where = store.quarantine(sweep_id, part, why)
        log.warning("sweep %s: part %s is bad (%s); moved to %s and recomputed", sweep_id, part, why, where)
        notes[part] = f"recomputed: the stored part was bad ({why}); it was moved to {where}"
    return check.done, notes


def verified_parts(store: ResultsStore, sweep_id: str, planned, registry=None) -> frozenset:
    """:func:`check_parts`, recording each bad part's note on its cell in ``registry``."""
    done, notes = check_parts(store, sweep_id, planned)
    if registry is not None and registry.sweep(sweep_id) is not None:
        for part, note in notes.items():
            registry.set_trial(sweep_id, part, "queued", progress=0.0, note=note)
    return done


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
    from sweeps.refine import all_trials

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
