"""Target propagation (TP) and difference target propagation (DTP), docs/reference/algorithms.md#target-propagation.

Plain MLPs and plain CNNs (no residual skips). Notation, 1-based as in docs/reference/algorithms.md
(code lists are 0-based)::

    h_0 = x,  h_1 = a_1 W_1 x,  h_l = μ_l(h_{l-1}) = a_l W_l φ(h_{l-1}),  h_L = f(x)

Feedback maps, one per layer l = 2..L, send layer l back to layer l−1::

    g_l(h) = b_l V_l φ(h),        V_l of shape (width of h_{l-1}, width of h_l)

so ``feedback = [V_2, ..., V_L]`` (a list of L − 1 arrays; ``feedback[i]`` maps ``hs[i+1]`` to
``hs[i]`` where ``hs = forward(net, weights, x) = [h_1, ..., h_H, f]``). The feedback
multipliers b_l live in :class:`TPConfig` (static), their weights V_l are a plain pytree.

In a CNN, g_l of a conv layer is a transposed convolution: V_l is a kernel shaped like W_l and
g_l(h) = b_l V_lᵀ φ(h) with Vᵀ the exact adjoint of the strided conv (so it maps layer l's feature
map back onto layer l−1's); g_L of the dense readout maps the output back onto the last feature
map (V_L of shape (H·W·C, classes), then reshaped). Fan-in of a transposed conv: k²·C_l/s²
(the average number of terms summed into one output unit).

Conventions (decided here; the trainer and docs rely on them)
-----------------------------------------------------------
* **β_out units.** The output target is τ_L = f − β_out · ∂ℓ/∂f with ℓ the *per-example* loss
  (``mse``: ½‖y − f‖², so ∂ℓ/∂f = f − y; ``cross_entropy``: softmax(f) − y), NOT the batch
  mean, so β_out does not depend on the batch size. For ``mse``, β_out = 1 puts the target on the
  label (τ_L = y) and the output layer's local gradient is then exactly β_out × BP's.
* **Hidden targets.** TP: τ_{l-1} = g_l(τ_l); DTP: τ_{l-1} = h_{l-1} + g_l(τ_l) − g_l(h_l).
  Every layer including h_1 gets a target (there is no g_1: x is never a target). Targets are
  constants (``stop_gradient``).
* **Forward (local) loss.** Σ_l mean_batch ½‖τ_l − μ_l(h_{l-1})‖² (summed over units — every
  non-batch axis of a feature map — averaged over the batch), differentiated w.r.t. W_l only
  with h_{l-1} and τ_l constant. At the current
  weights μ_l(h_{l-1}) = h_l, so its value is Σ_l ½‖τ_l − h_l‖², reported as ``target_loss``.
* **Feedback (reconstruction) loss**, the same for TP and DTP (the denoising inverse loss of
  Bengio 2014 / Lee et al. 2015 that both use)::

      Σ_{l=2..L} mean_batch ½‖g_l(μ_l(h_{l-1} + ε)) − (h_{l-1} + ε)‖²,   ε ~ N(0, σ_ε² I)

  differentiated w.r.t. V_l only (W_l and the h_{l-1} constant). σ_ε = 0 is allowed (no noise).
* **Order within a training step** (docs/reference/algorithms.md#target-propagation: feedback
  first): k = ``feedback_steps`` feedback updates of V (fresh noise each), then the targets are
  computed with the *updated* V, then one
  forward update of W. :func:`train_step` does exactly this given an optax transformation for V;
  :func:`step` only computes both gradients at the current V (for a caller that wants to run the
  pieces itself: ``feedback_grads`` k times + apply, then ``targets`` + ``forward_grads``).
* **Metrics.** ``train_loss`` = batch-mean loss of the forward pass *before* any update of the
  step (as PC/BP). ``reconstruction_loss`` = the feedback loss before this step's first feedback
  update. ``target_loss`` = Σ_l ½‖τ_l − h_l‖² (TP's analogue of PC's energy).
* **Feedback multipliers/init.** b_l and the V init stds are inputs; :func:`feedback_params`
  offers two equivalent-at-init schemes: ``"sp"`` (b_l = 1, std 1/√fan_in) and ``"unit"``
  (b_l = 1/√fan_in, std 1; the multiplier form used by the μP-style parameterisations), where
  fan_in = width of layer l (the output dimension C for g_L).

Everything is a pure function of arrays (vmap/jit friendly); configs are static and hashable.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from mutransfer import losses, optim
from mutransfer.networks import (Layer, Net, Weights, adjoint_layer, dense_layers, first_layer, forward,
                                 predict)
from mutransfer.parametrization import LayerParams
from mutransfer.pc import StepOut

Array = jax.Array
Feedback = list  # [V_2, ..., V_L]

VARIANTS = ("tp", "dtp")


class TPConfig(NamedTuple):
    """Static TP/DTP settings.

    ``feedback_multipliers``: b_2..b_L (length L − 1); the empty tuple means all ones.
    ``feedback_noise``: σ_ε of the corruption in the reconstruction loss (≥ 0).
    ``feedback_steps``: k feedback updates before each forward update (≥ 1).
    """

    variant: str = "dtp"
    loss: str = "mse"
    feedback_noise: float = 0.1
    feedback_steps: int = 1
    feedback_multipliers: tuple[float, ...] = ()


def _is_concrete(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(net: Net, cfg: TPConfig) -> None:
    """Raise ValueError (naming the offending field) if ``net``/``cfg`` cannot run TP."""
    if net.residual:
        raise ValueError("residual: TP/DTP supports plain MLPs and CNNs only (residual=True is not allowed)")
    if cfg.variant not in VARIANTS:
        raise ValueError(f"variant: unknown {cfg.variant!r}; choose one of {list(VARIANTS)}")
    if cfg.loss not in losses.LOSSES:
        raise ValueError(f"loss: unknown {cfg.loss!r}; choose one of {sorted(losses.LOSSES)}")
    if _is_concrete(cfg.feedback_noise) and not (cfg.feedback_noise >= 0 and math.isfinite(cfg.feedback_noise)):
        raise ValueError(f"feedback_noise: must be a finite float >= 0, got {cfg.feedback_noise!r}")
    if not isinstance(cfg.feedback_steps, int) or isinstance(cfg.feedback_steps, bool) or cfg.feedback_steps < 1:
        raise ValueError(f"feedback_steps: must be an int >= 1, got {cfg.feedback_steps!r}")
    if net.depth < 2:
        raise ValueError("depth: TP needs at least one hidden layer (L >= 2 weight matrices)")
    nb = len(cfg.feedback_multipliers)
    if nb not in (0, net.depth - 1):
        raise ValueError(f"feedback_multipliers: need {net.depth - 1} values (one per layer 2..L), got {nb}")


def _b(net: Net, cfg: TPConfig) -> tuple[float, ...]:
    return tuple(cfg.feedback_multipliers) or (1.0,) * (net.depth - 1)


# ---------------------------------------------------------------------------------------------
# Feedback weights
# ---------------------------------------------------------------------------------------------

def _geometry(net_layout: Sequence) -> tuple[Layer, ...]:
    """Layer geometry from either a CNN's/MLP's :class:`Layer` list or an MLP's (fan_out, fan_in) dims."""
    if all(isinstance(g, Layer) for g in net_layout):
        return tuple(net_layout)
    return dense_layers(net_layout)


