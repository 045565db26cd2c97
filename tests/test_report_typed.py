"""The typed report (mutransfer.report.model): real reports round-trip through their JSON unchanged
and validate against the generated JSON Schema; the committed schema.json is what the classes
generate; bad JSON is refused naming the field."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from mutransfer.report import (Analysis, Reason, ReasonCode, Report, SizeRow, Verdict, build_report, fmt_lr, format_report,
                               optimum_shift_report)
from mutransfer.report.model import REASON_FIELDS
from mutransfer.report.schema import SCHEMA_PATH, report_schema, schema_text
from test_report import make_runs
from test_verdict import bowl, table

SCHEMA = report_schema()


def _tables():
    """Synthetic tables that reach every branch of the report: 2-D and bp (1-D), one seed, diverged
    runs, an optimum on the grid edge, missing sizes, budget checkpoints, an empty table."""
    out = {
        "offgrid": make_runs({(32, 4): (-4.3, -2.6), (64, 4): (-5.7, -3.2), (128, 4): (-3.0, -1.0)}),
        "bp_one_seed": make_runs({(32, 4): (-5, None), (64, 4): (-5, None)}, seeds=1),
        "edge": make_runs({(32, 4): (-9, 0), (64, 4): (-1, -6)}),
    }
    t = make_runs({(32, 4): (-5, -3), (64, 4): (-5, -3), (64, 8): (-5, -3)}, seeds=2)
    t.loc[t.index[:20], "status"] = "diverged"
    t.loc[(t.width == 64) & (t.depth == 8), "status"] = "failed"
    out["diverged"] = t
    b = table(bowl(lambda w: -5), noise=0.0)
    b["min_train_loss_25pct"] = b["min_train_loss"] + 1.0
    b["min_train_loss_50pct"] = b["min_train_loss"] + 0.5
    out["budget"] = b
    return out


def _reports():
    for name, t in _tables().items():
        metrics = ["min_train_loss"] + (["best_test_acc"] if "best_test_acc" in t else [])
        for m in metrics:
            yield f"{name}-{m}", build_report(t, metric=m, n_bootstrap=20,
                                              expected_sizes={"width": [32, 64, 128, 256]}, cells_total=40)
    yield "complete", build_report(_tables()["budget"], n_bootstrap=20)  # every size, every point: transfers
    yield "empty", build_report(make_runs({(8, 2): (-5, -3)}).iloc[:0], cells_total=3)


REPORTS = dict(_reports())


def _round_trip(report: Report) -> None:
    wire = report.to_json()
    text = json.dumps(wire, allow_nan=False)  # the wire never carries NaN/inf literals
    jsonschema.validate(wire, SCHEMA)
    back = Report.from_json(json.loads(text))
    assert back == report
    assert back.to_json() == wire
    assert json.dumps(back.to_json(), allow_nan=False) == text  # same keys, same order, same numbers


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_synthetic_reports_round_trip_and_match_the_schema(name):
    report = REPORTS[name]
    _round_trip(report)
    # the wire function is the typed report's JSON
    assert isinstance(report, Report)
    for a in report.analyses:
        assert isinstance(a, Analysis) and isinstance(a.verdict, Verdict)
        assert all(isinstance(s, SizeRow) for s in a.sizes)
        for r in a.reasons:
            assert isinstance(r.code, ReasonCode)
            assert set(r.to_json()) == {"code", *REASON_FIELDS[r.code]}


def test_the_branches_are_covered():
    """The synthetic set reaches the reasons and fields the schema describes (so the round trip
    above exercises them), not only the easy case."""
    analyses = [a for r in REPORTS.values() for a in r.analyses]
    codes = {r.code for a in analyses for r in a.reasons}
    assert {ReasonCode.REGRET, ReasonCode.DRIFT, ReasonCode.OPTIMUM_ON_EDGE, ReasonCode.PARTIAL,
            ReasonCode.TOO_FEW_SEEDS} <= codes, codes
    assert {a.verdict for a in analyses} == set(Verdict)
    assert any(a.by_budget for a in analyses) and any(a.by_budget is None and a.by_budget_note for a in analyses)
    assert any(a.beta_grid is None for a in analyses) and any(a.is_2d for a in analyses)
    assert any(s.regret == math.inf for a in analyses for s in a.sizes)  # encoded "inf" on the wire
    assert any(m.kind == "size" for a in analyses for m in a.missing)
    assert any(r.provisional is not None for r in REPORTS.values())


def test_optimum_shift_report_is_the_typed_reports_json():
    t = _tables()["offgrid"]
    assert optimum_shift_report(t, n_bootstrap=10) == build_report(t, n_bootstrap=10).to_json()
    assert format_report(build_report(t, n_bootstrap=10)) == format_report(optimum_shift_report(t, n_bootstrap=10))


def test_committed_schema_is_generated_from_the_classes():
    assert SCHEMA_PATH.read_text() == schema_text(), "run: python -m mutransfer.report.schema"


def test_bad_json_is_refused_naming_the_field():
    wire = REPORTS["offgrid-min_train_loss"].to_json()
    bad = json.loads(json.dumps(wire))
    bad["analyses"][0]["sizes"][1]["regret"] = "lots"
    with pytest.raises(ValueError, match=r"Report.analyses\[0\].sizes\[1\].regret: 'lots' is not a number"):
        Report.from_json(bad)
    bad = json.loads(json.dumps(wire))
    bad["analyses"][0]["verdict"] = "maybe"
    with pytest.raises(ValueError, match=r"analyses\[0\].verdict: 'maybe' is not one of"):
        Report.from_json(bad)
    bad = json.loads(json.dumps(wire))
    bad["analyses"][0]["surprise"] = 1
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['surprise'\]"):
        Report.from_json(bad)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    bad = json.loads(json.dumps(wire))
    del bad["analyses"][0]["reasons"][0]["detail"]
    with pytest.raises(ValueError, match="missing field 'detail'"):
        Report.from_json(bad)


def test_reason_kinds_carry_their_own_fields():
    r = Reason(code=ReasonCode.TOO_FEW_SEEDS, detail="1 seed at width=32", sizes=(32,), n_seeds=1)
    assert r.to_json() == {"code": "too_few_seeds", "sizes": [32], "n_seeds": 1, "detail": "1 seed at width=32"}
    assert r.effect == "blocks"
    with pytest.raises(ValueError, match="do not belong to code 'too_few_seeds'"):
        Reason.from_json({**r.to_json(), "size": 32})


# --------------------------------------------------------------------------- a real sweep

def test_a_real_sweeps_report_round_trips(swept):
    """Digits runs trained in-process (conftest's `swept`: `mutransfer run --executor local`), read back
    from Parquet, reported."""
    from mutransfer.results import ResultsStore

    _, root, code = swept
    assert code == 0
    (sweep_id,) = ResultsStore(root).sweeps()
    runs = ResultsStore(root).load_runs(sweep_id)
    assert len(runs) == 2 * 2 * 2 * 2 + 2 * 2 * 2
    report = build_report(runs, metric="min_train_loss", n_bootstrap=20,
                          expected_sizes={"width": [8, 16], "depth": [2]}, cells_total=4)
    assert {(a.group["algorithm"], a.axis) for a in report.analyses} == {("pc", "width"), ("bp", "width")}
    _round_trip(report)
    _round_trip(report.with_(sweep_id=sweep_id, cells_missing=(), refinement={"rounds": []}))
    assert "sweep_id" not in report.to_json()  # optional fields: absent unless set


# --------------------------------------------------------------------------- one source for every number

ROOT = Path(__file__).resolve().parents[1]
# Field names the report shares with other dicts of the project (spec, status, registry rows, API
# errors, runs-table columns): a read of one of them by string says nothing about the report.
SHARED_NAMES = {"activity_lr", "weight_lr", "axis", "cells_done", "cells_total", "code", "column", "complete",
                "detail", "direction", "diverged", "encoding", "fit", "fraction", "freq", "group", "kind", "lr",
                "metric", "missing", "n_runs", "n_seeds", "notes", "refinement", "size", "sizes", "state",
                "sweep_id", "unit", "units", "value", "values", "warnings", "ci", "side", "extend", "criterion",
                "expected_seeds", "row", "surface", "decide"}  # decide: also the spec's field and the executors' record
# Lines whose key belongs to another dict that happens to share a report name.
NOT_THE_REPORT = {
    ("sweeps/spec.py", 'data.get("analyses")'): "the spec's diagnostics `analyses:` field",
    ("sweeps/spec.py", 'data.pop("analyses"'): "the spec's diagnostics `analyses:` field",
    ("sweeps/local.py", 'cells_failed["analyses"]'): "the diagnostics pseudo-cell of a sweep outcome",
    ("sweeps/ray_exec.py", 'cells_failed["analyses"]'): "the diagnostics pseudo-cell of a sweep outcome",
    ("sweeps/listing.py", '"provisional": status'): "the listing row's own field",
    ("sweeps/listing.py", 'r["provisional"]'): "the listing row's own field",
    ("sweeps/listing.py", "x['verdict']"): "a listing row's verdict summary (sweeps.state.verdicts)",
}


def _report_names() -> set[str]:
    from mutransfer.report import model

    names = set()
    for c in vars(model).values():
        if isinstance(c, type) and dataclasses.is_dataclass(c):
            names |= {f.name for f in dataclasses.fields(c)}
    return names - SHARED_NAMES


def _string_reads() -> dict[str, list[str]]:
    keys = sorted(_report_names())
    pattern = re.compile(r"""(?:\[\s*|\.get\(\s*|\.pop\(\s*|\bin\s+)(["'])(%s)\1""" % "|".join(map(re.escape, keys)))
    hits: dict[str, list[str]] = {}
    for top in ("dashboards", "sweeps", "service", "benchmarks", "mutransfer"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("mutransfer/report/"):
                continue  # the report and its serialiser
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and not any(f == rel and s in line for f, s in NOT_THE_REPORT):
                    hits.setdefault(rel, []).append(f"{n}: {line.strip()}")
    return hits


def test_no_report_key_is_read_by_string_outside_the_report():
    hits = _string_reads()
    assert "verdict_text" in _report_names() and "metric" not in _report_names()
    assert not hits, "read the typed report's fields (mutransfer.report.Report) instead:\n" + "\n".join(
        f"{f}:{line}" for f, lines in hits.items() for line in lines)


def test_the_grep_finds_a_string_read():
    """The check above can fail: a line reading the report by string is found."""
    pattern_line = 'v = rep["analyses"][0]["verdict_text"]'
    keys = sorted(_report_names())
    pattern = re.compile(r"""(?:\[\s*|\.get\(\s*|\.pop\(\s*|\bin\s+)(["'])(%s)\1""" % "|".join(map(re.escape, keys)))
    assert pattern.search(pattern_line) and pattern.search('a.get("eta_star")')
    assert not pattern.search('spec.get("metric")')


def test_dashboards_copy_none_of_the_reports_constants():
    """The report's conventions are imported in dashboards/, never re-defined there."""
    copies = re.compile(r"""^\s*(FIXED_SETTINGS|SIZE_AXES|ETA|BETA|BAD_STATUSES|BUDGET_\w+|METRICS|DIVERGED_POLICIES|DEFAULT_METRIC)"""
                        r"""\s*(:[^=]*)?=|^\s*ETA\s*,\s*BETA\s*=|^def (lr_key|with_run_defaults|run_costs|prepare)\(|"""
                        r"""\(\s*"algorithm", "parametrization", "activation", "dataset"\s*\)|\(0\.25, ?0\.5|_25pct|_50pct|"""
                        # the verdicts, reason codes and tolerances are the report's (Verdict, ReasonCode, Thresholds)
                        r"""["'](transfers|does not transfer|inconclusive|optimum_on_edge|too_few_seeds|no_optimum)["']|"""
                        r"""^\s*(regret|steps|drift)_tol\s*(:\s*\w+)?\s*=\s*[0-9]""")
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in sorted((ROOT / "dashboards").rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if copies.search(line)]
    assert not found, "\n".join(found)
    from dashboards import common, verdicts
    from mutransfer.report import ReasonCode, Verdict, metrics

    # the pages' labels (badge classes, reason labels) are presentation keyed by the report's codes:
    # every state and reason the report can give has one
    assert set(Verdict) <= set(verdicts.VERDICTS) and set(ReasonCode) == set(verdicts.REASONS)

    assert (common.FIXED_SETTINGS, common.SIZE_AXES, common.ETA, common.BETA, common.BAD_STATUSES) == (
        metrics.FIXED_SETTINGS, metrics.SIZE_AXES, metrics.ETA_COL, metrics.BETA_COL, metrics.BAD_STATUSES)


def test_budget_fractions_have_one_home():
    from mutransfer import budgets, results
    from mutransfer.report.metrics import BUDGET_COLUMNS

    assert [c for _, c in BUDGET_COLUMNS["min_train_loss"][:-1]] == list(budgets.BUDGET_COLUMN_NAMES)
    assert set(budgets.BUDGET_COLUMN_NAMES) <= set(results.RUNS_SCHEMA.names)
    literal = re.compile(r"\(0\.25, ?0\.5\)|[\"']min_train_loss_(25|50)pct[\"']")
    places = sorted(p.relative_to(ROOT).as_posix() for top in ("mutransfer", "sweeps", "service", "dashboards")
                    for p in (ROOT / top).rglob("*.py") if literal.search(p.read_text()))
    assert places == ["mutransfer/budgets.py"], places


def test_one_table_of_diagnostics_kinds_and_columns():
    from dashboards.diagnostics import KINDS
    from mutransfer.diagnostic_columns import KIND_COLUMNS
    from mutransfer.diagnostics import ANALYSES

    assert set(KIND_COLUMNS) == set(ANALYSES)
    assert KINDS == {k: tuple(c.headline) for k, c in KIND_COLUMNS.items()}
    assert KIND_COLUMNS["training_diagnostics"].headline.value == "kappa_abs"


def test_the_reference_page_names_every_field():
    """docs/reference/report.md documents every field of every report class and every reason code."""
    from mutransfer.report import model

    page = (ROOT / "docs/reference/report.md").read_text()
    undocumented = [f"{c.__name__}.{f.name}" for c in vars(model).values()
                    if isinstance(c, type) and dataclasses.is_dataclass(c) for f in dataclasses.fields(c)
                    if f"`{f.name}`" not in page]
    undocumented += [f"code {c.value}" for c in ReasonCode if f"`{c.value}`" not in page]
    undocumented += [f"verdict {v.value}" for v in Verdict if f"`{v.value}`" not in page]
    assert not undocumented, undocumented


def test_the_single_size_case_is_the_reports():
    """A sweep with one size so far: the report carries each cell's surface and optimum
    (``single_size``, no verdict), and the contours page draws exactly those."""
    from dashboards.contours import _single_size_report, contour_page

    runs = make_runs({(64, 4): (-5.2, -2.7)}, seeds=2)
    report = build_report(runs, n_bootstrap=10)
    assert report.analyses == () and len(report.single_size) == 1
    (s,) = report.single_size
    assert (s.axis, s.size, s.group["depth"]) == ("width", 64, 4)
    values = np.array([[math.inf if v is None else v for v in row] for row in s.surface.values])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    assert (s.row.eta_star, s.row.beta_star) == (s.surface.weight_lr[i], s.surface.activity_lr[j]) == (2.0**-5, 2.0**-3)
    _round_trip(report)
    (a,) = _single_size_report(report.to_json()).analyses
    assert a.sizes == (s.row,) and a.surfaces == (s.surface,) and a.group == s.group  # the report's values
    assert "single size" in contour_page(report.to_json(), runs, {"id": "one-0000abcd", "name": "one"})
    # with two sizes the cells are compared instead: no single-size entries along width
    assert build_report(make_runs({(32, 4): (-5, -3), (64, 4): (-5, -3)}), n_bootstrap=0).single_size == ()


def test_the_lr_figures_mark_the_reports_optima():
    """dashboards.lr_sweep reads each size's optimum from the report: the star on each line is the
    report's η* (the other lr held at the report's β*)."""
    import dashboards as D

    runs = _tables()["offgrid"]
    report = build_report(runs, n_bootstrap=0)
    (a,) = [x for x in report.analyses if x.axis == "width"]
    fig = D.loss_vs_lr(runs, axis="width", lr="weight_lr")
    stars = {t.meta["size"]: t.x[0] for t in fig.data if (t.meta or {}).get("role") == "optimum"}
    assert stars == {e.size: math.log2(e.eta_star) for e in a.sizes}
    fixed = {t.meta["size"]: t.name for t in fig.data if (t.meta or {}).get("role") == "line"}
    for e in a.sizes:
        assert f"β = {fmt_lr(e.beta_star)}" in fixed[e.size]
