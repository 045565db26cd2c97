"""End to end through the CLI: a small real sweep on the bundled digits, written to Parquet,
reported, rerun (skips every finished cell), and bad input refused before anything is written."""

import json
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import SMALL_SPEC

from mutransfer import results
from sweeps.cli import main

SPEC = SMALL_SPEC  # conftest's; `swept` is it trained once per session


def test_run_writes_tables_and_prints_report(swept, capsys):
    spec, root, code = swept
    assert code == 0
    (sweep_id,) = results.ResultsStore(root).sweeps()
    runs = pd.read_parquet(root / "runs")
    assert len(runs) == 2 * (2 * 2 * 2) + 2 * (2 * 2)  # pc: 2 widths × 2η × 2β × 2 seeds; bp: no β
    assert set(runs["sweep_id"].astype(str)) == {sweep_id}
    assert set(runs["status"]) <= {"ok", "diverged"}
    assert runs["run_id"].is_unique
    assert runs.loc[runs.algorithm == "bp", "activity_lr"].isna().all()
    curves = results.load(sweep_id, table="curves", root=root)
    assert set(curves["run_id"]) == set(runs["run_id"])
    assert (curves.groupby("run_id")["step"].max() == 10).all()  # 320 // 32 steps, eval at the end


def test_rerun_skips_finished_cells(swept, capsys):
    spec, root, _ = swept
    before = pd.read_parquet(root / "runs").sort_values("run_id").reset_index(drop=True)
    capsys.readouterr()
    assert main(["run", str(spec), "--results", str(root), "--executor", "local"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped") == 4 and "done" not in err.replace("done/", "")
    (sweep_id,) = results.ResultsStore(root).sweeps()
    # The end of a run says how to browse it.
    assert f"dashboards: mutransfer serve --results {root}" in err
    assert f"http://127.0.0.1:8000/sweeps/{sweep_id}/contours" in err and f"/sweeps/{sweep_id}/table" in err
    after = pd.read_parquet(root / "runs").sort_values("run_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)


def test_report_by_id_text_and_json(swept, capsys):
    _, root, _ = swept
    (sweep_id,) = results.ResultsStore(root).sweeps()
    capsys.readouterr()
    assert main(["report", sweep_id, "--results", str(root), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["sweep_id"] == sweep_id and rep["cells_missing"] == []
    axes = {(a["group"]["algorithm"], a["axis"]) for a in rep["analyses"]}
    assert axes == {("pc", "width"), ("bp", "width")}
    assert main(["report", sweep_id, "--results", str(root)]) == 0
    assert "verdict" in capsys.readouterr().out
    assert main(["report", "no-such-sweep", "--results", str(root)]) == 2
    assert "no sweep 'no-such-sweep'" in capsys.readouterr().err
    assert rep["provisional"] is None and rep["diverged"] == "inf"
    assert main(["report", sweep_id, "--results", str(root), "--json", "--diverged", "best_before"]) == 0
    assert json.loads(capsys.readouterr().out)["diverged"] == "best_before"
    assert main(["report", sweep_id, "--results", str(root), "--diverged", "nan"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"results: {root} (--results)\n")  # every command says which root it reads
    err = err.split("\n", 1)[1]
    assert err.count("\n") == 1 and "--diverged" in err and "'nan'" in err and "best_before" in err


def test_report_of_an_unfinished_sweep_is_provisional(swept, tmp_path, capsys):
    _, root, _ = swept
    (sweep_id,) = results.ResultsStore(root).sweeps()
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    part = sorted(p for p in (copy / "runs").rglob("*.parquet") if "cell-pc" in p.name)[-1]
    part.unlink()  # one cell's results not written yet
    capsys.readouterr()
    assert main(["report", sweep_id, "--results", str(copy)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("PROVISIONAL (3/4 cells finished)")
    assert "Cells not finished yet (1)" in out


def test_resume_with_a_different_spec_is_refused(swept, tmp_path, capsys):
    spec, root, _ = swept
    (sweep_id,) = results.ResultsStore(root).sweeps()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**SPEC, "widths": [8, 32]}))
    assert main(["run", str(other), "--results", str(root), "--executor", "local", "--resume", sweep_id]) == 2
    assert "differs from the spec" in capsys.readouterr().err
    assert results.ResultsStore(root).sweeps() == [sweep_id]


def test_bad_spec_is_refused_before_anything_is_written(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC, "weight_lrs": [0.1, -0.1], "widths": [0]}))
    root = tmp_path / "results"
    assert main(["run", str(bad), "--results", str(root)]) == 2  # default executor: refused before Ray starts
    err = capsys.readouterr().err
    assert "weight_lrs[1]" in err and "widths[0]" in err
    assert not root.exists()


def test_missing_dataset_says_how_to_get_it(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "dataset": {"name": "mnist", "data_dir": str(tmp_path / "none")}}))
    code = main(["run", str(spec), "--results", str(tmp_path / "r"), "--executor", "local"])
    err = capsys.readouterr().err
    assert code == 2 and "mutransfer data fetch mnist" in err


def test_step_printer_rate_limits_and_estimates_time_left():
    from sweeps.cli import step_printer

    now, lines = [0.0], []
    on_steps = step_printer(lines.append, every_s=30.0, clock=lambda: now[0])
    for t, done in [(10, 100), (20, 200), (45, 300), (50, 400), (80, 500), (200, 1000)]:
        now[0] = t
        on_steps("cell-a", done, 1000)
    # the first report only starts the clock; then at most one line per 30 s; none at the end
    assert lines == ["    cell-a: step 300/1000 (30 %), ≈ 2.0 min left",  # 35 s per 200 steps, 700 to go
                     "    cell-a: step 500/1000 (50 %), ≈ 88 s left"]  # 70 s per 400, 500 to go


def test_ray_progress_in_a_log_prints_moving_fractions_at_most_every_interval(capsys):
    from sweeps.cli import _progress_printer
    from sweeps.ray_exec import Progress

    now = [0.0]
    show = _progress_printer(tty=False, every_s=30.0, clock_s=lambda: now[0])
    p = Progress("s", trials_total=2, runs_total=2, started_at=0.0)
    for t, running in [(10, 0.1), (31, 0.2), (40, 0.3), (61, 0.3), (62, 0.5)]:
        now[0] = t
        p.running = {"cell-a": running}
        show(p)
    now[0] = 70
    p.running, p.trials_done, p.runs_done = {}, 1, 1
    show(p)  # a finished trial: always a line
    lines = capsys.readouterr().err.splitlines()
    # t = 10 the first line; 31 too soon; 40 (30 s on, moved); 61 not moved; 62 too soon; 70 a trial done
    assert [ln.split("]")[1].split("runs")[0].strip() for ln in lines] == ["5.0%", "15.0%", "50.0%"]
    assert "trials 1/2 done" in lines[-1]


def test_in_process_run_prints_step_progress(tmp_path, capsys, monkeypatch):
    from sweeps import cli

    monkeypatch.setattr(cli, "STEP_PROGRESS_EVERY_S", 0.0)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**SPEC, "algorithms": ["bp"], "widths": [8], "seeds": 1,
                                    "weight_lrs": [1e-2], "logging": {"every": 1, "eval_every": 2}}))
    assert main(["run", str(spec), "--results", str(tmp_path / "r"), "--executor", "local"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"cell-bp-\S+: step 4/10 \(40 %\), ≈ \d+ s left", err), err


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "sweeps.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "run" in out.stdout and "report" in out.stdout


def test_diagnose_prints_a_width_depth_table_and_writes_parquet(tmp_path, capsys):
    out = tmp_path / "kappa.parquet"
    assert main(["diagnose", "hessian_condition", "--set", "widths=4,8", "--set", "depths=2,3",
                 "--set", "parametrizations=sp", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kappa over depth (rows) × width (columns)" in text
    df = pd.read_parquet(out)
    assert set(df["width"]) == {4, 8} and set(df["depth"]) == {2, 3} and (df["kappa"] > 1).all()
    assert main(["diagnose", "hessian_condition", "--set", "colour=red"]) == 2
    assert "colour" in capsys.readouterr().err


def test_list_shows_id_status_runs_verdicts_and_age(swept, tmp_path, capsys):
    _, root, _ = swept
    (sweep_id,) = results.ResultsStore(root).sweeps()
    capsys.readouterr()
    assert main(["list", "--results", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ID", "NAME", "STATUS", "RUNS", "AGE", "VERDICTS"]
    row = out[1]
    assert row.startswith(sweep_id) and "clitest" in row and "24/24" in row
    assert "pc mupc width: " in row and "bp mupc width: " in row
    assert main(["list", "--results", str(root), "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["id"] == sweep_id and item["runs_done"] == item["runs_total"] == 24 and not item["provisional"]
    assert {v["verdict"] for v in item["verdicts"]} <= {"transfers", "does not transfer", "inconclusive"}
    (tmp_path / "empty").mkdir()
    assert main(["list", "--results", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip() == "no sweeps"
    # A missing root or a file is an error naming it (not "no sweeps"), exit status 2.
    assert main(["list", "--results", str(tmp_path / "missing")]) == 2
    assert "missing: no such directory" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["list", "--results", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def _subparsers(parser):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


def test_every_option_has_help_and_every_command_is_listed(capsys):
    from service.cli import build_parser

    parser = build_parser()
    commands = dict(_subparsers(parser))
    assert {"run", "list", "report", "serve", "diagnose", "data", "data fetch"} <= set(commands)
    for name, sub in commands.items():
        for action in sub._actions:
            if action.dest in ("help",) or action.__class__.__name__ == "_SubParsersAction":
                continue
            assert action.help, f"mutransfer {name}: {action.option_strings or action.dest} has no help"
        text = sub.format_help()
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)
    top = parser.format_help()
    for usage in ("mutransfer serve", "mutransfer list", "mutransfer diagnose list"):
        assert usage in top


def test_readme_ids_are_what_the_quickstart_produces():
    """The README's example ids must be the ones `make run` really creates (the id is a hash of the
    spec: changing sweeps/specs/quickstart*.yaml or the spec's canonical form changes it)."""
    from pathlib import Path

    from sweeps.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    expected = {load_spec(root / f"sweeps/specs/{n}.yaml").default_sweep_id() for n in ("quickstart", "quickstart_digits")}
    used = set(re.findall(r"quickstart(?:-digits)?-[0-9a-f]{8}", readme))
    assert used and used <= expected, (used, expected)