def _feedback_shape(g: Layer) -> tuple[tuple[int, ...], float]:
    """(shape of V, fan-in of g = b Vᵀ φ(·)) for the feedback map of forward layer ``g``."""
    if g.kind == "conv":
        return g.weight_shape, g.kernel * g.kernel * g.out_shape[-1] / g.stride ** 2
    fan_out, fan_in = g.weight_shape
    return (fan_in, fan_out), fan_out


def feedback_dims(net_layout: Sequence) -> list[tuple[int, ...]]:
    """Shapes of V_2..V_L. ``net_layout``: the forward (fan_out, fan_in) dims of an MLP (then V_l
    is (fan_in, fan_out) of W_l: it maps W_l's output back to its input), or a list of
    :class:`~mutransfer.networks.Layer` (conv layers: V_l shaped like W_l)."""
    return [_feedback_shape(g)[0] for g in _geometry(net_layout)[1:]]


def feedback_fan_ins(net_layout: Sequence) -> list[float]:
    """Fan-in of each feedback map g_2..g_L (the width of h_l for dense maps; k²·C_l/s² for a
    transposed conv)."""
    return [_feedback_shape(g)[1] for g in _geometry(net_layout)[1:]]


def feedback_params(net_layout: Sequence, scheme: str = "sp") -> list[LayerParams]:
    """Per feedback layer (b_l, init std, lr multiplier 1) for a named scheme (see module doc)."""
    out = []
    for fan_in in feedback_fan_ins(net_layout):
        if scheme == "sp":
            out.append(LayerParams(1.0, 1.0 / math.sqrt(fan_in), 1.0))
        elif scheme == "unit":
            out.append(LayerParams(1.0 / math.sqrt(fan_in), 1.0, 1.0))
        else:
            raise ValueError(f"scheme: unknown {scheme!r}; choose 'sp' or 'unit'")
    return out


