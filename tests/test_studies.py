"""The generated science summary (mutransfer/studies): each study's page and the index come from the
results on disk — real sweeps trained and written to Parquet here — with the report's verdict
verbatim, the missing studies saying so, and the claim-1 arm `mupc_adam` resolving as documented."""

import math
from pathlib import Path

import pytest
import yaml

from mutransfer.parametrization import resolve
from mutransfer.report import build_report
from mutransfer.results import ResultsStore
from mutransfer.studies import STUDIES, Study, generate
from mutransfer.studies.__main__ import main
from mutransfer.studies.pages import REPO
from sweeps import decide
from sweeps.cli import main as cli_main
from sweeps.local import run_sweep
from sweeps.spec import parse_spec

WIDTH = {"name": "study-width", "parametrizations": ["mupc"], "widths": [8, 16], "depths": [2],
         "weight_lrs": [1e-2, 1e-1], "activity_lrs": [0.5, 1.0], "seeds": 1,
         "dataset": {"name": "digits", "train_examples": 320}, "training": {"epochs": 1, "batch_size": 32},
         "metric": "min_train_loss"}
# A ReLU residual net whose β = 30 is past GD inference's stability cliff (tests/test_inference_divergence.py)
DEEP = {"name": "study-deep", "parametrizations": ["mupc"], "widths": [16], "depths": [8],
        "architecture": {"kind": "residual_mlp", "activation": "relu"},
        "weight_lrs": [1e-2], "activity_lrs": [10.0, 30.0], "seeds": 1,
        "dataset": {"name": "digits", "train_examples": 320}, "training": {"epochs": 1, "batch_size": 32},
        "logging": {"every": 1, "eval_every": 5}}
# The decide loop with a local grid at the larger width: its rounds go on the page.
LOCAL = {**WIDTH, "name": "study-local", "weight_lrs": [3e-3, 1e-2, 3e-2, 1e-1, 3e-1], "activity_lrs": [0.5],
         "seeds": 2, "training": {"epochs": 1, "batch_size": 32, "max_steps": 20},
         "grid": {"larger_sizes": "local", "radius": 1}, "decide": {"max_runs": 12, "max_rounds": 2}}


def study(key, analysis, specs, **kw):
    return Study(key=key, row=0, title=f"test {key}", paper="test", claim="test claim", specs=specs,
                 analysis=analysis, differences=(("width", "512", "8, 16"), ("data", "MNIST", "same")), **kw)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    for spec in (WIDTH, DEEP):
        (root / f"{spec['name']}.yaml").write_text(yaml.safe_dump(spec))
        assert not run_sweep(parse_spec(spec), root / "results").cells_failed
    (root / "study-local.yaml").write_text(yaml.safe_dump(LOCAL))
    assert cli_main(["run", str(root / "study-local.yaml"), "--results", str(root / "results"), "--decide",
                     "--executor", "local"]) == 0
    return root


