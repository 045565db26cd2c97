"""PC inference on a linear residual net converges to the analytical equilibrium z* = H_z⁻¹ b."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mutransfer.networks import forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig, energy, infer


def closed_form(weights, mults, x, y, gamma):
    """Per-example Hessian over (z_1..z_H) and linear term b of the (per-example) energy
    ½‖z_1 − a_1W_1x‖² + Σ_l ½‖z_l − A_l z_{l-1}‖² + γ/2‖y − M z_H‖², A_l = I + a_lW_l, M = a_LW_L."""
    H = len(weights) - 1
    N = weights[0].shape[0]
    A = [np.eye(N) + mults[l] * weights[l] for l in range(1, H)]
    M = mults[H] * weights[H]
    Hz = np.zeros((H * N, H * N))
    for l in range(H):
        blk = slice(l * N, (l + 1) * N)
        Hz[blk, blk] += np.eye(N)
        if l < H - 1:
            nxt = slice((l + 1) * N, (l + 2) * N)
            Hz[blk, blk] += A[l].T @ A[l]
            Hz[blk, nxt] -= A[l].T
            Hz[nxt, blk] -= A[l]
    Hz[-N:, -N:] += gamma * M.T @ M
    b = np.zeros((x.shape[0], H * N))
    b[:, :N] = mults[0] * x @ weights[0].T
    b[:, -N:] += gamma * y @ M
    return Hz, b


@pytest.mark.parametrize("param", ["mupc", "sp"])
def test_inference_converges_to_analytical_solution(param):
    D, N, H, C, B = 6, 8, 3, 4, 5
    layers = resolve(param, input_dim=D, width=N, hidden_layers=H, output_dim=C, residual=True)
    net = make_net("linear", True, layers)
    w = init_weights(jax.random.key(3), layer_dims(D, N, H, C), [p.init_std for p in layers])
    x = jax.random.normal(jax.random.key(1), (B, D))
    y = jax.nn.one_hot(jnp.arange(B) % C, C)
    cfg = PCConfig(inference_steps=4000, output_precision=1.0)
    Hz, b = closed_form([np.asarray(v, np.float64) for v in w], net.multipliers, np.asarray(x, np.float64),
                        np.asarray(y, np.float64), 1.0)
    eig = np.linalg.eigvalsh(Hz)
    assert eig.min() > 0  # linear-net energy is strictly convex in z
    z_star = np.linalg.solve(Hz, b.T).T  # (B, H*N)
    # The gradient of the batch-mean energy is (H z − b)/B, so β·λ/B must stay below 2.
    beta = 1.0 * B / eig.max()
    zs0 = forward(net, w, x)[:-1]
    zs = infer(net, w, x, y, cfg, beta, zs0, zs0[0])
    got = np.concatenate([np.asarray(z) for z in zs], axis=1)
    scale = np.abs(z_star).max()
    assert np.abs(got - z_star).max() <= 1e-4 * max(scale, 1.0)
    # ∇_z F vanishes there, and the closed form's energy equals F at z*.
    g = jax.grad(lambda z: energy(net, w, z, x, y, cfg))(zs)
    assert max(float(jnp.abs(gi).max()) for gi in g) < 1e-4