def init_feedback(key: Array, net_layout: Sequence, feedback_params: Sequence,
                  dtype=jnp.float32) -> Feedback:
    """V_l ~ N(0, s_l²) for l = 2..L. ``net_layout`` as for :func:`feedback_dims`;
    ``feedback_params``: L − 1 init stds (floats) or objects with an ``init_std`` attribute (e.g.
    the :class:`LayerParams` of :func:`feedback_params`)."""
    dims = feedback_dims(net_layout)
    if len(feedback_params) != len(dims):
        raise ValueError(f"feedback_params: need {len(dims)} entries (one per layer 2..L), "
                         f"got {len(feedback_params)}")
    stds = [float(getattr(p, "init_std", p)) for p in feedback_params]
    keys = jax.random.split(key, len(dims))
    return [s * jax.random.normal(k, d, dtype) for k, d, s in zip(keys, dims, stds)]


def g(net: Net, V: Array, b: float, h: Array, layer: int) -> Array:
    """g_l(h) = b_l V_lᵀ φ(h): layer l's activity mapped back onto layer l−1's; ``layer`` is the
    0-based index of the forward layer W_l."""
    return adjoint_layer(net, layer, V, b, net.phi(h))


def _sq(err: Array) -> Array:
    """mean over the batch of ½ Σ err² over every other axis."""
    return 0.5 * jnp.sum(err ** 2) / err.shape[0]


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------

def output_target(f: Array, y: Array, beta_out: Array | float, loss: str) -> Array:
    """τ_L = f − β_out ∂ℓ/∂f, ℓ the per-example loss (so β_out is batch-size independent)."""
    dl_df = jax.grad(lambda ff: jnp.sum(losses.LOSSES[loss](ff, y)))(f)
    return f - beta_out * dl_df


def _targets_from(net: Net, hs: Sequence[Array], feedback: Feedback, y: Array,
                  beta_out, cfg: TPConfig) -> list[Array]:
    b = _b(net, cfg)
    taus = [None] * net.depth
    taus[-1] = output_target(hs[-1], y, beta_out, cfg.loss)
    for j in range(net.depth - 1, 0, -1):  # feedback map from hs[j] to hs[j-1] is feedback[j-1]
        V, bj = feedback[j - 1], b[j - 1]
        back = g(net, V, bj, taus[j], j)
        if cfg.variant == "dtp":
            back = hs[j - 1] + back - g(net, V, bj, hs[j], j)
        taus[j - 1] = back
    return [jax.lax.stop_gradient(t) for t in taus]


def targets(net: Net, weights: Weights, feedback: Feedback, x: Array, y: Array,
            beta_out: Array | float, cfg: TPConfig) -> list[Array]:
    """[τ_1, ..., τ_L] (τ_L for the output f), as constants."""
    validate(net, cfg)
    hs = [jax.lax.stop_gradient(h) for h in forward(net, weights, x)]
    return _targets_from(net, hs, feedback, y, beta_out, cfg)


def gauss_newton_targets(net: Net, weights: Weights, x: Array, tau_out: Array,
                         damping: float = 0.0) -> list[Array]:
    """Gauss–Newton targets of a LINEAR plain MLP: for every layer l,

        τ_l^GN = h_l + Δf J_l⁺,   Δf = τ_out − f,   f = h_l J_l  (row vectors; J_l = Π_{m>l} a_m W_mᵀ)

    i.e. the minimum-norm change of h_l that moves the output onto τ_out (J_l⁺ the pseudo-inverse;
    J_l⁻¹ for an invertible square chain, where this is h_{l-1} + J⁻¹(τ_l − h_l) applied layer by
    layer). ``damping`` λ > 0 uses the damped solution Δf J_lᵀ(J_l J_lᵀ + λI)⁻¹ instead.
    Returns [τ_1^GN, ..., τ_H^GN, τ_out].
    """
    if net.activation != "linear":
        raise ValueError(f"activation: the closed-form Gauss–Newton target needs a linear net, "
                         f"got {net.activation!r}")
    if net.residual or net.is_conv:
        raise ValueError("architecture: gauss_newton_targets supports plain MLPs only")
    hs = forward(net, weights, x)
    df = tau_out - hs[-1]
    out = [None] * net.depth
    out[-1] = tau_out
    P = None  # maps hs[j] (row) to f: f = hs[j] @ P
    for j in range(net.depth - 2, -1, -1):
        step = net.multipliers[j + 1] * weights[j + 1].T  # hs[j+1] = hs[j] @ step
        P = step if P is None else step @ P
        if damping > 0:
            inv = P.T @ jnp.linalg.inv(P @ P.T + damping * jnp.eye(P.shape[0], dtype=P.dtype))
        else:
            inv = jnp.linalg.pinv(P)
        out[j] = hs[j] + df @ inv
    return out


