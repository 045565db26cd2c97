"""Target propagation (docs/reference/algorithms.md#target-propagation): DTP with exact inverses
gives Gauss–Newton targets, the forward
update is local, feedback training learns inverses, DTP trains, and bad settings fail loudly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer import optim, tp
from mutransfer.networks import Net, forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve


def _sp_net(activation, width, hidden, d_in, d_out, residual=False):
    layers = resolve("sp", input_dim=d_in, width=width, hidden_layers=hidden, output_dim=d_out,
                     residual=residual)
    return make_net(activation, residual, layers), layer_dims(d_in, width, hidden, d_out), layers


def _invertible_chain(n=6, depth=4, seed=0):
    """Linear square net (D = N = C = n), well-conditioned W_l, multipliers 1, and V_l = W_l⁻¹ so
    that g_l = μ_l⁻¹ exactly."""
    rng = np.random.default_rng(seed)
    Ws = [np.eye(n) + 0.3 * rng.standard_normal((n, n)) / np.sqrt(n) for _ in range(depth)]
    Vs = [np.linalg.inv(W) for W in Ws[1:]]
    net = Net("linear", False, (1.0,) * depth)
    x = rng.standard_normal((5, n))
    y = np.eye(n)[rng.integers(0, n, 5)]
    f32 = lambda a: [jnp.asarray(v, jnp.float32) for v in a]
    return net, f32(Ws), f32(Vs), jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_dtp_with_exact_inverses_gives_gauss_newton_targets(loss):
    net, W, V, x, y = _invertible_chain()
    cfg = tp.TPConfig("dtp", loss, 0.0, 1, (1.0,) * 3)
    beta = 0.7
    taus = tp.targets(net, W, V, x, y, beta, cfg)
    gn = tp.gauss_newton_targets(net, W, x, taus[-1])
    # the closed form of the output target
    f = forward(net, W, x)[-1]
    dl = (f - y) if loss == "mse" else (jax.nn.softmax(f) - y)
    np.testing.assert_allclose(taus[-1], f - beta * dl, atol=1e-6)
    for t, t_gn in zip(taus, gn):
        np.testing.assert_allclose(t, t_gn, atol=1e-5)
    # and layer by layer: τ_{l-1} = h_{l-1} + J_l⁻¹ (τ_l − h_l), J_l = a_l W_l
    hs = forward(net, W, x)
    for j in range(1, net.depth):
        step = np.linalg.solve(np.asarray(W[j], np.float64), np.asarray(taus[j] - hs[j], np.float64).T).T
        np.testing.assert_allclose(taus[j - 1] - hs[j - 1], step, atol=1e-5)


def test_tp_equals_dtp_with_exact_inverses_and_propagates_the_output_correction():
    net, W, V, x, y = _invertible_chain(seed=1)
    dtp = tp.targets(net, W, V, x, y, 0.5, tp.TPConfig("dtp", "mse", 0.0))
    plain = tp.targets(net, W, V, x, y, 0.5, tp.TPConfig("tp", "mse", 0.0))
    for a, b in zip(dtp, plain):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # the target differences, pushed forward through the (linear) layers, reproduce the output
    # correction exactly: μ_L(...μ_{l+1}(τ_l)) = τ_L
    hs = forward(net, W, x)
    for j in range(net.depth - 1):
        z = dtp[j]
        for m in range(j + 1, net.depth):
            z = z @ W[m].T
        np.testing.assert_allclose(z, dtp[-1], atol=1e-5)
        assert float(jnp.max(jnp.abs(dtp[j] - hs[j]))) > 1e-3  # non-trivial correction


def test_dtp_corrects_imperfect_inverses_and_tp_does_not():
    """With slightly wrong feedback, DTP's difference correction keeps τ = h at β_out = 0; TP's
    targets are off by the reconstruction error."""
    net, W, V, x, y = _invertible_chain(seed=2)
    V = [v + 0.05 for v in V]
    hs = forward(net, W, x)
    dtp = tp.targets(net, W, V, x, y, 0.0, tp.TPConfig("dtp", "mse", 0.0))
    plain = tp.targets(net, W, V, x, y, 0.0, tp.TPConfig("tp", "mse", 0.0))
    for j in range(net.depth):
        np.testing.assert_allclose(dtp[j], hs[j], atol=1e-5)
    assert float(jnp.max(jnp.abs(plain[0] - hs[0]))) > 1e-2


def test_reconstruction_loss_decreases_under_feedback_training():
    net, dims, layers = _sp_net("tanh", 32, 2, 16, 8)
    kw, kv, kx, kn = jax.random.split(jax.random.key(0), 4)
    W = init_weights(kw, dims, [p.init_std for p in layers])
    V = tp.init_feedback(kv, dims, tp.feedback_params(dims))
    x = jax.random.normal(kx, (64, 16))
    cfg = tp.TPConfig("dtp", "mse", 0.1, 1)
    @jax.jit
    def train(V):
        evaluate = lambda V: tp.feedback_grads(net, W, V, x, jax.random.key(99), cfg).loss

        def body(V, key):
            out = tp.feedback_grads(net, W, V, x, key, cfg)
            return [v - 0.02 * gv for v, gv in zip(V, out.grads)], out.layer_losses
        first = evaluate(V)
        V, per_layer = jax.lax.scan(body, V, jax.random.split(kn, 40))
        return first, evaluate(V), per_layer

    first, last, per_layer = (np.asarray(a) for a in train(V))
    assert per_layer.shape == (40, 2)
    assert np.isfinite(last) and last < 0.75 * first, (first, last)


def test_feedback_grads_only_touch_V_and_match_autodiff():
    net, dims, layers = _sp_net("tanh", 8, 2, 5, 3)
    kw, kv, kx = jax.random.split(jax.random.key(3), 3)
    W = init_weights(kw, dims, [p.init_std for p in layers])
    V = tp.init_feedback(kv, dims, [0.4, 0.5])
    assert [v.shape for v in V] == [(8, 8), (8, 3)]
    x = jax.random.normal(kx, (7, 5))
    cfg = tp.TPConfig("tp", "mse", 0.0, 1, (0.9, 1.3))
    hs = forward(net, W, x)

    def by_hand(V):
        total = 0.0
        for i, (b, c) in enumerate(zip((0.9, 1.3), hs[:-1])):
            up = 1.0 * jnp.tanh(c) @ W[i + 1].T
            rec = b * jnp.tanh(up) @ V[i].T
            total += 0.5 * jnp.mean(jnp.sum((rec - c) ** 2, -1))
        return total

    out = jax.jit(lambda V: tp.feedback_grads(net, W, V, x, jax.random.key(0), cfg))(V)
    val, ref = jax.jit(jax.value_and_grad(by_hand))(V)
    np.testing.assert_allclose(out.loss, val, rtol=1e-5)
    for a, b in zip(out.grads, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_forward_grads_are_local_and_match_the_hand_computed_local_gradient():
    net, dims, layers = _sp_net("tanh", 6, 2, 4, 3)
    kw, kv, kx, ky = jax.random.split(jax.random.key(1), 4)
    W = init_weights(kw, dims, [p.init_std for p in layers])
    V = tp.init_feedback(kv, dims, tp.feedback_params(dims))
    x = jax.random.normal(kx, (5, 4))
    y = jax.nn.one_hot(jax.random.randint(ky, (5,), 0, 3), 3)
    cfg = tp.TPConfig("dtp", "mse", 0.0)

    @jax.jit
    def compute(W):
        taus = tp.targets(net, W, V, x, y, 0.3, cfg)
        grads = tp.forward_grads(net, W, x, taus)
        hs = forward(net, W, x)
        # the same loss differentiated end to end through the forward pass
        chain = jax.grad(lambda w: sum(0.5 * jnp.mean(jnp.sum((t - h) ** 2, -1))
                                       for t, h in zip(taus, forward(net, w, x))))(W)
        # locality with the layer inputs held fixed: perturb W_1, W_2 and the lower targets
        layer_inputs = [x] + list(hs[:-1])
        _, g0 = tp.local_grads(net, W, layer_inputs, taus)
        W2 = [W[0] * 3.0 + 1.0, -W[1], W[2]]
        taus2 = [taus[0] + 5.0, taus[1] * -2.0, taus[2]]
        _, g1 = tp.local_grads(net, W2, layer_inputs, taus2)
        return taus, grads, hs, chain, g0, g1

    taus, grads, hs, chain, g0, g1 = compute(W)
    inputs = [x, jnp.tanh(hs[0]), jnp.tanh(hs[1])]
    for l in range(3):
        # ∂/∂W_l of mean_b ½‖τ_l − a_l W_l φ(h_{l-1})‖² = −(a_l/B) (τ_l − h_l)ᵀ φ(h_{l-1})
        by_hand = -(layers[l].multiplier / 5) * np.asarray(taus[l] - hs[l]).T @ np.asarray(inputs[l])
        np.testing.assert_allclose(grads[l], by_hand, rtol=1e-4, atol=1e-6)
    # Not the end-to-end gradient: differentiating through the forward pass would send layer 2's
    # and 3's errors into W_1; the top layer's gradients agree.
    assert float(jnp.max(jnp.abs(chain[0] - grads[0]))) > 1e-4
    np.testing.assert_allclose(chain[2], grads[2], rtol=1e-5, atol=1e-7)
    # Layer 3's gradient ignores W_1, W_2 and the other layers' targets (W_1's does not).
    np.testing.assert_allclose(g1[2], g0[2], rtol=1e-6)
    assert float(jnp.max(jnp.abs(g1[0] - g0[0]))) > 1e-3
    # forward_grads never differentiates through h_{l-1}: it is the local gradient at the forward
    # activities.
    for a, b in zip(grads, g0):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_output_layer_gradient_is_beta_times_backprop_for_mse():
    net, dims, layers = _sp_net("tanh", 6, 2, 4, 3)
    W = init_weights(jax.random.key(5), dims, [p.init_std for p in layers])
    V = tp.init_feedback(jax.random.key(6), dims, tp.feedback_params(dims))
    x = jax.random.normal(jax.random.key(7), (9, 4))
    y = jax.nn.one_hot(jnp.arange(9) % 3, 3)
    beta = 0.25
    out = jax.jit(lambda W: tp.step(net, W, V, x, y, beta, jax.random.key(0), tp.TPConfig("dtp", "mse", 0.1)))(W)
    bp = jax.jit(jax.grad(lambda w: jnp.mean(0.5 * jnp.sum((y - forward(net, w, x)[-1]) ** 2, -1))))(W)
    np.testing.assert_allclose(out.grads[-1], beta * bp[-1], rtol=1e-4, atol=1e-7)
    f = forward(net, W, x)[-1]
    np.testing.assert_allclose(out.train_loss, jnp.mean(0.5 * jnp.sum((y - f) ** 2, -1)), rtol=1e-6)
    so = out.stepout()
    assert so.energy_start == out.target_loss and so.energy_end == out.reconstruction_loss


def test_dtp_training_reduces_the_loss(digits):
    net, dims, layers = _sp_net("tanh", 64, 2, 64, 10)
    cfg = tp.TPConfig("dtp", "mse", 0.1, 2)
    kw, kv = jax.random.split(jax.random.key(0))
    W = init_weights(kw, dims, [p.init_std for p in layers])
    V = tp.init_feedback(kv, dims, tp.feedback_params(dims))
    tx = optim.direction("adam")
    ow, ov = tx.init(W), tx.init(V)
    X, Y = jnp.asarray(digits.x_train), jax.nn.one_hot(digits.y_train, 10)

    @jax.jit
    def train(W, V, ow, ov, idx, keys):
        def body(carry, inp):
            W, V, ow, ov = carry
            i, k = inp
            out, V, ov = tp.train_step(net, W, V, ov, X[i], Y[i], 0.5, k, cfg, tx, 1e-3)
            u, ow = tx.update(out.grads, ow, W)
            W = optim.apply(W, u, 1e-3, [p.lr_mult for p in layers])
            return (W, V, ow, ov), out.train_loss
        return jax.lax.scan(body, (W, V, ow, ov), (idx, keys))

    idx = jnp.asarray(np.random.default_rng(0).integers(0, X.shape[0], (100, 64)))
    _, curve = train(W, V, ow, ov, idx, jax.random.split(jax.random.key(1), 100))
    curve = np.asarray(curve)
    assert np.all(np.isfinite(curve))
    assert curve[-10:].mean() < 0.5 * curve[:10].mean(), curve


def test_train_step_runs_feedback_before_forward():
    """The forward gradient of train_step uses the V after its k feedback updates."""
    net, dims, layers = _sp_net("tanh", 8, 2, 5, 3)
    W = init_weights(jax.random.key(0), dims, [p.init_std for p in layers])
    V = tp.init_feedback(jax.random.key(1), dims, tp.feedback_params(dims))
    x = jax.random.normal(jax.random.key(2), (6, 5))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    cfg = tp.TPConfig("tp", "mse", 0.1, 3)
    tx = optim.direction("sgd")
    key = jax.random.key(4)
    out, V_new, _ = jax.jit(lambda V: tp.train_step(net, W, V, tx.init(V), x, y, 0.5, key, cfg, tx, 0.05))(V)

    @jax.jit
    def replay(Vh):
        """three SGD feedback steps with the same keys, then targets + forward grads"""
        first = None
        for k in jax.random.split(key, 3):
            fb = tp.feedback_grads(net, W, Vh, x, k, cfg)
            first = fb.loss if first is None else first
            Vh = [v - 0.05 * gv for v, gv in zip(Vh, fb.grads)]
        return first, Vh, tp.forward_grads(net, W, x, tp.targets(net, W, Vh, x, y, 0.5, cfg))

    first, Vh, ref = replay(V)
    np.testing.assert_allclose(out.reconstruction_loss, first, rtol=1e-6)
    for a, b in zip(V_new, Vh):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(out.grads, ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_step_vmaps_over_runs():
    net, dims, layers = _sp_net("tanh", 8, 2, 5, 3)
    W = init_weights(jax.random.key(0), dims, [p.init_std for p in layers])
    V = tp.init_feedback(jax.random.key(1), dims, tp.feedback_params(dims))
    x = jax.random.normal(jax.random.key(2), (6, 5))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    cfg = tp.TPConfig("dtp", "cross_entropy", 0.1)
    betas = jnp.asarray([0.1, 1.0])
    keys = jax.random.split(jax.random.key(3), 2)
    one_run = jax.jit(lambda b, k: tp.step(net, W, V, x, y, b, k, cfg))
    out = jax.vmap(one_run)(betas, keys)
    one = one_run(betas[1], keys[1])
    np.testing.assert_allclose(out.grads[0][1], one.grads[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.reconstruction_loss[1], one.reconstruction_loss, rtol=1e-6)


def test_huge_step_sizes_give_non_finite_loss_not_an_exception():
    net, dims, layers = _sp_net("tanh", 8, 2, 5, 3)
    W = init_weights(jax.random.key(0), dims, [p.init_std for p in layers])
    V = tp.init_feedback(jax.random.key(1), dims, tp.feedback_params(dims))
    x = jax.random.normal(jax.random.key(2), (6, 5))
    y = jax.nn.one_hot(jnp.arange(6) % 3, 3)
    cfg = tp.TPConfig("dtp", "mse", 0.1)
    step = jax.jit(lambda W, b: tp.step(net, W, V, x, y, b, jax.random.key(0), cfg))
    # huge β_out: the target loss overflows
    out = step(W, 1e30)
    assert not np.isfinite(float(out.target_loss))
    # huge lr (plain SGD on the forward weights): the next forward pass is non-finite
    Wb = W
    for _ in range(3):
        out = step(Wb, 1e30)
        Wb = [w - 1e30 * gw for w, gw in zip(Wb, out.grads)]
    assert not np.isfinite(float(step(Wb, 1.0).train_loss))


def test_invalid_settings_raise():
    net, dims, layers = _sp_net("tanh", 8, 2, 5, 3, residual=True)
    W = init_weights(jax.random.key(0), dims, [p.init_std for p in layers])
    V = tp.init_feedback(jax.random.key(1), dims, tp.feedback_params(dims))
    x = jnp.ones((2, 5))
    y = jax.nn.one_hot(jnp.arange(2), 3)
    with pytest.raises(ValueError, match="residual"):
        tp.step(net, W, V, x, y, 0.5, jax.random.key(0), tp.TPConfig())
    plain = net._replace(residual=False)
    with pytest.raises(ValueError, match="feedback_noise"):
        tp.step(plain, W, V, x, y, 0.5, jax.random.key(0), tp.TPConfig(feedback_noise=-0.1))
    with pytest.raises(ValueError, match="feedback_steps"):
        tp.targets(plain, W, V, x, y, 0.5, tp.TPConfig(feedback_steps=0))
    with pytest.raises(ValueError, match="variant"):
        tp.targets(plain, W, V, x, y, 0.5, tp.TPConfig(variant="ftp"))
    with pytest.raises(ValueError, match="feedback_multipliers"):
        tp.targets(plain, W, V, x, y, 0.5, tp.TPConfig(feedback_multipliers=(1.0,)))
    with pytest.raises(ValueError, match="activation"):
        tp.gauss_newton_targets(plain, W, x, y)
