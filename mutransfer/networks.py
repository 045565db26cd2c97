"""Fully connected networks (SPEC §2) as pure functions of a list of weight matrices.

Weights are a list ``[W_1, ..., W_L]`` of ``(fan_out, fan_in)`` arrays (L = H + 1); activities are
batches of row vectors ``(B, N)``. The activation is applied *before* each linear map except the
first::

    MLP:          z_1 = a_1 W_1 x;  z_l = a_l W_l φ(z_{l-1})            (l = 2..H);  f = a_L W_L φ(z_H)
    residual MLP: z_1 = a_1 W_1 x;  z_l = z_{l-1} + a_l W_l φ(z_{l-1})  (l = 2..H);  f = a_L W_L φ(z_H)

Everything static about a network (activation, skips, the per-layer multipliers) lives in the
hashable :class:`Net`, so jit specialises on it and the weights stay a plain pytree of arrays.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mutransfer.parametrization import LayerParams  # noqa: F401 (type only)

Array = jax.Array
Weights = list  # list[Array], (fan_out, fan_in) each

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda z: z,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
}


class Net(NamedTuple):
    """Static description of a network: activation name, skips, and per-layer multipliers a_l."""

    activation: str
    residual: bool
    multipliers: tuple[float, ...]

    @property
    def depth(self) -> int:
        """Number of weight matrices L (= hidden layers + 1)."""
        return len(self.multipliers)

    @property
    def phi(self) -> Callable[[Array], Array]:
        return ACTIVATIONS[self.activation]


def make_net(activation: str, residual: bool, layers: Sequence[LayerParams]) -> Net:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    return Net(activation, bool(residual), tuple(float(p.multiplier) for p in layers))


def layer_dims(input_dim: int, width: int, hidden_layers: int, output_dim: int) -> list[tuple[int, int]]:
    """(fan_out, fan_in) of each of the L = H + 1 weight matrices."""
    return [(width, input_dim)] + [(width, width)] * (hidden_layers - 1) + [(output_dim, width)]


def init_weights(key: Array, dims: Sequence[tuple[int, int]], init_stds: Sequence[float],
                 dtype=jnp.float32) -> Weights:
    """W_l ~ N(0, σ_l²), σ_l from the resolved parameterisation (``[p.init_std for p in layers]``)."""
    keys = jax.random.split(key, len(dims))
    return [std * jax.random.normal(k, d, dtype) for k, d, std in zip(keys, dims, init_stds)]


def linear(W: Array, a: float, h: Array) -> Array:
    """a · W h for a batch of row vectors h (B, fan_in) -> (B, fan_out)."""
    return a * (h @ W.T)


def predict(net: Net, weights: Weights, layer: int, z_prev: Array) -> Array:
    """μ_l(z_{l-1}) for 0-based ``layer`` >= 1: the prediction of layer l from the one below."""
    out = linear(weights[layer], net.multipliers[layer], net.phi(z_prev))
    if net.residual and 0 < layer < net.depth - 1:
        out = out + z_prev
    return out


def forward(net: Net, weights: Weights, x: Array) -> list[Array]:
    """All pre-activations [z_1, ..., z_H, f(x)] of the forward pass."""
    zs = [linear(weights[0], net.multipliers[0], x)]
    for layer in range(1, net.depth):
        zs.append(predict(net, weights, layer, zs[-1]))
    return zs


def output(net: Net, weights: Weights, x: Array) -> Array:
    """f(x), the network output (B, C)."""
    return forward(net, weights, x)[-1]
