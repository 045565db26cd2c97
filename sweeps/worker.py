"""One trial, start to finish: load the data (cached per process), train the trial's runs with
the grid trainer, write its part atomically. Both executors (in-process and Ray) call this."""

from __future__ import annotations

import functools
from typing import Callable

from mutransfer.data import load_dataset
from mutransfer.results import ResultsStore
from mutransfer.trainer import DeviceData, to_device, train_cell
from sweeps.plan import Trial, train_options
from sweeps.spec import DatasetSpec, SweepSpec
from sweeps.tables import trial_tables


@functools.lru_cache(maxsize=2)
def device_data(dataset: DatasetSpec, test_chunk: int) -> DeviceData:
    """The dataset on the device, once per process (a Ray worker reused across trials keeps it)."""
    d = dataset
    ds = load_dataset(d.name, data_dir=d.data_dir, train_examples=d.train_examples,
                      test_examples=d.test_examples, subset_seed=d.subset_seed)
    return to_device(ds, test_chunk)


def execute_trial(spec: SweepSpec, trial: Trial, store: ResultsStore, sweep_id: str,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Train and write one trial; returns the number of runs written."""
    data = device_data(spec.dataset, spec.logging.test_chunk)
    runs = trial.runs
    result = train_cell(trial.cell.spec, data, [r.weight_lr for r in runs], [r.activity_lr for r in runs],
                        [r.seed for r in runs], train_options(spec), progress=progress)
    runs_df, curves_df = trial_tables(spec, trial, result, data.n_train // trial.cell.spec.batch_size)
    store.write_part(sweep_id, trial.part, runs_df, curves_df)
    return len(runs)


def run_analyses(spec: SweepSpec, store: ResultsStore, sweep_id: str) -> list[str]:
    """Run the spec's diagnostics not yet in the store (``<i>-<kind>``); returns those written.
    They are small (dense Hessians up to the memory limit, short coordinate checks) and run in the
    calling process."""
    from mutransfer.diagnostics import run_analysis

    done = set(store.analyses(sweep_id)) if spec.analyses else set()
    written = []
    for i, a in enumerate(spec.analyses):
        name = f"{i}-{a.kind}"
        if name not in done:
            store.write_analysis(sweep_id, name, run_analysis(a.kind, a.settings))
            written.append(name)
    return written
