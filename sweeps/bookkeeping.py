"""A sweep's bookkeeping in its results store, shared by every executor (in-process, Ray, the
service): the spec saved beside its results, the executor's outcome record, and which planned parts
are verified done (a bad part is quarantined so the sweep recomputes it).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pyarrow import fs as pafs

from mutransfer.results import ResultsStore
from sweeps.spec import SweepSpec, parse_spec

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
    try:
        with store.filesystem.open_input_stream(f"{store.base_path}/specs/{sweep_id}.json") as f:
            return parse_spec(json.loads(f.read().decode()))
    except (OSError, ValueError):
        return None


def saved_spec_ids(store: ResultsStore) -> list[str]:
    """Ids of the sweeps whose spec is saved under ``specs/``."""
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