gauss_newton_target = gauss_newton_targets  # alias (singular name)


# ---------------------------------------------------------------------------------------------
# Forward (local) update
# ---------------------------------------------------------------------------------------------

def local_loss(net: Net, weights: Weights, inputs: Sequence[Array], taus: Sequence[Array]) -> Array:
    """Σ_l mean_batch ½‖τ_l − μ_l(inputs[l])‖² with ``inputs = [x, h_1, ..., h_H]`` given."""
    total = 0.0
    for layer in range(net.depth):
        if layer == 0:
            mu = first_layer(net, weights, inputs[0])
        else:
            mu = predict(net, weights, layer, inputs[layer])
        total = total + _sq(taus[layer] - mu)
    return total


def local_grads(net: Net, weights: Weights, inputs: Sequence[Array], taus: Sequence[Array]
                ) -> tuple[Array, Weights]:
    """(value, ∇_W) of :func:`local_loss` with the layer inputs and targets held constant: the
    gradient of W_l depends only on W_l, inputs[l] and τ_l."""
    inputs = [jax.lax.stop_gradient(a) for a in inputs]
    taus = [jax.lax.stop_gradient(t) for t in taus]
    return jax.value_and_grad(lambda w: local_loss(net, w, inputs, taus))(weights)


def forward_grads(net: Net, weights: Weights, x: Array, taus: Sequence[Array]) -> Weights:
    """∇_{W_l} of Σ_l ½‖τ_l − μ_l(h_{l-1})‖² (batch mean), h_{l-1} from the forward pass, all
    inputs and targets constant (each layer's update is local)."""
    hs = forward(net, weights, x)
    return local_grads(net, weights, [x] + list(hs[:-1]), taus)[1]


# ---------------------------------------------------------------------------------------------
# Feedback update
# ---------------------------------------------------------------------------------------------

class FeedbackOut(NamedTuple):
    grads: Feedback  # ∇_V of the reconstruction loss, like ``feedback``
    loss: Array  # total reconstruction loss (sum over layers of the batch means)
    layer_losses: Array  # (L − 1,) per feedback map g_2..g_L


def _feedback_from(net: Net, weights: Weights, feedback: Feedback, hs: Sequence[Array], key: Array,
                   cfg: TPConfig) -> FeedbackOut:
    b = _b(net, cfg)
    n = net.depth - 1
    keys = jax.random.split(key, n)
    corrupted, preds = [], []
    for i in range(n):  # g_{i+2} reconstructs hs[i] from layer i+1's prediction
        c = jax.lax.stop_gradient(hs[i])
        if not (_is_concrete(cfg.feedback_noise) and cfg.feedback_noise == 0):
            c = c + cfg.feedback_noise * jax.random.normal(keys[i], c.shape, c.dtype)
        corrupted.append(c)
        preds.append(jax.lax.stop_gradient(predict(net, weights, i + 1, c)))

    def loss_fn(fb):
        ls = [_sq(g(net, fb[i], b[i], preds[i], i + 1) - corrupted[i]) for i in range(n)]
        ls = jnp.stack(ls)
        return jnp.sum(ls), ls

    (loss, per_layer), grads = jax.value_and_grad(loss_fn, has_aux=True)(feedback)
    return FeedbackOut(grads, loss, per_layer)


def feedback_grads(net: Net, weights: Weights, feedback: Feedback, x: Array, key: Array,
                   cfg: TPConfig) -> FeedbackOut:
    """Reconstruction loss Σ_l ½‖g_l(μ_l(h_{l-1}+ε)) − (h_{l-1}+ε)‖² (batch mean), ε ~ N(0, σ_ε²),
    and its gradient w.r.t. each V_l only. Same loss for TP and DTP."""
    validate(net, cfg)
    hs = forward(net, weights, x)
    return _feedback_from(net, weights, feedback, hs, key, cfg)


