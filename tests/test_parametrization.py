import math

import pytest

from mutransfer.parametrization import PARAMETRIZATIONS, resolve


def r(name, **kw):
    args = dict(input_dim=10, width=64, hidden_layers=3, output_dim=4, residual=True)
    args.update(kw)
    return resolve(name, **args)


def test_sp():
    p = r("sp")
    assert [l.multiplier for l in p] == [1, 1, 1, 1]
    assert p[0].init_std == pytest.approx(1 / math.sqrt(10)) and p[2].init_std == pytest.approx(1 / 8)


def test_mupc_residual_and_plain():
    p = r("mupc")
    L = 4
    assert p[0].multiplier == pytest.approx(1 / math.sqrt(10))
    assert p[1].multiplier == pytest.approx(1 / math.sqrt(64 * L))
    assert p[-1].multiplier == pytest.approx(1 / 64)
    assert all(l.init_std == 1 and l.lr_mult == 1 for l in p)
    assert r("mupc", residual=False)[1].multiplier == pytest.approx(1 / 8)  # jpc: 1/√N without skips


def test_lr_scaling_is_one_at_base_and_scales_off_base():
    assert all(l.lr_mult == 1 for l in r("depth_mup"))
    p = r("depth_mup", width=256, hidden_layers=7, base_width=64, base_hidden_layers=3)
    assert p[1].lr_mult == pytest.approx(math.sqrt(64 * 4) / math.sqrt(256 * 8))
    assert p[0].lr_mult == 1 and p[-1].lr_mult == 1
    assert r("mup", width=256, base_width=64)[1].lr_mult == pytest.approx(0.5)
    assert r("ntp")[-1].multiplier == pytest.approx(1 / 8)


def test_every_row_resolves_and_unknown_is_named():
    for name in PARAMETRIZATIONS:
        assert len(r(name)) == 4
    with pytest.raises(ValueError, match="parametrization"):
        r("nope")
