"""The decide loop on real training runs (digits, tiny widths, few steps), through ``mutransfer run``:
``--dry-run`` writes nothing and starts nothing; a seeded sweep adds seeds only at the points that
can still be the optimum and ends decided; a sweep killed mid-round resumes without training any
run twice. Slow lane (real training and a subprocess)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mutransfer.report.candidates import candidate_points
from mutransfer.results import ResultsStore
from sweeps import decide
from sweeps.cli import main
from sweeps.spec import load_spec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

SPEC = {"name": "dr", "algorithms": ["pc"], "parametrizations": ["mupc"],
        "architecture": {"kind": "residual_mlp", "activation": "tanh"}, "widths": [8, 16], "depths": [2],
        "weight_lrs": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1], "activity_lrs": [0.5], "seeds": 2,
        "dataset": {"name": "digits"}, "training": {"epochs": 1, "batch_size": 32, "max_steps": 40},
        "logging": {"every": 10}, "decide": {"max_runs": 60}}


def write(tmp_path, **changes) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({**SPEC, **changes}))
    return path


def test_dry_run_writes_nothing_and_starts_nothing(tmp_path, capsys, monkeypatch):
    import sweeps.ray_exec

    def no_ray(*a, **k):
        raise AssertionError("--dry-run connected to Ray")
    monkeypatch.setattr(sweeps.ray_exec, "connect", no_ray)  # a Ray start or attach would fail here
    ray_was_up = "ray" in sys.modules and sys.modules["ray"].is_initialized()  # an earlier test's
    results = tmp_path / "results"
    path = write(tmp_path, grid={"larger_sizes": "local", "radius": 1})
    before = set(os.listdir(tmp_path))
    assert main(["run", str(path), "--results", str(results), "--dry-run", "--decide"]) == 0
    out = capsys.readouterr().out
    spec = load_spec(path)
    assert f"sweep id: {spec.default_sweep_id()}" in out
    assert "cells: 2" in out and "runs: 16" in out  # 5 points × 2 seeds at the base, 3 × 2 at width 16
    assert "at most 76 runs in all" in out and "time: ≈" in out
    assert not results.exists() and set(os.listdir(tmp_path)) == before
    assert ray_was_up or "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_seeded_sweep_adds_seeds_only_at_candidates_and_decides(tmp_path, capsys):
    # One seed to start (no CI: too_few_seeds), and η = 30 diverges: never a candidate.
    results = tmp_path / "results"
    path = write(tmp_path, seeds=1, weight_lrs=[3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 30.0])
    assert main(["run", str(path), "--results", str(results), "--decide", "--executor", "local", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rec = report["decide"]
    # Decided (then it transfers), or stopped on a seed/run limit with the open reasons listed: on
    # 40 steps of digits the confirmation seeds can reopen a verdict two seeds had decided.
    verdicts = [a["verdict"] for a in report["analyses"]]
    if rec["stopped"] == "decided":
        assert verdicts == ["transfers"]
    else:
        assert rec["stopped"] in ("max_seeds", "max_runs") and rec["open"] and verdicts == ["inconclusive"]
        assert rec["open"][0]["codes"]
    spec = load_spec(path)
    store = ResultsStore(results)
    runs = store.load_runs(spec.default_sweep_id())
    assert runs.run_id.is_unique
    seeded = [a for r in rec["rounds"] for a in r["additions"] if a["code"] != "optimum_on_edge"]
    assert seeded, "the loop added seeds"
    for r in rec["rounds"]:
        for a in r["additions"]:
            if a["code"] == "optimum_on_edge":
                continue
            # Every point given seeds was a candidate from the runs before that round (it may have
            # been one because the base size's candidates are measured at every size).
            before = runs.loc[~runs.run_id.isin(_runs_of_rounds(spec, rec, from_round=r["number"]))]
            cands = set()
            for cid in {a["cell"], f"pc-mupc-w8-d2"}:
                cands |= {(e, b) for e, b in candidate_points(before.loc[before.cell_id == cid], metric=spec.metric)}
            assert {(p[0], p[1]) for p in a["points"]} <= cands
            # ... and not the whole grid.
            assert len(a["points"]) < len(spec.weight_lrs) * len(spec.activity_lrs)


def test_a_real_loss_ends_transfers_with_seeds_only_at_the_candidates(tmp_path, capsys):
    # μPC at widths 8 and 16 on a decade grid of η (β held at 0.5): adjacent grid points are a factor
    # 10 apart, far more than the seed-to-seed spread of 40 steps of digits, so the argmin is the same
    # at both widths. Two seeds decide "transfers"; the loop confirms it (fewer than 4 seeds) with
    # seeds at the candidate points only, and the confirmed verdict stands.
    results = tmp_path / "results"
    path = write(tmp_path, weight_lrs=[1e-3, 1e-2, 1e-1, 1.0], decide={"max_runs": 40})
    assert main(["run", str(path), "--results", str(results), "--decide", "--executor", "local", "--json"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    rec = report["decide"]
    assert rec["stopped"] == "decided", rec
    spent = [ln for ln in out.err.splitlines() if ln.startswith("decide spent: ")]
    assert len(spent) == 1 and f"{rec['runs_added']} added in {len(rec['rounds'])} round(s)" in spent[0]
    assert "stopped: every analysis is decided" in spent[0] and spent[0].endswith(": transfers")
    assert [a["verdict"] for a in report["analyses"]] == ["transfers"] and rec["open"] == []
    spec = load_spec(path)
    runs = ResultsStore(results).load_runs(spec.default_sweep_id())
    assert runs.run_id.is_unique and (runs.status == "ok").any()
    added = [a for r in rec["rounds"] for a in r["additions"]]
    assert added and {a["code"] for a in added} == {"confirm"}, added
    assert runs.groupby(["cell_id", "weight_lr"]).seed.nunique().max() >= decide.CONFIRM_SEEDS
    for r in rec["rounds"]:
        before = runs.loc[~runs.run_id.isin(_runs_of_rounds(spec, rec, from_round=r["number"]))]
        for a in r["additions"]:
            cands = set()
            for cid in {a["cell"], "pc-mupc-w8-d2"}:  # the base size's candidates are measured at every size
                cands |= set(candidate_points(before.loc[before.cell_id == cid], metric=spec.metric))
            assert {(p[0], p[1]) for p in a["points"]} <= cands
            assert len(a["points"]) < len(spec.weight_lrs)  # not the whole grid


def _runs_of_rounds(spec, rec, from_round):
    record = decide.DecideRecord.from_json(rec)
    return {r.run_id for t in decide.all_trials(spec, None, record)
            if "-decide-" in t.part and int(t.part.split("-decide-")[1].split("-")[0]) >= from_round for r in t.runs}


def test_killed_mid_round_resumes_and_trains_nothing_twice(tmp_path):
    results = tmp_path / "results"
    # One round allowed: the resumed run trains the rest of round 1 and stops on max_rounds.
    path = write(tmp_path, seeds=1, decide={"max_runs": 40, "max_rounds": 1})
    spec = load_spec(path)
    sid = spec.default_sweep_id()
    store = ResultsStore(results)
    cmd = [sys.executable, "-m", "sweeps.cli", "run", str(path), "--results", str(results), "--decide",
           "--executor", "local"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Kill it as soon as round 1 is recorded (before or while its parts train): the event is the line
    # the loop prints after saving the round.
    for line in proc.stderr:
        if line.startswith("decide round 1:"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved = decide.load_record(store, sid)
    assert saved is not None and len(saved.rounds) == 1 and saved.stopped is None
    parts_before = {p: os.stat(f).st_mtime_ns for p, f in _part_files(results, sid).items()}
    ids_before = set(store.load_runs(sid).run_id)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    after = _part_files(results, sid)
    assert all(os.stat(after[p]).st_mtime_ns == t for p, t in parts_before.items())  # none rewritten
    runs = store.load_runs(sid)
    assert runs.run_id.is_unique and ids_before < set(runs.run_id)
    record = decide.load_record(store, sid)
    assert record.rounds[0] == saved.rounds[0] and record.stopped is not None


def _part_files(results: Path, sid: str) -> dict[str, str]:
    out = {}
    for f in results.rglob("*.parquet"):
        if f.parent.name == f"sweep_id={sid}" and f.parent.parent.name == "runs":
            out[f.name] = str(f)
    return out
