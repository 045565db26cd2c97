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

from mutransfer.data import load_dataset
from mutransfer.results import ResultsStore, part_name
from mutransfer.trainer import to_device, train_cell
from sweeps.plan import Cell, plan, train_options
from sweeps.spec import SweepSpec
from sweeps.tables import cell_tables

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


def run_cell(spec: SweepSpec, cell: Cell, data) -> tuple:
    """Train one cell and return its (runs, curves) tables."""
    runs = cell.runs
    result = train_cell(cell.spec, data, [r.weight_lr for r in runs], [r.activity_lr for r in runs],
                        [r.seed for r in runs], train_options(spec))
    steps_per_epoch = data.n_train // cell.spec.batch_size
    return cell_tables(spec, cell, result, steps_per_epoch)


def run_sweep(spec: SweepSpec, results_root, *, sweep_id: str | None = None,
              on_cell: Callable[[str, str, int, int], None] | None = None) -> SweepOutcome:
    """Train every unfinished cell of ``spec`` in-process and write its results.

    ``on_cell(cell_id, status, done, total)`` is called as cells finish (status: done, skipped,
    failed). A cell that raises is recorded as failed and the sweep goes on.
    """
    t0 = time.perf_counter()
    sweep_id = sweep_id or spec.default_sweep_id()
    store = ResultsStore(results_root)
    cells = plan(spec)
    out = SweepOutcome(sweep_id, len(cells))
    complete = store.completed_parts(sweep_id)
    todo = [c for c in cells if part_name(c.cell_id) not in complete]
    out.cells_skipped = [c.cell_id for c in cells if part_name(c.cell_id) in complete]
    for cid in out.cells_skipped:
        on_cell and on_cell(cid, "skipped", len(out.cells_skipped), len(cells))
    if todo:
        d = spec.dataset
        dataset = load_dataset(d.name, data_dir=d.data_dir, train_examples=d.train_examples,
                               test_examples=d.test_examples, subset_seed=d.subset_seed)
        data = to_device(dataset, spec.logging.test_chunk)
    # Only now that the data is known to be there does the sweep leave a trace in the store.
    save_spec(store, sweep_id, spec)
    for cell in todo:
        try:
            runs, curves = run_cell(spec, cell, data)
            store.write_part(sweep_id, part_name(cell.cell_id), runs, curves)
            out.cells_done.append(cell.cell_id)
            status = "done"
        except Exception as e:  # a broken cell must not lose the others' results
            log.error("cell %s failed:\n%s", cell.cell_id, traceback.format_exc())
            out.cells_failed[cell.cell_id] = f"{type(e).__name__}: {e}"
            status = "failed"
        finished = len(out.cells_skipped) + len(out.cells_done) + len(out.cells_failed)
        on_cell and on_cell(cell.cell_id, status, finished, len(cells))
    out.wall_s = time.perf_counter() - t0
    return out
