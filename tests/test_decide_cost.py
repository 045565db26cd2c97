"""The cost bound (sweeps/cost.py) counts the runs the decide loop may add: in the run count
(MUTRANSFER_MAX_RUNS) and in the compute (MUTRANSFER_MAX_SWEEP_PFLOP), at submit and in the CLI."""

import json

import pytest

from sweeps import cost
from sweeps.cli import main
from sweeps.limits import Limits
from sweeps.spec import count_runs, parse_spec
from test_api import SPEC, make_client

SPEC_D = {**SPEC, "name": "cost-decide", "weight_lrs": [0.01, 0.1, 1.0], "seeds": 2}


def test_estimate_prices_the_decide_runs_at_the_dearest_cell():
    plain = parse_spec(SPEC_D)
    dec = parse_spec({**SPEC_D, "decide": {"max_runs": 10}})
    default = parse_spec({**SPEC_D, "decide": {}})
    a, b, c = (cost.estimate(s, Limits()) for s in (plain, dec, default))
    assert (a.decide_runs, b.decide_runs, c.decide_runs) == (0, 10, count_runs(plain))  # default: as many again
    steps = cost.steps_per_run(plain)
    from sweeps.plan import plan

    dearest = max(steps * cost.flop_per_run_step(cell.spec) for cell in plan(plain))
    assert b.flop == pytest.approx(a.flop + 10 * dearest) and b.decide_flop == pytest.approx(10 * dearest)
    assert b.run_steps == a.run_steps + 10 * steps


def test_check_and_refusals_name_decide_max_runs_when_only_the_loop_passes_a_bound():
    spec = parse_spec({**SPEC_D, "decide": {"max_runs": 30}})  # 12 runs of its own, 42 at most
    with pytest.raises(cost.CostError, match=r"^decide.max_runs: .*12 runs and the 30 .* limit of 20 "
                                             r"\(MUTRANSFER_MAX_RUNS\); set decide.max_runs to at most 8$"):
        cost.check(spec, Limits(max_runs=20))
    cost.check(parse_spec(SPEC_D), Limits(max_runs=20))  # without decide: within the limit
    own = cost.estimate(parse_spec(SPEC_D), Limits()).pflop
    lim = Limits(max_sweep_pflop=own * 1.5)  # the spec's own fit, with 30 more runs they do not
    found = dict(cost.refusals(spec, lim))
    assert list(found) == ["decide.max_runs"] and "MUTRANSFER_MAX_SWEEP_PFLOP" in found["decide.max_runs"]
    assert "set decide.max_runs to at most" in found["decide.max_runs"]
    assert cost.refusals(parse_spec(SPEC_D), lim) == []


def test_the_cli_counts_the_runs_decide_may_add(tmp_path, capsys, monkeypatch):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC_D))
    monkeypatch.setenv("MUTRANSFER_MAX_RUNS", "20")
    # --decide with the default limits: 12 runs of its own and as many again = 24 > 20.
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--decide", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "decide.max_runs" in err and "MUTRANSFER_MAX_RUNS" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_submit_refuses_the_decide_loops_compute(tmp_path):
    own = cost.estimate(parse_spec(SPEC_D), Limits()).pflop
    with make_client(tmp_path, MUTRANSFER_MAX_SWEEP_PFLOP=own * 1.5, MUTRANSFER_API_TOKEN="tok") as c:
        c.headers["Authorization"] = "Bearer tok"
        r = c.post("/sweeps", json={**SPEC_D, "decide": {"max_runs": 30}})
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["detail"]] == ["decide.max_runs"]
        assert "MUTRANSFER_MAX_SWEEP_PFLOP" in r.text
