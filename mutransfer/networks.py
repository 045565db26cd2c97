"""Networks (docs/reference/conventions.md#networks) as pure functions of a list of weights: MLPs and small CNNs.

Weights are a list ``[W_1, ..., W_L]`` (L = H + 1). The activation is applied *before* each
linear map except the first::

    MLP:          z_1 = a_1 W_1 x;  z_l = a_l W_l φ(z_{l-1})            (l = 2..H);  f = a_L W_L φ(z_H)
    residual MLP: z_1 = a_1 W_1 x;  z_l = z_{l-1} + a_l W_l φ(z_{l-1})  (l = 2..H);  f = a_L W_L φ(z_H)

Dense weights are ``(fan_out, fan_in)`` arrays acting on batches of row vectors ``(B, N)``.

CNNs (:func:`cnn_layers`) replace W_1..W_H by 2-D convolutions — ``(k, k, C_in, C_out)`` (HWIO)
kernels, SAME padding, stride 1 or 2, activities ``(B, H, W, C)`` (NHWC) — and keep a dense
readout W_L on the flattened last feature map. A conv layer's fan-in is k²·C_in; its "width" is
its channel count. Inputs stay flat ``(B, D)`` everywhere else in the package: the first conv
reshapes them from the datasets' channel-major layout (C, H, W). Residual CNNs add the identity
skip on hidden layers whose input and output shapes agree (stride 1), as the MLP does on every
hidden layer but the first.

Everything static about a network (activation, skips, per-layer multipliers, layer geometry)
lives in the hashable :class:`Net`, so jit specialises on it and the weights stay a plain pytree.

Depth as a scan. The hidden-to-hidden maps W_2..W_H of an MLP share one shape (N, N), so the
forward pass runs them as one ``jax.lax.scan`` over the stacked weights ``Wh = stack(W_2..W_H)``
(H − 1, N, N) (:func:`forward_stacked`) instead of H − 1 unrolled layers: the compiled program,
and its compile time, stay the same size as the depth grows. The public layout is unchanged —
weights are still the list [W_1, ..., W_L] everywhere (saved states, optimisers, diagnostics);
the stacking happens inside the traced function (:func:`split_weights`), and its gradient is the
unstacking. Same numbers as the unrolled loop (tests/test_depth_scan.py: float64, 1e-12);
``Net.scan=False`` (or ``$MUTRANSFER_LAYER_SCAN=0`` for nets built by :func:`make_net`) keeps
the unrolled form. CNNs are always unrolled (their layers differ in shape).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mutransfer import cpu_gemm
from mutransfer.matmul import MIN_SPLIT_MACS, dot_pieces, piece_bounds, split_einsum
from mutransfer.parametrization import LayerParams  # noqa: F401 (type only)

Array = jax.Array
Weights = list  # list[Array], (fan_out, fan_in) each

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda z: z,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
}


class Layer(NamedTuple):
    """Static geometry of one weight layer; shapes are per example.

    ``dense``: ``in_shape`` is whatever it reads (``(N,)``, or a feature map ``(H, W, C)`` it
    flattens), ``out_shape`` = ``(fan_out,)``. ``conv``: ``in_shape``/``out_shape`` = ``(H, W, C)``,
    a ``kernel``×``kernel`` filter with ``stride``, SAME padding.
    """

    kind: str  # "dense" | "conv"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "conv":
            return (self.kernel, self.kernel, self.in_shape[-1], self.out_shape[-1])
        return (self.out_shape[0], math.prod(self.in_shape))

    @property
    def fan_in(self) -> int:
        """Inputs summed into one output unit: k²·C_in for a conv, the flattened input size for dense."""
        if self.kind == "conv":
            return self.kernel * self.kernel * self.in_shape[-1]
        return math.prod(self.in_shape)


def dense_layers(dims: Sequence[tuple[int, int]]) -> tuple[Layer, ...]:
    """The geometry of an MLP from its ``(fan_out, fan_in)`` weight shapes."""
    return tuple(Layer("dense", (fan_in,), (fan_out,)) for fan_out, fan_in in dims)


def _same_out(size: int, stride: int) -> int:
    return -(-size // stride)  # SAME padding: ceil(size / stride)


def cnn_layers(image_shape: tuple[int, int, int], width: int, hidden_layers: int, output_dim: int,
               kernel: int = 3, downsample_layers: int = 2) -> tuple[Layer, ...]:
    """A small CNN: ``hidden_layers`` k×k convs to ``width`` channels (the first
    ``downsample_layers`` of them with stride 2, the rest stride 1), then a dense readout of the
    flattened last feature map. ``image_shape`` is the dataset's (C, H, W).

    ``hidden_layers=2`` is the 3-layer CNN (two convs + readout) of the TP paper's CIFAR-10 runs.
    """
    C, H, W = image_shape
    if kernel < 1 or downsample_layers < 0:
        raise ValueError("kernel must be >= 1 and downsample_layers >= 0")
    layers, shape = [], (H, W, C)
    for i in range(hidden_layers):
        stride = 2 if i < downsample_layers else 1
        out = (_same_out(shape[0], stride), _same_out(shape[1], stride), width)
        layers.append(Layer("conv", shape, out, kernel, stride))
        shape = out
    layers.append(Layer("dense", shape, (output_dim,)))
    return tuple(layers)


class Net(NamedTuple):
    """Static description of a network: activation name, skips, per-layer multipliers a_l and
    (for CNNs) each layer's geometry; ``layers=()`` means an MLP read off the weight shapes."""

    activation: str
    residual: bool
    multipliers: tuple[float, ...]
    layers: tuple[Layer, ...] = ()
    scan: bool = True  # run an MLP's hidden-to-hidden layers as a lax.scan (see the module docstring)
    # a scanned MLP's products as this many independent dots (multi-core CPU; mutransfer/matmul.py)
    dot_pieces: int = 1
    # "blas": a scanned MLP's hot products through mutransfer.cpu_gemm (XLA:CPU FFI on OpenBLAS,
    # reverse mode only; the grid trainer sets it on CPU); "xla": jnp.einsum
    gemm: str = "xla"

    @property
    def depth(self) -> int:
        """Number of weight matrices L (= hidden layers + 1)."""
        return len(self.multipliers)

    @property
    def phi(self) -> Callable[[Array], Array]:
        return ACTIVATIONS[self.activation]

    @property
    def is_conv(self) -> bool:
        return any(g.kind == "conv" for g in self.layers)

    def skip(self, layer: int) -> bool:
        """Whether 0-based ``layer`` adds the identity skip (hidden layers of residual nets whose
        input and output shapes agree)."""
        if not (self.residual and 0 < layer < self.depth - 1):
            return False
        return not self.layers or self.layers[layer].in_shape == self.layers[layer].out_shape

    @property
    def scanned(self) -> bool:
        """Whether the hidden-to-hidden layers run as a scan: an MLP (no CNN geometry) with at
        least one of them (H ≥ 2) and ``scan`` on."""
        return self.scan and not self.layers and self.depth >= 3


