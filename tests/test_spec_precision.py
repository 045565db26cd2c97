"""training.precision and training.init: bounded choices, passed to the cells, and invisible in the
spec hash at their defaults (older sweeps keep their ids)."""

import pytest

from sweeps.plan import plan
from sweeps.spec import SpecError, load_spec, parse_spec

BASE = {"name": "t", "parametrizations": ["sp"], "widths": [8], "depths": [2], "weight_lrs": [0.1],
        "activity_lrs": [0.5], "dataset": {"name": "digits"}}


def test_defaults_keep_the_hash_and_reach_the_cells():
    assert load_spec("sweeps/specs/quickstart.yaml").default_sweep_id() == "quickstart-47e8de33"
    plain = parse_spec(BASE)
    spelled = parse_spec({**BASE, "training": {"precision": "float32", "init": "default"}})
    assert plain.spec_hash() == spelled.spec_hash()
    (c,) = plan(plain)
    assert (c.spec.precision, c.spec.init) == ("float32", "default")
    f64 = parse_spec({**BASE, "training": {"precision": "float64", "init": "kaiming_uniform"}})
    assert f64.spec_hash() != plain.spec_hash()
    (c,) = plan(f64)
    assert (c.spec.precision, c.spec.init) == ("float64", "kaiming_uniform")
    assert c.runs[0].run_id != plan(plain)[0].runs[0].run_id


@pytest.mark.parametrize("key,value", [("precision", "float16"), ("init", "xavier"), ("precision", 64)])
def test_unknown_values_are_refused_naming_the_field(key, value):
    with pytest.raises(SpecError) as e:
        parse_spec({**BASE, "training": {key: value}})
    assert [f for f, _ in e.value.errors] == [f"training.{key}"]
