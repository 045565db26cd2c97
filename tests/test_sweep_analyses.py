"""Diagnostics as sweep analysis kinds: asked for in the spec, run with the sweep, stored as
Parquet beside its results, served as tables and as a dashboard page."""

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mutransfer.results import ResultsStore
from service.app import create_app
from service.settings import from_env
from sweeps.local import run_sweep
from sweeps.spec import SpecError, parse_spec

SPEC = {
    "name": "diag",
    "parametrizations": ["mupc"],
    "widths": [8],
    "depths": [2],
    "weight_lrs": [0.1],
    "activity_lrs": [0.5],
    "dataset": {"name": "digits", "train_examples": 128},
    "training": {"epochs": 1, "batch_size": 32},
    "analyses": [
        {"kind": "hessian_condition", "settings": {"widths": [4, 8], "depths": [2, 4], "parametrizations": ["sp", "mupc"]}},
        {"kind": "loss_energy_ratio", "settings": {"widths": [8, 32], "depths": [2, 4]}},
    ],
}


def test_spec_analyses_run_store_and_serve(tmp_path):
    spec = parse_spec(SPEC)
    out = run_sweep(spec, tmp_path)
    assert not out.cells_failed
    store = ResultsStore(tmp_path)
    assert store.analyses(out.sweep_id) == ["0-hessian_condition", "1-loss_energy_ratio"]
    kappa = store.load_analysis(out.sweep_id, "0-hessian_condition")
    assert set(kappa["width"]) == {4, 8} and set(kappa["parametrization"]) == {"sp", "mupc"}
    ratio = store.load_analysis(out.sweep_id, "1-loss_energy_ratio")
    assert (ratio["ratio"] > 0.5).all()
    # Rerunning computes nothing again.
    assert run_sweep(spec, tmp_path).cells_done == []
    with TestClient(create_app(from_env({"MUTRANSFER_RESULTS": str(tmp_path), "MUTRANSFER_DRIVERS": "none"}))) as c:
        items = c.get(f"/sweeps/{out.sweep_id}/analyses").json()["items"]
        assert [i["name"] for i in items] == ["0-hessian_condition", "1-loss_energy_ratio"]
        df = pd.DataFrame(c.get(f"/sweeps/{out.sweep_id}/analyses/0-hessian_condition?format=json").json())
        assert len(df) == len(kappa)
        assert c.get(f"/sweeps/{out.sweep_id}/analyses/nope").status_code == 404
        page = c.get(f"/sweeps/{out.sweep_id}/diagnostics").text
        assert page.count('class="fig"') == 2 and "condition number" in page


@pytest.mark.parametrize("bad,field", [
    ({"kind": "hessian"}, "kind"),
    ({"kind": "hessian_condition", "settings": {"width": [8]}}, "settings"),
])
def test_bad_analysis_is_named(bad, field):
    with pytest.raises(SpecError) as e:
        parse_spec({**SPEC, "analyses": [bad]})
    assert field in str(e.value)
