"""Small CNNs: convolution geometry, fan-ins, every algorithm on conv layers, and the grid trainer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import bp, optim, pc, tp
from mutransfer.networks import CONV_IMPL_ENV, adjoint_layer, cnn_layers, forward, init_weights, make_net, predict
from mutransfer.parametrization import resolve
from mutransfer.trainer import CellSpec, TrainOptions, model_for, train_cell


def _cnn(param="sp", activation="tanh", residual=False, image=(1, 8, 8), width=8, depth=2, C=10,
         kernel=3, downsample=2):
    geo = cnn_layers(image, width, depth, C, kernel, downsample)
    layers = resolve(param, input_dim=math.prod(image), width=width, hidden_layers=depth, output_dim=C,
                     residual=residual, fan_ins=[g.fan_in for g in geo])
    net = make_net(activation, residual, layers, geo)
    w = init_weights(jax.random.key(0), [g.weight_shape for g in geo], [p.init_std for p in layers])
    return net, w, geo, layers


def _conv_reference(x, W, stride):
    """Direct loops over output positions, SAME padding (pad_before = total // 2), NHWC/HWIO."""
    B, H, Wd, _ = x.shape
    k = W.shape[0]
    out_h, out_w = -(-H // stride), -(-Wd // stride)
    pad_h = max((out_h - 1) * stride + k - H, 0)
    pad_w = max((out_w - 1) * stride + k - Wd, 0)
    xp = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((B, out_h, out_w, W.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j] = np.einsum("bhwc,hwco->bo", patch, W)
    return out


@pytest.fixture(params=["patches", "xla"])
def conv_impl(request, monkeypatch):
    """Both convolution implementations (im2col matmul, XLA's native conv) must agree."""
    monkeypatch.setenv(CONV_IMPL_ENV, request.param)
    return request.param


@pytest.mark.parametrize("size,stride", [(8, 1), (8, 2), (7, 2), (5, 1)])
def test_first_conv_matches_a_direct_convolution_of_channel_major_inputs(size, stride, conv_impl):
    image = (2, size, size)
    net, w, geo, layers = _cnn(image=image, width=3, depth=1, downsample=int(stride == 2))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, math.prod(image))).astype(np.float32)
    z1 = np.asarray(forward(net, w, jnp.asarray(x))[0])
    img = x.reshape(4, *image).transpose(0, 2, 3, 1)  # datasets are flat (C, H, W)
    ref = layers[0].multiplier * _conv_reference(img.astype(np.float64), np.asarray(w[0], np.float64), stride)
    assert z1.shape == (4, -(-size // stride), -(-size // stride), 3) == (4, *geo[0].out_shape)
    np.testing.assert_allclose(z1, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,stride", [(8, 1), (8, 2), (7, 2)])
def test_transposed_conv_is_the_exact_adjoint(size, stride, conv_impl):
    net, w, geo, _ = _cnn(activation="linear", image=(1, size, size), width=4, depth=2,
                          downsample=1 + (stride == 2))
    lin = net._replace(multipliers=(1.0, 1.0, 1.0))
    layer = 1  # hidden conv (4 → 4 channels), stride 2 when downsampling twice
    assert geo[layer].stride == stride
    rng = np.random.default_rng(1)
    u = jnp.asarray(rng.standard_normal((3, *geo[layer].in_shape)), jnp.float32)
    h = jnp.asarray(rng.standard_normal((3, *geo[layer].out_shape)), jnp.float32)
    V = w[layer]
    fwd = predict(lin, w, layer, u)  # linear, multiplier 1: conv(V, stride, u)
    back = adjoint_layer(lin, layer, V, 1.0, h)
    assert back.shape == u.shape
    np.testing.assert_allclose(float(jnp.vdot(fwd, h)), float(jnp.vdot(u, back)), rtol=1e-4)
    # The readout's adjoint lands back on the last feature map.
    f_cot = jnp.asarray(rng.standard_normal((3, 10)), jnp.float32)
    back_out = adjoint_layer(lin, 2, w[2].T, 1.0, f_cot)
    assert back_out.shape == (3, *geo[2].in_shape)
    hidden = jnp.asarray(rng.standard_normal((3, *geo[2].in_shape)), jnp.float32)
    np.testing.assert_allclose(float(jnp.vdot(predict(lin, w, 2, hidden), f_cot)),
                               float(jnp.vdot(hidden, back_out)), rtol=1e-4)


def test_fan_ins_are_kernel_area_times_channels_and_tables_use_them():
    geo = cnn_layers((1, 28, 28), 16, 2, 10)
    assert [g.out_shape for g in geo] == [(14, 14, 16), (7, 7, 16), (10,)]
    assert [g.fan_in for g in geo] == [9, 144, 784]
    assert [g.weight_shape for g in geo] == [(3, 3, 1, 16), (3, 3, 16, 16), (10, 784)]
    fans = [g.fan_in for g in geo]
    sp = resolve("sp", input_dim=784, width=16, hidden_layers=2, output_dim=10, residual=False, fan_ins=fans)
    assert [p.init_std for p in sp] == pytest.approx([1 / 3, 1 / 12, 1 / 28])
    mupc = resolve("mupc", input_dim=784, width=16, hidden_layers=2, output_dim=10, residual=False, fan_ins=fans)
    assert [p.multiplier for p in mupc] == pytest.approx([1 / 3, 1 / 12, 1 / 784])
    tpm = resolve("tp_mup", input_dim=784, width=64, hidden_layers=2, output_dim=10, residual=False,
                  fan_ins=[g.fan_in for g in cnn_layers((1, 28, 28), 64, 2, 10)], base_width=16)
    assert tpm[2].multiplier == pytest.approx(1 / math.sqrt(49 * 64))
    assert [p.lr_mult for p in tpm] == pytest.approx([1, 0.5, 0.5])  # √(N0/N) on width-fed layers
    # Without fan_ins the table is the MLP's, as before.
    assert resolve("mupc", input_dim=784, width=16, hidden_layers=2, output_dim=10,
                   residual=False)[2].multiplier == pytest.approx(1 / 16)


@pytest.mark.parametrize("param", ["sp", "mupc"])
def test_preactivations_stay_order_one_as_channels_grow(param):
    """With fan-in k²·C the hidden conv's pre-activations keep their scale across widths."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((32, 784)), jnp.float32)
    scales = []
    for width in (8, 64):
        net, w, _, _ = _cnn(param, image=(1, 28, 28), width=width)
        scales.append(float(jnp.std(forward(net, w, x)[1])))
    assert 0.8 < scales[1] / scales[0] < 1.25, scales
    assert 0.05 < scales[0] < 20


def test_residual_cnn_skips_only_shape_preserving_hidden_layers():
    net, w, geo, _ = _cnn("mupc", residual=True, image=(1, 8, 8), width=4, depth=4, downsample=2)
    assert [net.skip(i) for i in range(5)] == [False, False, True, True, False]
    h = jnp.ones((2, *geo[2].in_shape))
    plain = net._replace(residual=False)
    np.testing.assert_allclose(predict(net, w, 2, h), predict(plain, w, 2, h) + h, rtol=1e-6)


@pytest.mark.parametrize("kernel", [3, 2, 5])
def test_conv_implementations_agree_with_gradients(kernel):
    from mutransfer.networks import conv

    rng = np.random.default_rng(7)
    h = jnp.asarray(rng.standard_normal((2, 9, 7, 3)), jnp.float32)
    W = jnp.asarray(rng.standard_normal((kernel, kernel, 3, 4)), jnp.float32)
    for stride in (1, 2):
        def loss(W, h, impl):
            return jnp.sum(jnp.tanh(conv(W, stride, h, impl)) ** 2)
        a = jax.grad(loss, (0, 1))(W, h, "patches")
        b = jax.grad(loss, (0, 1))(W, h, "xla")
        np.testing.assert_allclose(conv(W, stride, h, "patches"), conv(W, stride, h, "xla"), rtol=1e-4, atol=1e-5)
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)


def test_pc_on_a_cnn():
    net, w, geo, _ = _cnn("mupc", activation="tanh", image=(1, 8, 8), width=6)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((16, 64)), jnp.float32)
    y = jax.nn.one_hot(rng.integers(0, 10, 16), 10)
    cfg = pc.PCConfig(inference_steps=0, output_precision=2.0)
    # No inference: hidden errors are zero, only the readout learns, with γ_L × BP's gradient.
    out = pc.gradients(net, w, x, y, 0.1, cfg)
    bp_grads = bp.gradients(net, w, x, y, 0.0, cfg).grads
    assert float(jnp.max(jnp.abs(out.grads[0]))) == 0.0 and float(jnp.max(jnp.abs(out.grads[1]))) == 0.0
    np.testing.assert_allclose(out.grads[2], 2.0 * bp_grads[2], rtol=1e-5, atol=1e-7)
    assert float(out.energy_end) == pytest.approx(2.0 * float(out.train_loss), rel=1e-6)
    # Inference lowers the energy over feature-map activities and every layer gets a gradient.
    # (sp: μPC's 1/fan_in readout leaves little energy for inference to remove at init)
    net, w, geo, _ = _cnn("sp", activation="tanh", image=(1, 8, 8), width=6)
    out = pc.gradients(net, w, x, y, 4.0, cfg._replace(inference_steps=20))
    assert float(out.energy_end) < 0.5 * float(out.energy_start)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in out.grads)
    assert [g.shape for g in out.grads] == [g.weight_shape for g in geo]


def test_tp_feedback_learns_to_invert_conv_layers():
    net, w, geo, _ = _cnn("tp_mup", activation="tanh", image=(1, 8, 8), width=6)
    cfg = tp.TPConfig(variant="dtp", feedback_noise=0.0)
    V = tp.init_feedback(jax.random.key(3), geo, tp.feedback_params(geo, "unit"))
    assert [v.shape for v in V] == [(3, 3, 6, 6), (24, 10)]
    assert tp.feedback_fan_ins(geo) == pytest.approx([9 * 6 / 4, 10])
    b = tuple(p.multiplier for p in tp.feedback_params(geo, "unit"))
    cfg = cfg._replace(feedback_multipliers=b)
    x = jnp.asarray(np.random.default_rng(4).standard_normal((64, 64)), jnp.float32)
    y = jax.nn.one_hot(jnp.arange(64) % 10, 10)
    tx = optim.direction("adam")
    opt = tx.init(V)
    before = tp.feedback_grads(net, w, V, x, jax.random.key(0), cfg).layer_losses

    @jax.jit
    def step(V, opt, k):
        return tp.train_step(net, w, V, opt, x, y, 0.1, k, cfg, tx, 3e-2)[1:]

    for t in range(200):
        V, opt = step(V, opt, jax.random.key(t))
    after = tp.feedback_grads(net, w, V, x, jax.random.key(0), cfg).layer_losses
    # Both maps compress (stride 2; 10 outputs for a 2×2×6 map), so the loss cannot reach 0,
    # but every layer's reconstruction improves clearly.
    assert np.all(np.asarray(after) < 0.7 * np.asarray(before)), (before, after)
    taus = tp.targets(net, w, V, x, y, 0.1, cfg)
    assert [t.shape[1:] for t in taus] == [g.out_shape for g in geo]


def test_dtp_target_with_exact_inverse_feedback_maps_onto_the_layer_target():
    """1×1 linear conv with an invertible kernel: g = exact inverse, so μ_l(τ_{l-1}) = τ_l."""
    net, w, geo, _ = _cnn("sp", activation="linear", image=(1, 5, 5), width=4, depth=2, kernel=1, downsample=0)
    a = net.multipliers[1]
    K = np.asarray(w[1][0, 0], np.float64)  # (C_in, C_out): u ↦ a u K per pixel
    V = jnp.asarray(np.linalg.inv(a * K).T[None, None], jnp.float32)  # adjoint: h ↦ h (aK)^-1
    rng = np.random.default_rng(5)
    h1 = jnp.asarray(rng.standard_normal((3, 5, 5, 4)), jnp.float32)
    h2 = predict(net, w, 1, h1)
    tau2 = h2 + 0.3 * jnp.asarray(rng.standard_normal(h2.shape), jnp.float32)
    tau1 = h1 + tp.g(net, V, 1.0, tau2, 1) - tp.g(net, V, 1.0, h2, 1)
    np.testing.assert_allclose(predict(net, w, 1, tau1), tau2, rtol=1e-4, atol=1e-4)


def _cell(algorithm, param, width=8, **kw):
    return CellSpec(algorithm, param, width, 2, "tanh", False, 64, 10, batch_size=32, architecture="cnn",
                    image_shape=(1, 8, 8), **kw)


@pytest.mark.parametrize("algorithm,param,acc", [("bp", "mupc", 0.5), ("pc", "mupc", 0.5), ("tp", "tp_mup", 0.2),
                                                 ("dtp", "tp_mup", 0.2)])
def test_every_algorithm_trains_a_cnn_in_the_grid_trainer(digits_small, algorithm, param, acc):
    # 60 steps of a width-8 CNN: TP/DTP learn more slowly than PC/BP here (chance is 0.1).
    res = train_cell(_cell(algorithm, param), digits_small, [1e-1, 1e4], [0.5, 0.5], [0, 0],
                     TrainOptions(max_steps=60, log_every=5))
    assert list(res.runs["status"]) == ["ok", "diverged"]
    loss = res.curves["train_loss"][0]
    assert np.nanmin(loss[-4:]) < 0.8 * loss[0]
    assert res.runs["best_test_acc"][0] > acc


def test_cnn_runs_in_a_grid_equal_runs_trained_alone(digits_small):
    cell = _cell("dtp", "tp_mup")
    etas, betas, seeds = [1e-2, 3e-2, 1e-2], [0.1, 0.3, 0.3], [0, 1, 1]
    opts = TrainOptions(max_steps=12, log_every=1)
    grid = train_cell(cell, digits_small, etas, betas, seeds, opts)
    for i in range(3):
        alone = train_cell(cell, digits_small, [etas[i]], [betas[i]], [seeds[i]], opts)
        np.testing.assert_allclose(grid.curves["train_loss"][i], alone.curves["train_loss"][0], rtol=2e-4)


def test_cnn_cell_needs_a_matching_image_shape(digits_small):
    with pytest.raises(ValueError, match="image_shape"):
        model_for(_cell("pc", "mupc")._replace(image_shape=(1, 28, 28)))
    with pytest.raises(ValueError, match="architecture"):
        model_for(_cell("pc", "mupc")._replace(architecture="transformer"))


def test_map_and_vmap_over_runs_give_the_same_numbers(digits_small):
    cell = _cell("pc", "mupc")
    runs = ([1e-2, 3e-2, 1e5], [0.1, 0.3, 0.3], [0, 1, 1])
    out = {b: train_cell(cell, digits_small, *runs, TrainOptions(max_steps=10, log_every=1, run_batching=b))
           for b in ("map", "vmap")}
    # float32 sums in another order, amplified a little by Adam over 10 steps
    np.testing.assert_allclose(out["map"].curves["train_loss"], out["vmap"].curves["train_loss"], rtol=1e-3)
    assert list(out["map"].runs["status"]) == list(out["vmap"].runs["status"]) == ["ok", "ok", "diverged"]
    with pytest.raises(ValueError, match="run_batching"):
        train_cell(cell, digits_small, [0.1], [0.1], [0], TrainOptions(max_steps=2, run_batching="pmap"))


def test_unknown_conv_implementation_is_refused(monkeypatch):
    from mutransfer.networks import conv_impl

    monkeypatch.setenv(CONV_IMPL_ENV, "cudnn")
    with pytest.raises(ValueError, match=CONV_IMPL_ENV):
        conv_impl()


def test_residual_cnn_trains_with_mupc(digits_small):
    # 8×8 → stride 2 → 4×4, then two stride-1 convs with skips (μPC's 1/√(fan_in·L) multipliers).
    cell = CellSpec("pc", "mupc", 8, 3, "tanh", True, 64, 10, batch_size=32, architecture="cnn",
                    downsample_layers=1, image_shape=(1, 8, 8))
    m = model_for(cell)
    assert [m.net.skip(i) for i in range(4)] == [False, True, True, False]
    assert m.net.multipliers[1] == pytest.approx(1 / math.sqrt(9 * 8 * 4))
    res = train_cell(cell, digits_small, [1e-1], [0.5], [0], TrainOptions(max_steps=60, log_every=5))
    assert res.runs["status"][0] == "ok" and res.runs["best_test_acc"][0] > 0.5
