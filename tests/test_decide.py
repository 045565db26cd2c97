"""The decide loop (sweeps/decide.py) on a synthetic loss (fast lane): seeds only at the points that can
still be the optimum, limits that stop it with the open reasons listed, a killed round resumed
without training anything twice, local grids that extend when the optimum sits on their edge.
Real training runs of the same claims are in tests/test_decide_runs.py."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from mutransfer.report import REASONS, optimum_shift_report
from mutransfer.results import ResultsStore
from sweeps import decide
from sweeps.bookkeeping import save_spec
from sweeps.spec import SpecError, count_runs, parse_spec

GRID = [2.0**k for k in range(-8, -1)]  # 2^-8 .. 2^-2
BASE = {"name": "d", "algorithms": ["pc"], "parametrizations": ["mupc"], "widths": [8, 16], "depths": [1],
        "weight_lrs": GRID, "activity_lrs": [0.5], "seeds": 2, "dataset": {"name": "digits"}, "decide": {}}
NOISE = 0.04


def noise(seed, cid, eta):
    """A fixed N(0, NOISE²) draw per (seed, cell, point): the same run always has the same loss."""
    h = int(hashlib.sha256(f"{seed}|{cid}|{eta!r}".encode()).hexdigest()[:8], 16)
    return NOISE * float(np.random.default_rng(h).standard_normal())


def make_loss(opt, curve=0.5, sd=1.0):
    """loss = 1 + curve·(log2 η − opt[width])² + sd·seed noise: with opt at a half step (−4.5) the
    two nearest grid points tie and only seeds can tell them apart."""
    def loss(cell, eta, seed):
        return 1.0 + curve * (math.log2(eta) - opt[cell.width]) ** 2 + sd * noise(seed, f"{cell.width}", eta)
    return loss


class Fake:
    """``execute`` for run_decide: writes every unfinished planned part with the synthetic loss and
    remembers the run ids it 'trained'. ``stop_after``: raise (a kill) after that many parts."""

    def __init__(self, spec, store, sid, loss, stop_after=None):
        self.spec, self.store, self.sid, self.loss, self.trained = spec, store, sid, loss, []
        self.stop_after = stop_after

    def __call__(self, record) -> bool:
        planned = decide.all_trials(self.spec, None, record)
        done = self.store.verify_parts(self.sid, {t.part: len(t.runs) for t in planned}).done
        for t in planned:
            if t.part in done:
                continue
            if self.stop_after is not None and self.stop_after <= 0:
                raise KeyboardInterrupt("killed mid-round")
            c = t.cell.spec
            rows = [dict(run_id=r.run_id, cell_id=t.cell.cell_id, algorithm=c.algorithm,
                         parametrization=c.parametrization, width=c.width, depth=c.depth, activation=c.activation,
                         dataset="digits", weight_lr=r.weight_lr, activity_lr=r.activity_lr, seed=r.seed,
                         status="ok", min_train_loss=self.loss(c, r.weight_lr, r.seed), steps=10,
                         spec_hash=self.spec.spec_hash()) for r in t.runs]
            self.store.write_part(self.sid, t.part, pd.DataFrame(rows), None)
            self.trained += [r.run_id for r in t.runs]
            if self.stop_after is not None:
                self.stop_after -= 1
        return True


def setup(tmp_path, loss, **changes):
    spec = parse_spec({**BASE, **changes})
    store = ResultsStore(tmp_path)
    sid = spec.default_sweep_id()
    save_spec(store, sid, spec)
    return spec, store, sid, Fake(spec, store, sid, loss)


def seeds_at(store, sid):
    """(width, η) -> number of seeds run there."""
    runs = store.load_runs(sid)
    return {(int(w), float(e)): int(n) for (w, e), n in runs.groupby(["width", "weight_lr"]).seed.nunique().items()}


def test_every_reason_code_has_an_action():
    assert set(REASONS) <= set(decide.ACTIONS)


def test_seeds_only_at_candidate_points_until_it_transfers(tmp_path):
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -4.5, 16: -4.5}))
    record = decide.run_decide(spec, store, sid, fake)
    assert record.stopped == "decided", decide.summary(record)
    assert record.verdicts == [{"analysis": "pc/mupc over width (depth=1)", "outcome": "transfers"}]
    assert record.rounds and all(a.code in ("uncertain", "too_few_seeds", "uncertain+too_few_seeds")
                                 for r in record.rounds for a in r.additions)
    seeds = seeds_at(store, sid)
    # Seeds were added only at 2^-5 and 2^-4 (the tie around the optimum 2^-4.5); every other point
    # is 0.5 or more above the best, far outside its seed CI, and kept the spec's 2 seeds.
    grown = {p for p, n in seeds.items() if n > 2}
    assert grown and {e for _, e in grown} <= {2.0**-5, 2.0**-4}
    assert all(n == 2 for (w, e), n in seeds.items() if e not in (2.0**-5, 2.0**-4))
    assert max(seeds.values()) <= decide.limits(spec).max_seeds
    # Never trained twice; the report of the union is the loop's final verdict.
    assert len(fake.trained) == len(set(fake.trained)) == len(store.load_runs(sid))
    rep = optimum_shift_report(store.load_runs(sid), metric=spec.metric, **decide.design(spec))
    assert [a["verdict"] for a in rep["analyses"]] == ["transfers"]
    assert "every analysis is decided" in "\n".join(decide.summary(record))


def test_max_runs_stops_the_loop_with_the_open_reasons(tmp_path):
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -4.5, 16: -4.5}), decide={"max_runs": 3})
    record = decide.run_decide(spec, store, sid, fake)
    assert record.stopped == "max_runs" and not record.rounds
    assert "max_runs=3 leaves 3" in record.detail
    assert record.open and record.open[0]["outcome"] == "inconclusive" and "uncertain" in record.open[0]["codes"]
    text = "\n".join(decide.summary(record))
    assert "LIMIT HIT (max_runs)" in text and "open: pc/mupc over width (depth=1): inconclusive (uncertain" in text
    assert len(fake.trained) == count_runs(spec)  # the spec's own runs, nothing added


def test_a_killed_round_resumes_and_trains_nothing_twice(tmp_path):
    loss = make_loss({8: -4.5, 16: -4.5})
    spec, store, sid, fake = setup(tmp_path, loss)
    fake(None)  # the spec's own runs
    killer = Fake(spec, store, sid, loss, stop_after=1)  # round 1 has a part per cell: dies after the first
    with pytest.raises(KeyboardInterrupt):
        decide.run_decide(spec, store, sid, killer)
    saved = decide.load_record(store, sid)
    assert len(saved.rounds) == 1 and saved.stopped is None  # recorded before it trained
    resumed = Fake(spec, store, sid, loss)
    record = decide.run_decide(spec, store, sid, resumed)
    trained = fake.trained + killer.trained + resumed.trained
    assert len(trained) == len(set(trained)) == len(store.load_runs(sid))
    assert record.stopped == "decided" and record.rounds[0].additions == saved.rounds[0].additions
    # The resumed round finished the killed part's sibling first, then went on.
    first = {r.run_id for t in decide.all_trials(spec, None, saved) if "-decide-1" in t.part for r in t.runs}
    assert first and first & set(killer.trained)
    assert first - set(killer.trained) <= set(resumed.trained)


def test_local_grid_extends_on_the_neighbourhood_edge(tmp_path):
    # Base (width 8) optimum at 2^-6, width 16's at 2^-4.6: outside the radius-1 neighbourhood
    # {2^-7, 2^-6, 2^-5} around the base's, whose best point 2^-5 is then on its edge; a flat loss
    # keeps the regret within 5 %, so only the edge blocks the verdict and the neighbourhood must
    # grow (at width 16 alone) until its optimum is interior.
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -6.0, 16: -4.6}, curve=0.02, sd=0.05),
                                   grid={"larger_sizes": "local", "radius": 1}, seeds=3)
    assert count_runs(spec) == 7 * 3 + 3 * 3
    record = decide.run_decide(spec, store, sid, fake)
    codes = [a.code for r in record.rounds for a in r.additions]
    assert codes[:2] == ["local_grid", "optimum_on_edge"], decide.summary(record)
    assert all(a.cell == "pc-mupc-w16-d1" for r in record.rounds for a in r.additions if a.code == "optimum_on_edge")
    runs = store.load_runs(sid)
    w16 = sorted(runs[runs.width == 16].weight_lr.unique())
    assert w16[:4] == [2.0**-7, 2.0**-6, 2.0**-5, 2.0**-4] and 2.0**-8 not in w16  # a neighbourhood, walked up
    assert sorted(runs[runs.width == 8].weight_lr.unique()) == GRID  # the base: the whole grid, not extended
    rep = optimum_shift_report(runs, metric=spec.metric, **decide.design(spec))
    a = rep["analyses"][0]
    s16 = next(e for e in a["sizes"] if e["size"] == 16)
    assert s16["local"] and s16["eta_star"] == 2.0**-5 and not s16["edge"]
    assert any("local grid" in w and "neighbourhood" in w for w in a["warnings"])
    assert a["verdict"] == "transfers" and record.stopped == "decided"
    assert len(fake.trained) == len(set(fake.trained))


def test_a_local_grid_grows_on_the_base_grid_and_its_placement_is_not_charged(tmp_path):
    # A grid of uneven steps (1, 3, 10 per decade): the neighbourhood at width 16 grows to the base
    # grid's next value (3e-3), not to the refinement rule's 1e-2·1e-2/3e-2 = 3.33e-3.
    grid = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    loss = lambda cell, eta, seed: 1.0 + 0.3 * (math.log10(eta) - (-1.5 if cell.width == 8 else -2.6)) ** 2 \
        + noise(seed, f"{cell.width}", eta)
    spec, store, sid, fake = setup(tmp_path, loss, weight_lrs=grid, grid={"larger_sizes": "local", "radius": 1},
                                   decide={"max_runs": 6})
    record = decide.run_decide(spec, store, sid, fake)
    first = record.rounds[0]
    assert [a.code for a in first.additions] == ["local_grid"] and first.runs == 6  # 3 points × 2 seeds
    assert decide.charged(first.additions) == 0  # the spec's own runs: count_runs counts them
    ext = [a for r in record.rounds for a in r.additions if a.code == "optimum_on_edge"]
    assert ext and ext[0].points[0][0] == 3e-3, decide.summary(record)
    assert record.runs_charged == record.runs_added - first.runs <= 6
    assert len(store.load_runs(sid)) == count_runs(spec) + record.runs_charged


def test_an_unconfirmed_decision_says_why_in_the_summary():
    rec = decide.DecideRecord("s", "h", stopped="decided", detail="decided with fewer than 4 seeds at some size; "
                              "confirming it was cut by max_runs (the next round needs 6 runs and max_runs=16 leaves 4)")
    assert rec.unconfirmed and "confirming it was cut by max_runs" in decide.summary(rec)[-1]
    done = decide.DecideRecord("s", "h", stopped="decided", detail=decide.STOPS["decided"])
    assert not done.unconfirmed and decide.summary(done)[-1] == "  stopped: every analysis is decided"


def test_a_local_grid_grows_onto_the_base_grid_s_next_value(tmp_path):
    # A 1-5-10 style grid (ratios 2 and 5, like the μPC paper's η grid): the width-16 optimum (5e-3)
    # lies two grid values below the base's (5e-2), so the neighbourhood {1e-2, 5e-2, 1e-1} has its
    # best on the low edge (a flat loss keeps the regret under 5 %, so only the edge is open) and grows
    # onto the base grid's next value 5e-3 — not the refinement rule's
    # 1e-2·1e-2/5e-2 = 2e-3, which is on no grid of the sweep.
    grid = [1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 5e-1]
    spec, store, sid, fake = setup(tmp_path, make_loss({8: math.log2(5e-2), 16: math.log2(5e-3)}, curve=0.002, sd=0.01),
                                   weight_lrs=grid, grid={"larger_sizes": "local", "radius": 1}, seeds=3)
    record = decide.run_decide(spec, store, sid, fake)
    edges = [a for r in record.rounds for a in r.additions if a.code == "optimum_on_edge"]
    assert edges and [p[0] for p in edges[0].points] == [5e-3], decide.summary(record)
    w16 = sorted(store.load_runs(sid).query("width == 16").weight_lr.unique())
    assert set(w16) <= set(grid), w16


def test_local_grid_neighbourhood_and_placement():
    assert decide._neighbourhood(GRID, 2.0**-6, 1) == [2.0**-7, 2.0**-6, 2.0**-5]
    assert decide._neighbourhood(GRID, 2.0**-8, 1) == [2.0**-8, 2.0**-7, 2.0**-6]  # shifted inward at the end
    assert decide._neighbourhood([0.1, 0.5], 0.1, 1) == [0.1, 0.5]
    assert decide._neighbourhood(GRID, 2.0**-5, 2) == [2.0**k for k in range(-7, -2)]


@pytest.mark.parametrize("value,field", [({"max_runs": 0}, "decide.max_runs"),
                                         ({"max_seeds": 1}, "decide.max_seeds"),
                                         ({"max_rounds": 1.5}, "decide.max_rounds"),
                                         ({"rounds": 2}, "decide.rounds")])
def test_invalid_decide_limits_are_refused_naming_the_field(value, field):
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "decide": value})
    assert e.value.errors[0][0] == field


def test_spec_rules_of_decide_and_local_grids():
    no_decide = {k: v for k, v in BASE.items() if k != "decide"}
    with pytest.raises(SpecError, match="decide"):
        parse_spec({**no_decide, "grid": {"larger_sizes": "local"}})
    with pytest.raises(SpecError, match="refine"):
        parse_spec({**BASE, "refine": {}})
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "grid": {"larger_sizes": "near"}})
    assert e.value.errors[0][0] == "grid.larger_sizes"
    # decide: and a full grid: do not change the sweep's identity; a local grid does.
    plain = parse_spec(no_decide)
    assert parse_spec(BASE).default_sweep_id() == plain.default_sweep_id()
    assert parse_spec({**BASE, "grid": {"larger_sizes": "full"}}).default_sweep_id() == plain.default_sweep_id()
    assert parse_spec({**BASE, "grid": {"larger_sizes": "local"}}).default_sweep_id() != plain.default_sweep_id()


def test_a_changed_spec_is_refused(tmp_path):
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -4.5, 16: -4.5}))
    decide.save_record(store, decide.DecideRecord(sid, "0" * 16))
    with pytest.raises(decide.DecideError, match="spec hash"):
        decide.run_decide(spec, store, sid, fake)


def test_record_round_trips_as_strict_json(tmp_path):
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -4.5, 16: -4.5}))
    record = decide.run_decide(spec, store, sid, fake)
    text = open(decide.record_path(store, sid)).read()
    assert decide.DecideRecord.from_json(json.loads(text)) == record


def test_a_local_grid_grown_past_the_base_grid_leaves_the_base_complete(tmp_path):
    # Width 16's optimum (2^-1.6) lies above the base grid's top (2^-2): its neighbourhood walks to
    # 2^-1, a value the full-grid base never planned. The base is still complete (no `partial`), so
    # the verdict can be decided.
    spec, store, sid, fake = setup(tmp_path, make_loss({8: -3.0, 16: -1.6}, curve=0.01, sd=0.02),
                                   grid={"larger_sizes": "local", "radius": 1}, seeds=3)
    record = decide.run_decide(spec, store, sid, fake)
    runs = store.load_runs(sid)
    assert 2.0**-1 in set(runs[runs.width == 16].weight_lr) and 2.0**-1 not in set(runs[runs.width == 8].weight_lr)
    a = decide.report_of(spec, runs).analyses[0]
    assert "partial" not in [str(r.code) for r in a.reasons] and a.size_row(8).complete
    assert str(a.verdict) == "transfers" and record.stopped == "decided", decide.summary(record)
