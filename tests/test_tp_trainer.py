"""TP/DTP inside the grid trainer and sweeps, and the width checks behind `tp_mup`."""

import numpy as np
import pytest

from mutransfer.data import load_dataset
from mutransfer.tp_checks import feature_updates
from mutransfer.trainer import CellSpec, TrainOptions, to_device, train_cell


@pytest.mark.parametrize("algorithm", ["tp", "dtp"])
def test_grid_trainer_runs_tp_and_flags_divergence(digits, algorithm):
    cell = CellSpec(algorithm, "tp_mup", 64, 2, "tanh", False, 64, 10, batch_size=32)
    res = train_cell(cell, to_device(digits), [1e-3, 1e-2, 1e6], [0.5, 0.5, 0.5], [0, 0, 1],
                     TrainOptions(epochs=3, log_every=5))
    assert list(res.runs["status"]) == ["ok", "ok", "diverged"]
    loss = res.curves["train_loss"][1]
    loss = loss[np.isfinite(loss)]
    assert loss[-3:].mean() < 0.7 * loss[:3].mean()
    # Plain TP (targets through g_l only) learns much more slowly than DTP at this budget.
    assert res.runs["final_test_acc"][1] > {"dtp": 0.5, "tp": 0.2}[algorithm]
    recon = res.curves["energy_end"][1]  # TP/DTP: the feedback reconstruction loss
    assert np.isfinite(recon[0]) and recon[0] > 0


def test_tp_runs_alone_equal_runs_in_a_grid(digits):
    cell = CellSpec("dtp", "sp", 16, 2, "tanh", False, 64, 10, batch_size=32)
    opts = TrainOptions(max_steps=8, log_every=1)
    grid = train_cell(cell, to_device(digits), [1e-2, 3e-3], [0.5, 1.0], [0, 1], opts)
    alone = train_cell(cell, to_device(digits), [3e-3], [1.0], [1], opts)
    np.testing.assert_allclose(grid.curves["train_loss"][1], alone.curves["train_loss"][0], rtol=1e-4)


def test_tp_mup_feature_updates_are_flat_in_width_and_sp_are_not():
    ds = load_dataset("fashion_mnist", train_examples=256, test_examples=10)
    y = np.eye(10)[ds.y_train]
    widths = [128, 512, 2048]
    mup = feature_updates("dtp", "tp_mup", widths, x=ds.x_train, y=y)
    for layer, g in mup.groupby("layer"):
        d = g["delta"].to_numpy()
        assert np.all(np.abs(d / d.mean() - 1) <= 0.25), (layer, d)  # flat within ±25 %
        assert d.min() > 1e-2  # and the features do move: O(1), not frozen
    sp = feature_updates("dtp", "sp", widths, x=ds.x_train, y=y)
    h2 = sp[sp.layer == "h2"].sort_values("width")["delta"].to_numpy()
    assert h2[-1] > 3 * h2[0]  # SP's updates blow up with width


def test_tp_spec_validation():
    # Imported here: the trainer tests above also run where only the science package's
    # dependencies are installed (benchmarks/device_check.py on a GPU machine without pydantic).
    from sweeps.spec import SpecError, parse_spec

    base = {"name": "t", "algorithms": ["dtp"], "parametrizations": ["tp_mup"], "widths": [8],
            "depths": [2], "weight_lrs": [0.1], "activity_lrs": [0.5], "dataset": {"name": "digits"},
            "architecture": {"kind": "mlp"}}
    spec = parse_spec({**base, "training": {"feedback_noise": 0.2, "feedback_steps": 2}})
    from sweeps.plan import plan
    (cell,) = plan(spec)
    assert cell.spec.feedback_noise == 0.2 and cell.spec.feedback_steps == 2 and not cell.spec.residual
    for bad, field in [
        ({**base, "architecture": {"kind": "residual_mlp"}}, "architecture.kind"),
        ({**base, "training": {"feedback_noise": -0.1}}, "training.feedback_noise"),
        ({**base, "algorithms": ["pc"], "training": {"feedback_noise": 0.1}}, "training.feedback_noise"),
        ({**base, "training": {"inference_steps": 4}}, "training.inference_steps"),
        ({**base, "training": {"output_precision": 2.0}}, "training.output_precision"),
    ]:
        with pytest.raises(SpecError) as e:
            parse_spec(bad)
        assert field in str(e.value), (field, str(e.value))