def reconstruction_loss(net: Net, weights: Weights, feedback: Feedback, x: Array, key: Array,
                        cfg: TPConfig) -> Array:
    return feedback_grads(net, weights, feedback, x, key, cfg).loss


# ---------------------------------------------------------------------------------------------
# One step
# ---------------------------------------------------------------------------------------------

class TPStepOut(NamedTuple):
    grads: Weights  # ∇_W of the local forward loss
    feedback_grads: Feedback  # ∇_V of the reconstruction loss
    train_loss: Array  # batch-mean ℓ(y, f(x)) of the forward pass before any update this step
    reconstruction_loss: Array  # feedback loss before this step's first feedback update
    target_loss: Array  # Σ_l ½‖τ_l − h_l‖² (batch mean): the local loss at the current weights

    def stepout(self) -> StepOut:
        """As the trainer's :class:`~mutransfer.pc.StepOut`: energy_start = target_loss,
        energy_end = reconstruction_loss."""
        return StepOut(self.grads, self.train_loss, self.target_loss, self.reconstruction_loss)


def step(net: Net, weights: Weights, feedback: Feedback, x: Array, y: Array, beta_out: Array | float,
         key: Array, cfg: TPConfig) -> TPStepOut:
    """Both gradients at the CURRENT feedback weights (one feedback-loss gradient, and the forward
    gradient with targets from the current V). The intended order is feedback first: apply the V
    update(s) and recompute the forward part (see :func:`train_step`) — ``step`` is for callers
    that apply the pieces themselves or want simultaneous updates."""
    validate(net, cfg)
    hs = forward(net, weights, x)
    train_loss = losses.batch_loss(cfg.loss, hs[-1], y)
    fb = _feedback_from(net, weights, feedback, hs, key, cfg)
    hs_c = [jax.lax.stop_gradient(h) for h in hs]
    taus = _targets_from(net, hs_c, feedback, y, beta_out, cfg)
    tloss, grads = local_grads(net, weights, [x] + hs_c[:-1], taus)
    return TPStepOut(grads, fb.grads, train_loss, fb.loss, tloss)


def train_step(net: Net, weights: Weights, feedback: Feedback, feedback_opt_state, x: Array, y: Array,
               beta_out: Array | float, key: Array, cfg: TPConfig, feedback_tx, feedback_lr: Array | float,
               feedback_lr_mults: Sequence[float] | None = None):
    """One TP/DTP step in the intended order, for the trainer:

    1. k = ``cfg.feedback_steps`` feedback updates: V ← V − η_V · c_l · ``feedback_tx``(∇_V),
       fresh noise each (keys split from ``key``);
    2. targets with the updated V; 3. the forward gradient ∇_W (the caller applies W's optimiser).

    Returns ``(TPStepOut, new_feedback, new_feedback_opt_state)``; ``TPStepOut.feedback_grads`` is
    the last feedback step's gradient, ``reconstruction_loss`` the loss before the first one.
    ``feedback_tx`` is an optax direction (e.g. ``optim.direction("adam")``), whose state the
    caller carries between steps (``feedback_tx.init(feedback)``).
    """
    validate(net, cfg)
    mults = tuple(feedback_lr_mults) if feedback_lr_mults is not None else (1.0,) * (net.depth - 1)
    hs = forward(net, weights, x)
    hs_c = [jax.lax.stop_gradient(h) for h in hs]
    train_loss = losses.batch_loss(cfg.loss, hs[-1], y)
    keys = jax.random.split(key, cfg.feedback_steps)

    def fb_step(carry, k):
        V, opt = carry
        out = _feedback_from(net, weights, V, hs_c, k, cfg)
        upd, opt = feedback_tx.update(out.grads, opt, V)
        V = optim.apply(V, upd, feedback_lr, mults)
        return (V, opt), (out.loss, out.grads)

    (feedback, feedback_opt_state), (fb_losses, fb_grads) = jax.lax.scan(
        fb_step, (list(feedback), feedback_opt_state), keys)
    last_grads = [gr[-1] for gr in fb_grads]
    taus = _targets_from(net, hs_c, feedback, y, beta_out, cfg)
    tloss, grads = local_grads(net, weights, [x] + hs_c[:-1], taus)
    return TPStepOut(grads, last_grads, train_loss, fb_losses[0], tloss), feedback, feedback_opt_state
