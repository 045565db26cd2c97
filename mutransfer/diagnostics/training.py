"""Small training loops for the diagnostics: data as (x, labels), nets built from a
parameterisation, and a few optimiser steps of one net on fixed-order mini-batches (the grid
trainer is for sweeps)."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from mutransfer import algorithms, optim
from mutransfer.networks import Net, Weights, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.pc import PCConfig

Array = jax.Array


def _synthetic(seed: int, n: int, input_dim: int, output_dim: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, input_dim)).astype(np.float32)
    return x, rng.integers(0, output_dim, n).astype(np.int32)


def _as_xy(data, *, seed: int, input_dim: int, output_dim: int,
           num_examples: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(x float32 (n, D), integer labels (n,), C) from a Dataset, an (x, y) tuple (labels or
    one-hot), a dataset name, or None (Gaussian inputs, uniform random labels)."""
    if data is None or (isinstance(data, str) and data == "synthetic"):
        x, y = _synthetic(seed, num_examples, input_dim, output_dim)
        return x, y, output_dim
    if isinstance(data, str):
        from mutransfer.data import load_dataset

        data = load_dataset(data, train_examples=num_examples, test_examples=1)
    if hasattr(data, "x_train"):
        return np.asarray(data.x_train, np.float32), np.asarray(data.y_train), int(data.num_classes)
    x, y = data
    x, y = np.asarray(x, np.float32), np.asarray(y)
    if y.ndim == 2:
        return x, np.argmax(y, axis=1).astype(np.int32), int(y.shape[1])
    return x, y.astype(np.int32), max(int(y.max()) + 1, output_dim)


def _build(parametrization: str, *, input_dim: int, width: int, depth: int, output_dim: int, activation: str,
           residual: bool, seed: int, base_width: int | None = None, base_depth: int | None = None,
           dtype=jnp.float32) -> tuple[Net, Weights, tuple[float, ...]]:
    layers = resolve(parametrization, input_dim=input_dim, width=width, hidden_layers=depth, output_dim=output_dim,
                     residual=residual, base_width=base_width, base_hidden_layers=base_depth)
    net = make_net(activation, residual, layers)
    w = init_weights(jax.random.key(seed), layer_dims(input_dim, width, depth, output_dim),
                     [p.init_std for p in layers], dtype)
    return net, w, tuple(p.lr_mult for p in layers)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _train_step(net: Net, cfg: PCConfig, algorithm: str, optimizer: str, lr_mults: tuple[float, ...],
                weights, opt_state, x, y, eta, beta):
    out = algorithms.get(algorithm).gradients(net, weights, x, y, beta, cfg)
    updates, opt_state = optim.direction(optimizer).update(out.grads, opt_state, weights)
    return optim.apply(weights, updates, eta, lr_mults), opt_state, out.train_loss


class _Trainer:
    """A few optimiser steps of one net on fixed-order mini-batches (what the diagnostics need;
    the grid trainer is for sweeps). Batch t is rows perm[t·B:(t+1)·B] of a seeded permutation."""

    def __init__(self, net: Net, weights: Weights, lr_mults: tuple[float, ...], x: np.ndarray, labels: np.ndarray,
                 C: int, *, algorithm: str, cfg: PCConfig, eta: float, beta: float, batch_size: int, seed: int,
                 optimizer: str = "adam"):
        self.net, self.weights, self.lr_mults, self.cfg = net, list(weights), lr_mults, cfg
        self.algorithm, self.optimizer = algorithm, optimizer
        self.opt_state = optim.direction(optimizer).init(self.weights)
        self.x, self.labels, self.C = x, labels, C
        self.eta, self.beta, self.batch_size = eta, beta, batch_size
        self.rng = np.random.default_rng(seed + 7919)
        self.perm = self.rng.permutation(x.shape[0])
        self.pos = 0
        self.step = 0

    def batch(self) -> tuple[Array, Array]:
        if self.pos + self.batch_size > self.perm.size:
            self.perm, self.pos = self.rng.permutation(self.x.shape[0]), 0
        idx = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        dtype = self.weights[0].dtype
        return (jnp.asarray(self.x[idx], dtype),
                jax.nn.one_hot(jnp.asarray(self.labels[idx]), self.C, dtype=dtype))

    def train(self, steps: int) -> float:
        loss = math.nan
        for _ in range(steps):
            xb, yb = self.batch()
            self.weights, self.opt_state, l = _train_step(
                self.net, self.cfg, self.algorithm, self.optimizer, self.lr_mults, self.weights, self.opt_state,
                xb, yb, self.eta, self.beta)
            loss = float(l)
            self.step += 1
        return loss
