"""Rebuilding the sweep registry from what is on disk: the results store and the specs saved beside
it (``specs/<id>.json``, written when a sweep is accepted). Called by :class:`~sweeps.registry.Registry`
after it moved a corrupt file aside, so status, lists and pages come back without a restart and
nothing is lost: every finished cell is in the store, and a sweep that was not finished can be
resubmitted to finish it.
"""

from __future__ import annotations

import logging
import time

from mutransfer.results import ResultsStore
from sweeps import locks
from sweeps.bookkeeping import load_saved_spec, saved_spec_ids
from sweeps.plan import trials as plan_trials
from sweeps.registry import Registry

log = logging.getLogger(__name__)


def _marker(store: ResultsStore, sweep_id: str) -> str:
    return f"{store.base_path}/specs/{sweep_id}.cancelled"


def mark_cancelled(store: ResultsStore, sweep_id: str) -> None:
    """Record beside the saved spec that the sweep was cancelled (``specs/<id>.cancelled``), so a
    registry rebuilt from disk says ``cancelled``, not ``failed``. A later submission saves the spec
    again, which makes the marker older than the spec, i.e. void."""
    with store.filesystem.open_output_stream(_marker(store, sweep_id)) as f:
        f.write(f"{time.time():.3f}\n".encode())


def cancel_marked(store: ResultsStore, sweep_id: str) -> bool:
    """Whether the sweep's last submission was cancelled (its marker is newer than its saved spec)."""
    from pyarrow import fs as pafs

    try:
        mark, spec = store.filesystem.get_file_info([_marker(store, sweep_id),
                                                     f"{store.base_path}/specs/{sweep_id}.json"])
    except OSError:
        return False
    return (mark.type == pafs.FileType.File and spec.type == pafs.FileType.File
            and mark.mtime is not None and spec.mtime is not None and mark.mtime >= spec.mtime)


def rebuild(registry: Registry, store: ResultsStore) -> list[str]:
    """Register every sweep with a saved spec; returns their ids. Status from the verified store:
    finished when every part is done; running when its driver still holds the sweep's lock (it goes
    on and its heartbeats resume); cancelled when it was cancelled (:func:`mark_cancelled`);
    otherwise failed, saying how to finish it."""
    ids = []
    aside = registry.recovered[-1] if registry.recovered else "(unknown)"
    for sid in saved_spec_ids(store):
        spec = load_saved_spec(store, sid)
        if spec is None:
            continue
        planned = plan_trials(spec)
        done = store.verify_parts(sid, {t.part: len(t.runs) for t in planned}).done
        registry.register(sid, spec.name, spec.canonical(), spec.spec_hash(),
                          [(t.part, t.cell.cell_id, len(t.runs)) for t in planned], owner="service")
        for t in planned:
            registry.set_trial(sid, t.part, "finished" if t.part in done else "queued",
                               progress=1.0 if t.part in done else 0.0)
        n_done = sum(t.part in done for t in planned)
        note = f"registry rebuilt from the results store (the corrupt file was moved to {aside})"
        if n_done == len(planned):
            registry.set_sweep(sid, "finished", note=note)
        elif locks.held(locks.lock_path(registry.path, sid)):
            registry.set_sweep(sid, "running", note=note)
        elif cancel_marked(store, sid):
            registry.set_sweep(sid, "cancelled", note=note)
            for t in planned:
                if t.part not in done:
                    registry.set_trial(sid, t.part, "cancelled")
        else:
            registry.set_sweep(sid, "failed", note=note, error=(
                f"{n_done} of {len(planned)} cells were finished when the registry was rebuilt; resubmit the "
                "same spec to finish the sweep (finished cells are kept)"))
        ids.append(sid)
    log.warning("registry rebuilt from %s: %d sweeps", store.root, len(ids))
    return ids


def rebuilder(store: ResultsStore):
    """The ``rebuild`` callback for :class:`Registry` bound to ``store``."""
    return lambda registry: rebuild(registry, store)


def open_registry(path, store: ResultsStore) -> Registry:
    """A registry that rebuilds itself from ``store`` if its file turns out to be corrupt."""
    return Registry(path, rebuild=rebuilder(store))
