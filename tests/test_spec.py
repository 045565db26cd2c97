"""Specs: defaults, expansion into cells/runs, and bad input rejected naming the field."""

import math

import pytest

from sweeps.plan import plan
from sweeps.spec import SpecError, loads_spec, parse_spec

BASE = {
    "name": "t",
    "parametrizations": ["mupc", "sp"],
    "widths": [8, 16],
    "depths": [2],
    "weight_lrs": [0.1, 0.01],
    "activity_lrs": [0.5],
    "seeds": 2,
    "dataset": {"name": "digits"},
}


def with_(**changes):
    d = {**BASE, **changes}
    return {k: v for k, v in d.items() if v is not ...}


def errors(data):
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    return dict(e.value.errors), str(e.value)


def test_defaults_and_plan():
    spec = parse_spec(BASE)
    assert spec.seeds == [0, 1] and spec.algorithms == ["pc"]
    assert spec.resolved_base_width == 8 and spec.resolved_base_depth == 2
    cells = plan(spec)
    assert [c.cell_id for c in cells] == ["pc-mupc-w8-d2", "pc-mupc-w16-d2", "pc-sp-w8-d2", "pc-sp-w16-d2"]
    assert all(len(c.runs) == 2 * 1 * 2 for c in cells)
    assert cells[0].spec.input_dim == 64 and cells[0].spec.output_dim == 10
    ids = [r.run_id for c in cells for r in c.runs]
    assert len(set(ids)) == len(ids)
    assert [r.run_id for r in plan(parse_spec(BASE))[0].runs] == [r.run_id for r in cells[0].runs]


def test_bp_has_no_activity_axis():
    spec = parse_spec(with_(algorithms=["bp"], activity_lrs=...))
    runs = plan(spec)[0].runs
    assert len(runs) == 2 * 2 and all(math.isnan(r.activity_lr) for r in runs)


def test_same_spec_same_id_description_ignored():
    a, b = parse_spec(BASE), parse_spec(with_(description="other words"))
    assert a.default_sweep_id() == b.default_sweep_id()
    assert a.default_sweep_id() != parse_spec(with_(widths=[8, 32])).default_sweep_id()


@pytest.mark.parametrize("data,field,words", [
    (with_(widht=[8]), "widht", "unknown key"),
    (with_(training={"epochs": 1, "lr": 3}), "training.lr", "unknown key"),
    (with_(weight_lrs=[0.1, -1.0]), "weight_lrs[1]", "greater than 0"),
    (with_(activity_lrs=[0.0]), "activity_lrs[0]", "greater than 0"),
    (with_(weight_lrs=[]), "weight_lrs", "at least 1"),
    (with_(widths=[0, 8]), "widths[0]", "greater than or equal to 1"),
    (with_(depths=[]), "depths", "at least 1"),
    (with_(dataset={"name": "imagenet"}), "dataset.name", "fashion_mnist"),
    (with_(parametrizations=["mupc", "spp"]), "parametrizations[1]", "unknown parametrization 'spp'"),
    (with_(algorithms=["tp2"]), "algorithms[0]", "unknown algorithm"),
    (with_(activity_lrs=...), "activity_lrs", "required"),
    (with_(architecture={"kind": "transformer"}), "architecture.kind", "mlp"),
    (with_(architecture={"kind": "mlp", "kernel_size": 3}), "architecture.kernel_size", "only for kind cnn"),
    (with_(architecture={"kind": "cnn", "kernel_size": 0}), "architecture.kernel_size", "greater than or equal to 1"),
    (with_(architecture={"kind": "cnn", "kernel_size": 99}), "architecture.kernel_size", "less than or equal to 15"),
    (with_(architecture={"kind": "cnn", "downsample_layers": -1}), "architecture.downsample_layers",
     "greater than or equal to 0"),
    (with_(algorithms=["dtp"], parametrizations=["tp_mup"], architecture={"kind": "residual_cnn"}),
     "architecture.kind", "plain mlp or cnn"),
    (with_(architecture={"activation": "swish"}), "architecture.activation", "tanh"),
    (with_(widths=[8, 8]), "widths", "duplicates"),
    (with_(name="Bad Name!"), "name", "pattern"),
    (with_(seeds=0), "seeds", "between 1 and 1000"),
    (with_(weight_lrs=[float("nan")]), "weight_lrs[0]", "finite"),
    (with_(metric="accuracy"), "metric", "min_train_loss"),
])
def test_bad_input_names_the_field(data, field, words):
    errs, text = errors(data)
    assert field in errs, errs
    assert words in errs[field]
    assert field in text


def test_yaml_safe_loader_and_not_a_mapping():
    with pytest.raises(SpecError, match="the tag !!python/object/apply:os.system is not allowed"):
        loads_spec("name: !!python/object/apply:os.system ['true']")
    with pytest.raises(SpecError, match="expected a mapping"):
        loads_spec("- 1\n- 2\n")


def test_every_shipped_spec_validates_and_builds_its_networks():
    from pathlib import Path

    from sweeps.spec import load_spec
    from mutransfer.trainer import model_for

    files = sorted((Path(__file__).parent.parent / "sweeps" / "specs").glob("*.yaml"))
    assert len(files) >= 10
    for f in files:
        cells = plan(load_spec(f))
        for c in cells:
            model_for(c.spec)  # geometry and parameterisation resolve for every cell


def test_cnn_spec_plans_cnn_cells_with_the_dataset_image_shape():
    spec = parse_spec(with_(architecture={"kind": "cnn", "activation": "relu"}, dataset={"name": "fashion_mnist"}))
    cs = plan(spec)[0].spec
    assert (cs.architecture, cs.kernel_size, cs.downsample_layers, cs.image_shape) == ("cnn", 3, 2, (1, 28, 28))
    assert not cs.residual
    # Spelling out the defaults computes the same thing, so it is the same sweep.
    explicit = parse_spec(with_(architecture={"kind": "cnn", "activation": "relu", "kernel_size": 3,
                                              "downsample_layers": 2}, dataset={"name": "fashion_mnist"}))
    assert explicit.default_sweep_id() == spec.default_sweep_id()
    other = parse_spec(with_(architecture={"kind": "cnn", "activation": "relu", "kernel_size": 5},
                             dataset={"name": "fashion_mnist"}))
    assert other.default_sweep_id() != spec.default_sweep_id()
    # MLP cells are unchanged by the CNN fields.
    assert plan(parse_spec(BASE))[0].spec.architecture == "mlp"
    assert parse_spec(with_(architecture={"kind": "residual_cnn"})).architecture.residual
