"""Predictive coding (PC / μPC), docs/reference/algorithms.md#predictive-coding.

Energy (batch mean; input clamped to x, output clamped to y)::

    F(z, W) = (1/B) Σ_batch [ Σ_{l=1..H} ½‖z_l − μ_l(z_{l-1})‖²  +  γ_L · ℓ(y, a_L W_L φ(z_H)) ]

with ℓ = ½‖·‖² (``mse``) or cross-entropy. The activity learning rate β multiplies the gradient
of this *batch-mean* energy, so β is in the μPC paper's units (its grid runs 1e-2 … 1e3).

One training step: activities from the forward pass, T steps of gradient descent on z with step
β, then ∇_W F at the final activities (the optimiser is applied by the caller).

Depth as a scan (MLPs, ``net.scanned``; see :mod:`mutransfer.networks`): the step keeps the free
activities stacked, Z = [z_1; ...; z_H] (H, B, N), and the hidden weights stacked, Wh (H − 1, N, N).
Given Z the hidden layers' errors are independent, so the energy, its activity gradient (every
inference step) and its weight gradient are batched products over the layer axis
(:func:`energy_stacked`) and the forward pass is a ``lax.scan``: the compiled program does not grow
with H. The public functions keep the list layouts ([z_1, ..., z_H], [W_1, ..., W_L]) and give the
unrolled loop's numbers (tests/test_depth_scan.py).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import losses
from mutransfer.networks import (Net, Stacked, Weights, as_stacked, first_layer, forward, forward_stacked,
                                 hidden_predictions, join_hidden, join_weights, linear, linear_split, make_net,
                                 predict, split_hidden, split_weights)
from mutransfer.parametrization import resolve

Array = jax.Array


class PCConfig(NamedTuple):
    """Static PC settings. ``output_precision`` is γ_L (already resolved for the width)."""

    inference_steps: int
    loss: str = "mse"
    output_precision: float = 1.0


def output_precision(gamma_prime: float, exponent: float, width: int) -> float:
    """γ_L = γ′ · N^(−γ̄_L) (Ishikawa et al.); γ̄_L = 0 → first-order GD limit, −1 → Gauss–Newton-like."""
    return float(gamma_prime) * float(width) ** (-float(exponent))


def energy(net: Net, weights: Weights, hidden: Sequence[Array], x: Array, y: Array, cfg: PCConfig,
           mu1: Array | None = None) -> Array:
    """Batch-mean energy F at free activities ``hidden`` = [z_1, ..., z_H].

    ``mu1`` (= a_1 W_1 x) may be passed in: it does not depend on the activities, so inference
    computes it once instead of every step. Activities may be vectors (B, N) or feature maps
    (B, H, W, C); the squared errors sum over every non-batch axis.
    """
    if net.scanned:
        return energy_stacked(net, split_weights(weights), jnp.stack(list(hidden)), x, y, cfg, mu1)
    if mu1 is None:
        mu1 = first_layer(net, weights, x)
    sq = 0.5 * jnp.sum((hidden[0] - mu1) ** 2)
    for layer in range(1, net.depth - 1):
        sq = sq + 0.5 * jnp.sum((hidden[layer] - predict(net, weights, layer, hidden[layer - 1])) ** 2)
    f = predict(net, weights, net.depth - 1, hidden[-1])
    batch = x.shape[0]
    return sq / batch + cfg.output_precision * losses.batch_loss(cfg.loss, f, y)


def energy_stacked(net: Net, stacked: Stacked, Z: Array, x: Array, y: Array, cfg: PCConfig,
                   mu1: Array | None = None) -> Array:
    """:func:`energy` of an MLP with stacked weights and activities Z (H, B, N): the H − 1 hidden
    errors z_l − μ_l(z_{l-1}) as one batched product over the layer axis."""
    if mu1 is None:
        mu1 = linear_split(stacked.first, net.multipliers[0], x, net.dot_pieces, net.gemm)
    sq = 0.5 * jnp.sum((Z[0] - mu1) ** 2)
    sq = sq + 0.5 * jnp.sum((Z[1:] - hidden_predictions(net, stacked.hidden, Z[:-1])) ** 2)
    f = linear(stacked.last, net.multipliers[-1], net.phi(Z[-1]))
    return sq / x.shape[0] + cfg.output_precision * losses.batch_loss(cfg.loss, f, y)


def infer(net: Net, weights: Weights, x: Array, y: Array, cfg: PCConfig, beta: Array | float,
          hidden: Sequence[Array], mu1: Array) -> list[Array]:
    """T steps of z ← z − β ∇_z F from ``hidden``; returns the final activities."""
    if net.scanned:
        Z = infer_stacked(net, split_weights(weights), x, y, cfg, beta, jnp.stack(list(hidden)), mu1)
        return [Z[i] for i in range(Z.shape[0])]
    grad_z = jax.grad(lambda zs: energy(net, weights, zs, x, y, cfg, mu1))

    def body(_, zs):
        g = grad_z(zs)
        return [z - beta * gz for z, gz in zip(zs, g)]

    return jax.lax.fori_loop(0, cfg.inference_steps, body, list(hidden))


def infer_stacked(net: Net, stacked: Stacked, x: Array, y: Array, cfg: PCConfig, beta: Array | float,
                  Z: Array, mu1: Array) -> Array:
    """:func:`infer` on stacked activities Z (H, B, N)."""
    grad_z = jax.grad(lambda Zc: energy_stacked(net, stacked, Zc, x, y, cfg, mu1))
    return jax.lax.fori_loop(0, cfg.inference_steps, lambda _, Zc: Zc - beta * grad_z(Zc), Z)


class StepOut(NamedTuple):
    grads: Weights
    train_loss: Array  # loss of the forward pass before inference (the paper's training loss)
    energy_start: Array
    energy_end: Array


def gradients(net: Net, weights: Weights, x: Array, y: Array, beta: Array | float,
              cfg: PCConfig) -> StepOut:
    """One PC step's weight gradients ∇_W F at the inference equilibrium (T steps), plus metrics.
    ``weights`` may be :class:`~mutransfer.networks.Stacked` (scanned nets); the gradients have
    the layout of ``weights``."""
    if net.scanned or isinstance(weights, Stacked):
        return _gradients_stacked(net, weights, x, y, beta, cfg)
    zs = forward(net, weights, x)
    hidden, f = zs[:-1], zs[-1]
    train_loss = losses.batch_loss(cfg.loss, f, y)
    # Forward-initialised activities have zero hidden errors: F starts at γ_L · loss.
    energy_start = cfg.output_precision * train_loss
    hidden = infer(net, weights, x, y, cfg, beta, hidden, zs[0])
    energy_end, grads = jax.value_and_grad(lambda w: energy(net, w, hidden, x, y, cfg))(weights)
    return StepOut(grads, train_loss, energy_start, energy_end)


def _gradients_stacked(net: Net, weights: Weights, x: Array, y: Array, beta: Array | float,
                       cfg: PCConfig) -> StepOut:
    """:func:`gradients` with the hidden layers stacked; gradients in the layout of ``weights``."""
    stacked = as_stacked(weights)
    Z, f = forward_stacked(net, stacked, x)
    train_loss = losses.batch_loss(cfg.loss, f, y)
    energy_start = cfg.output_precision * train_loss
    # The hidden weights sliced into the product pieces once here, not in every inference step.
    work = stacked._replace(hidden=split_hidden(net, stacked.hidden, x.shape[0]))
    Z = infer_stacked(net, work, x, y, cfg, beta, Z, Z[0])
    energy_end, g = jax.value_and_grad(lambda s: energy_stacked(net, s, Z, x, y, cfg))(work)
    g = g._replace(hidden=join_hidden(g.hidden))
    return StepOut(g if isinstance(weights, Stacked) else join_weights(g), train_loss, energy_start, energy_end)


def reference_step(weights: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, *, parametrization: str,
                   activation: str, residual: bool, beta: float, steps: int, loss: str = "mse",
                   output_precision: float = 1.0, gemm: str = "xla") -> dict:
    """One PC step on explicit weights, for checking against other implementations.

    ``weights``: list of (fan_out, fan_in) arrays [W_1, ..., W_L]; ``x`` (B, D); ``y`` (B, C) one-hot.
    Returns ``energy_start``, ``energy_end`` (floats), ``activities`` and ``weight_grads`` (list
    like weights). ``activities`` follows the μPC authors' library (jpc): the final free activities
    [z_1, ..., z_H] followed by the output layer's activity, which inference never updates because
    the energy clamps the output to y — it holds the forward prediction f(x).
    """
    weights = [jnp.asarray(w, jnp.float32) for w in weights]
    x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
    width, input_dim = weights[0].shape
    layers = resolve(parametrization, input_dim=input_dim, width=width, hidden_layers=len(weights) - 1,
                     output_dim=weights[-1].shape[0], residual=residual)
    net = make_net(activation, residual, layers)._replace(gemm=gemm)  # "blas": mutransfer/cpu_gemm.py
    cfg = PCConfig(inference_steps=steps, loss=loss, output_precision=output_precision)
    zs = forward(net, weights, x)
    e0 = energy(net, weights, zs[:-1], x, y, cfg)
    hidden = infer(net, weights, x, y, cfg, beta, zs[:-1], zs[0])
    e1, grads = jax.value_and_grad(lambda w: energy(net, w, hidden, x, y, cfg))(weights)
    return {
        "energy_start": float(e0),
        "energy_end": float(e1),
        "activities": [np.asarray(z) for z in hidden] + [np.asarray(zs[-1])],
        "weight_grads": [np.asarray(g) for g in grads],
    }
