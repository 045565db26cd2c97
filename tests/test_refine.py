"""Grids that extend themselves (sweeps/refine.py): extended only where an optimum sits on an edge,
by the grid's own step, never training a run twice, one report over the union, limits said."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from mutransfer.report import optimum_shift_report
from mutransfer.results import ResultsStore
from sweeps import refine
from sweeps.bookkeeping import save_spec
from sweeps.spec import SpecError, parse_spec

BASE = {"name": "r", "parametrizations": ["mupc", "sp"], "widths": [8, 16], "depths": [1],
        "weight_lrs": [2.0**-6, 2.0**-5, 2.0**-4, 2.0**-3], "activity_lrs": [0.5, 1.0, 2.0], "seeds": 2,
        "dataset": {"name": "digits"}}
# log2 of the weight-lr optimum per (parametrization, width): μPC interior everywhere; SP's moves
# below the grid at width 16 (two and a half grid steps below its lowest value 2^-6).
OPT = {("mupc", 8): -4.2, ("mupc", 16): -4.4, ("sp", 8): -5.2, ("sp", 16): -8.4}


def loss(param, width, eta, beta):
    return 1.0 + (math.log2(eta) - OPT[param, width]) ** 2 + (0.0 if math.isnan(beta) else math.log2(beta) ** 2)


def write_synthetic(spec, trial, store, sid, trained):
    """Stands in for training one part: the synthetic loss of each run, written as a part."""
    c = trial.cell.spec
    rows = [dict(run_id=r.run_id, cell_id=trial.cell.cell_id, algorithm=c.algorithm,
                 parametrization=c.parametrization, width=c.width, depth=c.depth, activation=c.activation,
                 dataset="digits", weight_lr=r.weight_lr, activity_lr=r.activity_lr, seed=r.seed, status="ok",
                 min_train_loss=loss(c.parametrization, c.width, r.weight_lr, r.activity_lr) * (1 + 1e-4 * r.seed),
                 steps=10, spec_hash=spec.spec_hash()) for r in trial.runs]
    store.write_part(sid, trial.part, pd.DataFrame(rows), None)
    trained += [r.run_id for r in trial.runs]


class Fake:
    """``execute`` for run_refinement: writes every unfinished part with the synthetic loss, and
    remembers which run ids it 'trained'."""

    def __init__(self, spec, store, sid):
        self.spec, self.store, self.sid, self.trained = spec, store, sid, []

    def __call__(self, record) -> bool:
        planned = refine.all_trials(self.spec, record)
        done = self.store.verify_parts(self.sid, {t.part: len(t.runs) for t in planned}).done
        for t in planned:
            if t.part not in done:
                write_synthetic(self.spec, t, self.store, self.sid, self.trained)
        return True


def setup(tmp_path, **changes):
    spec = parse_spec({**BASE, **changes})
    store = ResultsStore(tmp_path)
    sid = spec.default_sweep_id()
    save_spec(store, sid, spec)
    fake = Fake(spec, store, sid)
    fake(None)  # the spec's own grid
    return spec, store, sid, fake


def sp_axis(store, sid, width):
    runs = store.load_runs(sid)
    return sorted(runs[(runs.parametrization == "sp") & (runs.width == width)].weight_lr.unique())


def test_extends_only_edge_axes_by_the_grid_step_until_interior(tmp_path):
    spec, store, sid, fake = setup(tmp_path)
    n_base = len(fake.trained)
    record = refine.run_refinement(spec, store, sid, fake)
    # SP's width-16 optimum sat below the grid: its weight-lr axis grew 2^-7, 2^-8, 2^-9 (the grid's
    # own factor 2), at both SP widths so the group's grid stays a rectangle; then 2^-8 was interior.
    assert record.stopped == "interior" and len(record.rounds) == 3
    assert [e.new for r in record.rounds for e in r.extensions] == [2.0**-7, 2.0**-8, 2.0**-9]
    assert all(e.lr == "weight_lr" and e.side == "low" and e.sizes == [16] for r in record.rounds for e in r.extensions)
    assert sp_axis(store, sid, 8) == sp_axis(store, sid, 16) == [2.0**k for k in range(-9, -2)]
    runs = store.load_runs(sid)
    # μPC (interior) and the activity axis (interior) were not touched.
    assert sorted(runs[runs.parametrization == "mupc"].weight_lr.unique()) == BASE["weight_lrs"]
    assert sorted(runs.activity_lr.unique()) == BASE["activity_lrs"]
    # No run trained twice; each round added (new η) × 3 β × 2 seeds at each of the 2 SP widths.
    assert len(fake.trained) == len(set(fake.trained)) == len(runs) == n_base + 3 * 3 * 2 * 2
    assert [r.runs for r in record.rounds] == [12, 12, 12]
    # One report over the union: SP's width-16 optimum is now interior at 2^-8, no edge left.
    rep = optimum_shift_report(runs)
    sp = next(a for a in rep["analyses"] if a["group"]["parametrization"] == "sp")
    s16 = next(e for e in sp["sizes"] if e["size"] == 16)
    assert s16["eta_star"] == 2.0**-8 and not any(e["edge"] for a in rep["analyses"] for e in a["sizes"])
    # The record is on disk; running again trains nothing and adds no round.
    saved = json.loads(open(refine.record_path(store, sid)).read())
    assert saved["stopped"] == "interior" and len(saved["rounds"]) == 3
    again = refine.run_refinement(spec, store, sid, fake)
    assert len(again.rounds) == 3 and len(fake.trained) == len(runs)
    assert "every optimum is interior" in "\n".join(refine.summary(again))


def test_limits_stop_refinement_and_say_so(tmp_path):
    spec, store, sid, fake = setup(tmp_path, refine={"max_rounds": 1})
    record = refine.run_refinement(spec, store, sid, fake)
    assert len(record.rounds) == 1 and record.stopped == "max_rounds"
    assert "weight_lr low edge" in record.detail and "width=16" in record.detail
    assert "LIMIT HIT (max_rounds)" in "\n".join(refine.summary(record))
    # Raising the limit resumes from the recorded round (nothing retrained).
    n = len(fake.trained)
    spec2 = parse_spec({**BASE, "refine": {"max_runs": 30}})
    assert spec2.default_sweep_id() == sid  # refine: is not part of the sweep's identity
    record = refine.run_refinement(spec2, store, sid, fake)
    assert len(record.rounds) == 2 and record.stopped == "max_runs"  # a third round: 36 runs > 30
    assert "needs 12 runs and max_runs=30 leaves 6" in record.detail and len(fake.trained) == n + 12


def test_changed_spec_is_refused(tmp_path):
    spec, store, sid, fake = setup(tmp_path)
    other = parse_spec({**BASE, "seeds": 3})
    with pytest.raises(refine.RefineError, match="different spec"):
        refine.run_refinement(other, store, sid, fake)


@pytest.mark.parametrize("value,field", [({"max_rounds": 0}, "refine.max_rounds"),
                                         ({"max_runs": -1}, "refine.max_runs"),
                                         ({"max_rounds": 1.5}, "refine.max_rounds"),
                                         ({"max_runs": "9"}, "refine.max_runs"),
                                         ({"rounds": 2}, "refine.rounds")])
def test_invalid_limits_are_refused_naming_the_field(value, field):
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "refine": value})
    assert [f for f, _ in e.value.errors] == [field]


def test_cli_refine_trains_the_extension_once_and_reports_the_union(tmp_path, capsys, monkeypatch):
    """``mutransfer run SPEC --refine`` in-process, with training replaced by the synthetic loss
    (the trials are the executor's usual ones): SP's edge at width 16 is extended once
    (max_rounds 1, limit said), the report covers the union, a rerun trains nothing."""
    from sweeps import local
    from sweeps.cli import main

    trained = []
    monkeypatch.setattr(local, "execute_trial", lambda spec, t, store, sid, progress=None: write_synthetic(spec, t, store, sid, trained))
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**BASE, "parametrizations": ["sp"], "seeds": 1}))
    results = tmp_path / "res"
    assert main(["run", str(path), "--results", str(results), "--executor", "local", "--refine"]) == 0
    out = capsys.readouterr()
    assert "refine round 1: +6 runs" in out.err and "refine round 4" not in out.err
    assert "Refinement: 3 round(s), 18 runs added" in out.out and "every optimum is interior" in out.out
    sid = parse_spec({**BASE, "parametrizations": ["sp"], "seeds": 1}).default_sweep_id()
    runs = ResultsStore(results).load_runs(sid)
    assert runs.run_id.is_unique and len(runs) == len(trained) == 2 * 7 * 3
    assert "Cells not finished" not in out.out
    # Again, with the refine: field in the spec (the same sweep): nothing is trained.
    path.write_text(json.dumps({**BASE, "parametrizations": ["sp"], "seeds": 1, "refine": {"max_rounds": 5}}))
    assert main(["run", str(path), "--results", str(results), "--executor", "local"]) == 0
    assert len(trained) == 42 and "refine round" not in capsys.readouterr().err


def test_rounds_rebuild_the_same_trials_from_the_saved_record(tmp_path):
    """A relaunched driver rebuilds the refinement's parts from the JSON record: same parts, same
    run ids (also for bp, whose activity lr is NaN)."""
    for changes in ({}, {"algorithms": ["bp"], "activity_lrs": None, "parametrizations": ["sp"]}):
        spec, store, sid, fake = setup(tmp_path / str(len(changes)), **changes)
        record = refine.run_refinement(spec, store, sid, fake)
        assert record.rounds
        again = refine.RefineRecord.from_json(json.loads(json.dumps(record.to_json(), allow_nan=False)))
        a, b = refine.refine_trials(spec, record), refine.refine_trials(spec, again)
        assert [(t.part, [r.run_id for r in t.runs]) for t in a] == [(t.part, [r.run_id for r in t.runs]) for t in b]


def test_http_takes_the_refine_field_and_the_driver_refines(tmp_path):
    """Over HTTP the field is part of the spec (same sweep id as without it; bad limits are 422
    naming the field); the service's driver runs the rounds after the grid (training faked)."""
    from types import SimpleNamespace

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import from_env
    from sweeps import driver
    from sweeps.recovery import open_registry

    settings = from_env({"MUTRANSFER_RESULTS": str(tmp_path), "MUTRANSFER_DRIVERS": "none"})
    # A loopback Host: token-less writes are taken only from this server's own loopback names.
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as c:
        r = c.post("/sweeps", json={**BASE, "refine": {"max_rounds": 0}})
        assert r.status_code == 422 and [e["field"] for e in r.json()["detail"]] == ["refine.max_rounds"]
        r = c.post("/sweeps", json={**BASE, "training": {"precision": "float16"}})
        assert r.status_code == 422 and [e["field"] for e in r.json()["detail"]] == ["training.precision"]
        r = c.post("/sweeps", json={**BASE, "refine": {"max_rounds": 2}})
        assert r.status_code == 202
        sid = r.json()["id"]
        assert sid == parse_spec(BASE).default_sweep_id()
    spec = parse_spec({**BASE, "refine": {"max_rounds": 2}})
    store = ResultsStore(tmp_path)
    registry = open_registry(settings.registry, store)
    fake = Fake(spec, store, sid)
    fake(None)
    driver._refine(spec, store, sid, registry, lambda rec: SimpleNamespace(cells_failed={} if fake(rec) else {"x": 1}))
    assert len(refine.load_record(store, sid).rounds) == 2
    assert "LIMIT HIT (max_rounds)" in registry.sweep(sid)["note"]
    with TestClient(create_app(settings)) as c:  # the report route carries the rounds
        rep = c.get(f"/sweeps/{sid}/report", params={"format": "json"}).json()
        assert len(rep["refinement"]["rounds"]) == 2 and rep["refinement"]["stopped"] == "max_rounds"