def test_pages_and_index_come_from_the_runs_on_disk(results, tmp_path):
    studies = [study("claim-w", "width_transfer", (("width", "study-width.yaml"),)),
               study("claim-d", "depth128_training", (("deep", "study-deep.yaml"),)),
               study("claim-m", "width_transfer", (("missing", "study-width-missing.yaml"),))]
    (results / "study-width-missing.yaml").write_text(yaml.safe_dump({**WIDTH, "name": "never-run"}))
    rows = generate(results / "results", tmp_path, studies, repo=results)
    status = {s.key: (st, v) for s, st, v in rows}

    runs = ResultsStore(results / "results").load_runs()
    runs = runs[runs["sweep_id"].str.startswith("study-width-")]
    a = build_report(runs, metric="min_train_loss", n_bootstrap=200, rng_seed=0).analyses[0]
    verbatim = f"width — mupc: {a.verdict} — {a.verdict_text}"
    assert status["claim-w"] == ("not run at the paper's setting", verbatim)
    index = (tmp_path / "index.md").read_text()
    assert verbatim.replace("|", "\\|") in index
    assert status["claim-m"] == ("runs not on disk", "")
    assert "| runs not on disk | – |" in index

    deep = (tmp_path / "claim-d.md").read_text()
    assert "diverged (inference) from step 0" in status["claim-d"][1]
    assert "η=1e-2 β=1e1:" in status["claim-d"][1] and "no divergence flagged" in status["claim-d"][1]
    assert "| paper | here |" in deep and "| width | 512 | 8, 16 |" in deep
    assert "Energy after inference / before" in deep
    figures = ["claim-d-deep-accuracy.png", "claim-w-width-contours.png", "claim-w-width-optimum.png"]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "not drawn: install the `docs` extra" in deep
    else:
        for name in figures:
            png = tmp_path / "figures" / name
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_a_decided_sweep_s_page_shows_its_rounds_local_sizes_and_divergence_flags(results, tmp_path):
    rows = generate(results / "results", tmp_path, [study("claim-l", "width_transfer", (("local", "study-local.yaml"),))],
                    repo=results, figures=False)
    store = ResultsStore(results / "results")
    sid = parse_spec(LOCAL).default_sweep_id()
    record = decide.load_record(store, sid)
    assert record is not None and record.rounds and record.rounds[0].additions[0].code == "local_grid"
    page = (tmp_path / "claim-l.md").read_text()
    rounds = [ln for ln in decide.summary(record) if ln.startswith(("  round ", "    "))]
    assert rounds
    for line in rounds:  # the rounds and additions, as `mutransfer report` prints them
        assert line in page, line
    assert f"Decide ({sid}): {len(record.rounds)} round(s), {record.runs_added} runs added" in page
    assert f"  stopped: {record.stopped}" in page
    # the width-16 cell ran a local neighbourhood: the report says so, and the verdict is that report's
    runs = store.load_runs(sid)
    a = build_report(runs, metric="min_train_loss", n_bootstrap=200, rng_seed=0, expected_seeds=2,
                     local_cells=[(16, 2)]).analyses[0]
    assert rows[0][2] == f"local — mupc: {a.verdict} — {a.verdict_text}"
    assert "(local)" in page
    flagged = int((runs["status"] == "diverged").sum())
    assert f"Divergence flags: {len(runs)} runs, " in page
    w8 = runs[runs["width"] == 8]
    assert f"width 8: {len(w8)} runs × {int(w8['steps'].max())} steps, {w8['wall_s'].sum() / 60:.1f} min" in page
    assert ("none flagged diverged" in page) == (flagged == 0)


def test_every_study_names_real_specs_and_the_command_runs_on_an_empty_root(tmp_path, capsys):
    assert len({s.key for s in STUDIES}) == len(STUDIES)
    for s in STUDIES:
        for _, spec in s.specs:
            assert yaml.safe_load((REPO / spec).read_text())["name"], spec
        assert s.differences and (s.specs or s.evidence_elsewhere)
    assert main(["--results", str(tmp_path / "none"), "--out", str(tmp_path / "out"), "--no-figures"]) == 0
    text = capsys.readouterr().out
    assert "claim-3: runs not on disk" in text and "claim-7: not a sweep" in text
    assert (tmp_path / "out" / "index.md").read_text().count("](claim-") == len(STUDIES)
    assert main(["--results", str(tmp_path), "--only", "claim-9"]) == 2
    assert "unknown study ['claim-9']" in capsys.readouterr().err


def test_mupc_adam_is_mupc_with_the_hidden_adam_lr_over_sqrt_width():
    def r(name, width):
        return resolve(name, input_dim=784, width=width, hidden_layers=8, output_dim=10, residual=True,
                       base_width=64)
    assert r("mupc_adam", 64) == r("mupc", 64)  # identical at the base width
    wide, plain = r("mupc_adam", 256), r("mupc", 256)
    assert [p.multiplier for p in wide] == [p.multiplier for p in plain]
    assert [p.lr_mult for p in wide] == [1.0] + [pytest.approx(math.sqrt(64 / 256))] * 7 + [1.0]


def test_the_128_layer_page_reads_accuracy_around_a_flag_and_energy_medians_with_their_max():
    import pandas as pd

    from mutransfer.studies.analyses import _around_flag, _energy_table

    acc = pd.DataFrame({"step": [0, 50, 100, 150], "test_acc": [0.1, 0.7, 0.43, 0.12]})
    assert _around_flag(acc, 120) == "43.0 % (step 100) → 12.0 % (step 150)"
    assert _around_flag(acc, 100) == "43.0 % (step 100) → 12.0 % (step 150)"  # the flag's own step is before
    assert _around_flag(acc, -1) == "" and _around_flag(acc, 150) == ""  # no flag; nothing evaluated after
    # One step's spike (×212) sets the window's max, not its median: the table shows both.
    curves = pd.DataFrame({"run_id": ["r"] * 4, "step": [0, 5, 250, 255],
                           "energy_start": [1.0, 1.0, 0.5, 0.5], "energy_end": [0.8, 0.9, 106.0, 0.5]})
    table = "\n".join(_energy_table(curves, {"r": "η=1e-1 β=1e1"}))
    assert "| 0 | 0.85 (max 0.9) |" in table and "| 250 | 106 (max 212) |" in table
