"""Split products (mutransfer/matmul.py): the same numbers as one einsum, issued as independent
dots, and the grid trainer's results unchanged by the split (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import matmul, trainer
from mutransfer.data import Dataset
from mutransfer.networks import make_net
from mutransfer.parametrization import resolve


@pytest.mark.parametrize("spec, axis, xs, ys", [
    ("lbi,loi->lbo", "l", (7, 5, 6), (7, 4, 6)),
    ("lbi,loi->lbo", "b", (2, 9, 6), (2, 4, 6)),
    ("bi,oi->bo", "o", (5, 6), (11, 6)),
    ("bi,oi->bo", "b", (5, 6), (11, 6)),
])
@pytest.mark.parametrize("pieces", [1, 2, 3, 64])
def test_split_einsum_equals_einsum(spec, axis, xs, ys, pieces, monkeypatch):
    monkeypatch.setattr(matmul, "MIN_SPLIT_MACS", 0)
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x, y = jnp.asarray(rng.standard_normal(xs)), jnp.asarray(rng.standard_normal(ys))
        got = matmul.split_einsum(spec, x, y, axis, pieces)
        np.testing.assert_allclose(got, jnp.einsum(spec, x, y), rtol=1e-13, atol=1e-13)


def test_split_issues_independent_dots():
    """The split program holds one dot per piece (what lets XLA:CPU run them concurrently); a
    product below MIN_SPLIT_MACS stays one dot."""
    def dots(x, y, pieces):
        text = jax.jit(lambda a, b: matmul.split_einsum("lbi,loi->lbo", a, b, "l", pieces)).lower(x, y).as_text()
        return text.count("stablehlo.dot_general")
    x, y = jnp.ones((7, 64, 64)), jnp.ones((7, 64, 64))  # 7 · 64³ multiply-adds
    for pieces in (1, 2, 3):
        assert dots(x, y, pieces) == pieces
    assert dots(jnp.ones((7, 4, 6)), jnp.ones((7, 3, 6)), 3) == 1


def test_split_refuses_a_contracted_axis():
    with pytest.raises(ValueError, match="output index"):
        matmul.split_einsum("bi,oi->bo", jnp.ones((2, 3)), jnp.ones((4, 3)), "i", 2)


def test_dot_pieces_env(monkeypatch):
    monkeypatch.setenv(matmul.DOT_SPLIT_ENV, "3")
    assert matmul.dot_pieces() == 3
    layers = resolve("mupc", input_dim=4, width=8, hidden_layers=3, output_dim=2, residual=True)
    assert make_net("tanh", True, layers).dot_pieces == 3
    assert make_net("tanh", True, layers, pieces=1).dot_pieces == 1
    for bad in ("0", "two"):
        monkeypatch.setenv(matmul.DOT_SPLIT_ENV, bad)
        with pytest.raises(ValueError, match=matmul.DOT_SPLIT_ENV):
            matmul.dot_pieces()
    monkeypatch.delenv(matmul.DOT_SPLIT_ENV)
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    assert matmul.dot_pieces() == 1  # a one-CPU sweep trial (mutransfer/devices.py)


def test_grid_trainer_same_numbers_split_or_not(monkeypatch):
    """A float64 μPC cell (H = 4: layer-axis split; the input layer split over its outputs) trains
    to the same curves with 1 or 3 pieces. The size floor is lifted so this small cell splits; a
    GEMM kernel blocking a smaller piece may round an element by an ulp, and Adam's m/√v maps
    such differences to O(lr) steps, so after 3 steps the curves agree to 1e-9, not bitwise."""
    monkeypatch.setattr(matmul, "MIN_SPLIT_MACS", 0)
    D, C = 12, 5
    rng = np.random.default_rng(0)
    data = Dataset("synthetic", rng.standard_normal((48, D)).astype(np.float32),
                   rng.integers(0, C, 48).astype(np.int32), rng.standard_normal((8, D)).astype(np.float32),
                   rng.integers(0, C, 8).astype(np.int32), C)
    cell = trainer.CellSpec("pc", "mupc", 8, 4, "tanh", True, D, C, batch_size=16, precision="float64")
    opts = trainer.TrainOptions(max_steps=3, log_every=1, eval_every=3)
    out = {}
    for pieces in ("1", "3"):
        monkeypatch.setenv(matmul.DOT_SPLIT_ENV, pieces)
        trainer._programs.cache_clear()
        assert trainer.model_for(cell).net.dot_pieces == int(pieces)
        out[pieces] = trainer.train_cell(cell, data, [0.1, 0.01], [0.5, 0.1], [0, 1], opts)
    trainer._programs.cache_clear()
    for k in ("train_loss", "energy_start", "energy_end", "test_loss"):
        assert np.isfinite(out["1"].curves[k]).any()
        np.testing.assert_allclose(out["3"].curves[k], out["1"].curves[k], rtol=1e-9, atol=1e-12)