LAYER_SCAN_ENV = "MUTRANSFER_LAYER_SCAN"


def layer_scan_default() -> bool:
    """$MUTRANSFER_LAYER_SCAN ("0" → unrolled hidden layers; default "1": scanned)."""
    v = os.environ.get(LAYER_SCAN_ENV, "1").strip().lower()
    if v not in ("0", "1", "false", "true"):
        raise ValueError(f"{LAYER_SCAN_ENV}: expected 0 or 1, got {v!r}")
    return v in ("1", "true")


def make_net(activation: str, residual: bool, layers: Sequence[LayerParams],
             geometry: Sequence[Layer] = (), scan: bool | None = None, pieces: int | None = None) -> Net:
    """``scan`` None → :func:`layer_scan_default`; ``pieces`` None → :func:`mutransfer.matmul.dot_pieces`
    (the cores of a CPU, 1 on accelerators)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: unknown {activation!r}; choose one of {sorted(ACTIVATIONS)}")
    if geometry and len(geometry) != len(layers):
        raise ValueError(f"geometry: {len(geometry)} layers for {len(layers)} parameter triples")
    return Net(activation, bool(residual), tuple(float(p.multiplier) for p in layers), tuple(geometry),
               layer_scan_default() if scan is None else bool(scan),
               dot_pieces() if pieces is None else max(1, int(pieces)))


def layer_dims(input_dim: int, width: int, hidden_layers: int, output_dim: int) -> list[tuple[int, int]]:
    """(fan_out, fan_in) of each of the L = H + 1 weight matrices."""
    return [(width, input_dim)] + [(width, width)] * (hidden_layers - 1) + [(output_dim, width)]


def init_weights(key: Array, dims: Sequence[tuple[int, ...]], init_stds: Sequence[float],
                 dtype=jnp.float32, init: str = "default") -> Weights:
    """W_l ~ N(0, σ_l²) (``init="default"``) or W_l ~ U(−σ_l, σ_l), variance σ_l²/3
    (``init="kaiming_uniform"``: with sp's σ_l = 1/√fan_in, jpc's/equinox's default Linear init);
    σ_l from the resolved parameterisation (``[p.init_std for p in layers]``); ``dims`` are weight
    shapes (``[g.weight_shape for g in layers]`` for a CNN)."""
    keys = jax.random.split(key, len(dims))
    if init not in _DRAWS:
        raise ValueError(f"init: unknown {init!r}; choose 'default' or 'kaiming_uniform'")
    return _draw_layers(keys, dims, init_stds, dtype, _DRAWS[init])


_DRAWS = {
    "default": lambda k, d, dtype, std: std * jax.random.normal(k, d, dtype),
    "kaiming_uniform": lambda k, d, dtype, std: jax.random.uniform(k, d, dtype, -std, std),
}


def _draw_layers(keys: Array, dims: Sequence[tuple[int, ...]], stds: Sequence[float], dtype, draw) -> Weights:
    """[draw(keys[l], dims[l], σ_l)], one vmapped draw per run of consecutive equal shapes (an MLP's
    hidden layers): the same numbers as one draw per layer (tested bitwise), but a traced program
    that does not grow with depth (one draw per layer compiled in time ∝ H)."""
    out, i = [], 0
    while i < len(dims):
        j = i
        while j + 1 < len(dims) and tuple(dims[j + 1]) == tuple(dims[i]):
            j += 1
        if j == i:
            out.append(draw(keys[i], dims[i], dtype, stds[i]))
        else:
            z = jax.vmap(lambda k, s: draw(k, dims[i], dtype, s))(keys[i:j + 1], jnp.asarray(stds[i:j + 1], dtype))
            out.extend(z[k] for k in range(j + 1 - i))
        i = j + 1
    return out


def linear(W: Array, a: float, h: Array) -> Array:
    """a · W h for a batch of row vectors h (B, fan_in) -> (B, fan_out)."""
    return a * (h @ W.T)


_NHWC = ("NHWC", "HWIO", "NHWC")
CONV_IMPL_ENV = "MUTRANSFER_CONV_IMPL"


def conv_impl() -> str:
    """``patches`` (im2col + matmul) or ``xla`` (``lax.conv_general_dilated``): $MUTRANSFER_CONV_IMPL,
    else ``patches`` on CPU and ``xla`` on accelerators. On XLA:CPU a native convolution inside a
    loop (the trainer's ``lax.scan`` over steps) ran 20–30× slower than outside one and 50–150×
    slower than the patch matmul (benchmarks/cnn_checks.py); on GPUs the native conv is cuDNN's."""
    impl = os.environ.get(CONV_IMPL_ENV) or ("patches" if jax.default_backend() == "cpu" else "xla")
    if impl not in ("patches", "xla"):
        raise ValueError(f"{CONV_IMPL_ENV}: unknown {impl!r}; choose 'patches' or 'xla'")
    return impl


def _same_pads(size: int, stride: int, kernel: int) -> tuple[int, int]:
    total = max((_same_out(size, stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2  # XLA/TensorFlow SAME: the extra pixel goes after


def conv_patches(W: Array, stride: int, h: Array) -> Array:
    """The SAME conv as one matmul: the k² shifted (strided) views of the padded input, concatenated
    in HWIO order, times the kernel reshaped to (k²·C_in, C_out)."""
    k, _, c_in, c_out = W.shape
    _, H, Wd, _ = h.shape
    oh, ow = _same_out(H, stride), _same_out(Wd, stride)
    hp = jnp.pad(h, ((0, 0), _same_pads(H, stride, k), _same_pads(Wd, stride, k), (0, 0)))
    cols = [hp[:, i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride, :]
            for i in range(k) for j in range(k)]
    return jnp.concatenate(cols, axis=-1) @ W.reshape(k * k * c_in, c_out)


def conv(W: Array, stride: int, h: Array, impl: str | None = None) -> Array:
    """SAME-padded 2-D convolution of NHWC ``h`` with an HWIO kernel ``W`` (``impl``: see
    :func:`conv_impl`; both give the same numbers up to float rounding)."""
    if (impl or conv_impl()) == "patches":
        return conv_patches(W, stride, h)
    return jax.lax.conv_general_dilated(h, W, (stride, stride), "SAME", dimension_numbers=_NHWC)


def _image(h: Array, in_shape: tuple[int, ...]) -> Array:
    """Flat inputs (B, C·H·W), channel-major, → NHWC; feature maps pass through."""
    if h.ndim == 2:
        H, W, C = in_shape
        h = h.reshape(h.shape[0], C, H, W).transpose(0, 2, 3, 1)
    return h


def apply_layer(net: Net, layer: int, W: Array, a: float, h: Array) -> Array:
    """a_l · W_l h for 0-based ``layer``: a dense map (flattening feature maps) or a convolution."""
    g = net.layers[layer] if net.layers else None
    if g is not None and g.kind == "conv":
        return a * conv(W, g.stride, _image(h, g.in_shape))
    return linear(W, a, h.reshape(h.shape[0], -1) if h.ndim > 2 else h)


def adjoint_layer(net: Net, layer: int, V: Array, b: float, h: Array) -> Array:
    """b · Vᵀ h: a map from layer ``layer``'s output shape back to its input shape, the form of
    TP's feedback maps. Dense: ``V`` is ``(fan_in, fan_out)`` and the result is reshaped to the
    layer's input (a feature map for a CNN's readout). Conv: ``V`` is an HWIO kernel shaped like
    the forward one and Vᵀ is the transposed convolution (the exact adjoint of ``conv(V, stride, ·)``,
    so output sizes match for any input size)."""
    g = net.layers[layer] if net.layers else None
    if g is not None and g.kind == "conv":
        in_spec = jax.ShapeDtypeStruct((h.shape[0], *g.in_shape), h.dtype)
        (out,) = jax.linear_transpose(lambda u: conv(V, g.stride, u), in_spec)(h)
        return b * out
    out = linear(V, b, h)
    return out.reshape(h.shape[0], *g.in_shape) if g is not None and len(g.in_shape) > 1 else out


def predict(net: Net, weights: Weights, layer: int, z_prev: Array) -> Array:
    """μ_l(z_{l-1}) for 0-based ``layer`` >= 1: the prediction of layer l from the one below."""
    out = apply_layer(net, layer, weights[layer], net.multipliers[layer], net.phi(z_prev))
    if net.skip(layer):
        out = out + z_prev
    return out


def first_layer(net: Net, weights: Weights, x: Array) -> Array:
    """z_1 = a_1 W_1 x (no activation on the input)."""
    return apply_layer(net, 0, weights[0], net.multipliers[0], x)


class Stacked(NamedTuple):
    """An MLP's weights with the hidden-to-hidden maps stacked: ``first`` W_1 (N, D), ``hidden``
    stack(W_2..W_H) (H − 1, N, N), ``last`` W_L (C, N)."""

    first: Array
    hidden: Array
    last: Array


def split_weights(weights: Weights) -> Stacked:
    """[W_1, ..., W_L] → :class:`Stacked` (``jnp.stack``; inside jit its gradient is the unstack)."""
    return Stacked(weights[0], jnp.stack(list(weights[1:-1])), weights[-1])


def join_weights(stacked: Stacked) -> Weights:
    """:class:`Stacked` (or gradients shaped like it) → the list [W_1, ..., W_L]."""
    return [stacked.first, *(stacked.hidden[i] for i in range(stacked.hidden.shape[0])), stacked.last]


def as_stacked(weights: Weights | Stacked) -> Stacked:
    return weights if isinstance(weights, Stacked) else split_weights(weights)


class LayerPacking(NamedTuple):
    """Packs every per-layer list [W_1, ..., W_L] in a pytree (weights, optimiser moments — with
    any leading axes, e.g. the trainer's run axis ``axis`` = 1) into :class:`Stacked`, and back.
    The grid trainer packs its state as it initialises it and keeps it packed, so its programs
    (step, optimiser update, per-run select, evaluation) have a fixed number of arrays whatever
    the depth. ``active``
    False (CNNs, unscanned nets, unequal hidden lr multipliers, TP's per-layer feedback code):
    both maps are the identity."""

    active: bool
    axis: int = 1

    def pack(self, tree):
        if not self.active:
            return tree

        def one(x):
            if isinstance(x, list):
                return Stacked(x[0], jnp.stack(x[1:-1], axis=self.axis), x[-1])
            return x
        return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, list))

    def unpack(self, tree):
        if not self.active:
            return tree

        def one(x):
            if isinstance(x, Stacked):
                n = x.hidden.shape[self.axis]
                return [x.first, *(jnp.take(x.hidden, i, axis=self.axis) for i in range(n)), x.last]
            return x
        return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, Stacked))


def layer_packing(net: Net, lr_mults: Sequence[float], per_layer_code: bool = False) -> LayerPacking:
    """The :class:`LayerPacking` for a net trained with per-layer lr multipliers ``lr_mults``:
    active for scanned MLPs whose hidden layers share one lr multiplier, unless the algorithm
    indexes layers itself (``per_layer_code``: TP/DTP)."""
    hidden = tuple(lr_mults[1:-1])
    return LayerPacking(net.scanned and not per_layer_code and all(c == hidden[0] for c in hidden))


def hidden_multipliers(net: Net, dtype) -> Array | float:
    """a_2..a_H for a stacked product: one Python float when they are all equal (every
    parameterisation here: they share one fan-in), else an (H − 1, 1, 1) array."""
    a = net.multipliers[1:-1]
    if all(v == a[0] for v in a):
        return a[0]
    return jnp.asarray(a, dtype).reshape(-1, 1, 1)


def layer_pieces(net: Net, Wh: Array, batch: int) -> list[tuple[int, int]] | None:
    """The layer ranges the stacked hidden products are issued in (mutransfer/matmul.py), or None
    when they stay one product (one piece, fewer layers than pieces, or too small to pay)."""
    L, N, M = Wh.shape
    if net.dot_pieces <= 1 or L < net.dot_pieces or L * batch * N * M < MIN_SPLIT_MACS:
        return None
    return piece_bounds(L, net.dot_pieces)


def split_hidden(net: Net, Wh: Array, batch: int) -> Array | tuple[Array, ...]:
    """Stacked hidden weights (H − 1, N, N) as the tuple of their :func:`layer_pieces` (sliced
    once per training step, outside the inference loop, which would otherwise copy every slice
    every inference step), or unchanged when the products stay whole."""
    bounds = layer_pieces(net, Wh, batch)
    return Wh if bounds is None else tuple(Wh[lo:hi] for lo, hi in bounds)


def join_hidden(Wh: Array | tuple[Array, ...]) -> Array:
    """The inverse of :func:`split_hidden` (for gradients)."""
    return jnp.concatenate(Wh, axis=0) if isinstance(Wh, tuple) else Wh


def hidden_predictions(net: Net, Wh: Array | tuple[Array, ...], Z_prev: Array) -> Array:
    """μ_l(z_{l-1}) for l = 2..H at once from stacked lower activities ``Z_prev`` (H − 1, B, N):
    a_l φ(z_{l-1}) W_lᵀ (+ z_{l-1} with skips), as a batched product (the layers are independent
    given the activities — the energy and its gradients, not the forward pass)."""
    # Issued as independent pieces along the layer axis (the batch axis when there are fewer
    # layers than pieces) so that XLA:CPU runs them on all cores (mutransfer/matmul.py).
    a = hidden_multipliers(net, Z_prev.dtype)
    phi = net.phi(Z_prev)
    if isinstance(Wh, tuple):  # pre-split weights (split_hidden): one product per piece
        parts, lo = [], 0
        for W in Wh:  # the multiplier per piece, as split_einsum applies it
            p = jnp.einsum("lbi,loi->lbo", phi[lo:lo + W.shape[0]], W)
            parts.append(a * p if isinstance(a, float) else p)
            lo += W.shape[0]
        out = jnp.concatenate(parts, axis=0)
        out = out if isinstance(a, float) else a * out
        return out + Z_prev if net.residual else out
    if net.gemm == "blas":
        out = a * cpu_gemm.bmm(phi, Wh)
        return out + Z_prev if net.residual else out
    axis = "l" if Wh.shape[0] >= net.dot_pieces else "b"
    if isinstance(a, float):
        out = split_einsum("lbi,loi->lbo", phi, Wh, axis, net.dot_pieces, a)
    else:
        out = a * split_einsum("lbi,loi->lbo", phi, Wh, axis, net.dot_pieces)
    return out + Z_prev if net.residual else out


def linear_split(W: Array, a: float, h: Array, pieces: int, gemm: str = "xla") -> Array:
    """:func:`linear` issued as ``pieces`` independent dots over the output units (rows of W;
    mutransfer/matmul.py): the stacked forward pass's products, which depend on each other layer
    to layer, and the input layer's. Split over outputs, the weight gradient of each piece is its
    own rows of ∇W (no partial sums), so PC's ∇W_1 keeps its summation order. ``gemm`` "blas":
    one :func:`mutransfer.cpu_gemm.bmm` instead."""
    if gemm == "blas":
        return a * cpu_gemm.bmm(h, W)
    return split_einsum("bi,oi->bo", h, W, "o", pieces, a)


def forward_stacked(net: Net, stacked: Stacked, x: Array) -> tuple[Array, Array]:
    """The forward pass with a scan over the hidden-to-hidden layers: ``(Z, f)`` with Z the stacked
    hidden activities [z_1; ...; z_H] (H, B, N) and f = f(x) (B, C)."""
    a = net.multipliers[1:-1]
    uniform = all(v == a[0] for v in a)

    def layer(z, inp):
        W, a_l = (inp, a[0]) if uniform else inp
        out = linear_split(W, a_l, net.phi(z), net.dot_pieces, net.gemm)
        z = out + z if net.residual else out
        return z, z

    z1 = linear_split(stacked.first, net.multipliers[0], x, net.dot_pieces, net.gemm)
    _, rest = jax.lax.scan(layer, z1, stacked.hidden if uniform else (stacked.hidden, jnp.asarray(a, x.dtype)))
    Z = jnp.concatenate([z1[None], rest], axis=0)
    f = linear(stacked.last, net.multipliers[-1], net.phi(Z[-1]))
    return Z, f


@functools.partial(jax.jit, static_argnums=0)
def _forward_scanned(net: Net, weights: Weights, x: Array) -> tuple[Array, Array]:
    # jit-wrapped so that eager callers (the diagnostics) compile the scan once per shape instead
    # of on every call; inside a jitted caller it is inlined.
    return forward_stacked(net, split_weights(weights), x)


def forward(net: Net, weights: Weights, x: Array) -> list[Array]:
    """All pre-activations [z_1, ..., z_H, f(x)] of the forward pass (a scan over the hidden
    layers when ``net.scanned``; the same numbers either way). ``weights``: the list, or
    :class:`Stacked` (a scanned net's packed layout)."""
    if isinstance(weights, Stacked):
        Z, f = forward_stacked(net, weights, x)
        return [Z[i] for i in range(Z.shape[0])] + [f]
    if net.scanned:
        Z, f = _forward_scanned(net, list(weights), x)
        return [Z[i] for i in range(Z.shape[0])] + [f]
    zs = [first_layer(net, weights, x)]
    for layer in range(1, net.depth):
        zs.append(predict(net, weights, layer, zs[-1]))
    return zs


def output(net: Net, weights: Weights, x: Array) -> Array:
    """f(x), the network output (B, C)."""
    return forward(net, weights, x)[-1]
