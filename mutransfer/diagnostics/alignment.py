"""PC-vs-BP gradient alignment across width (Ishikawa et al. ICLR 2025; docs/reference/claims.md#claim-7).

How well does predictive coding's weight gradient at the inference equilibrium point in the
direction of backprop's, as the width N grows, when the output precision is
γ_L = γ′ · N^(−γ̄_L) (:func:`mutransfer.pc.output_precision`)? The paper's claim: γ̄_L = 0 → PC's
gradient reduces to BP's (first-order GD) in the infinite-width limit; γ̄_L = −1 → it stays a
Gauss–Newton-like (damped) update.

Conventions
-----------
* ``depth`` is H, the number of hidden layers (L = H + 1 weight matrices), as in
  :func:`mutransfer.diagnostics.coordinate_check`. "3-layer net" = 3 weight matrices = depth 2.
* Energy, per example (hidden precisions γ_l = 1, output precision γ = γ_L, mse loss)::

      E(z) = Σ_{l=1..H} ½‖z_l − μ_l(z_{l-1})‖² + γ · ½‖y − f(z_H)‖²,     F = mean_batch E

  (:func:`mutransfer.pc.energy`). ∇_W F is the PC weight gradient; the BP gradient is ∇_W of
  ½ mean_batch ‖y − f(x)‖² (:func:`mutransfer.bp.gradients`). Both by autodiff of the project's
  own functions, in float64.
* Cosines are between flattened gradients, per weight matrix (``layer`` = "1" … "L", as strings)
  and for all matrices concatenated (``layer`` = "all"; unweighted, so the largest gradient
  dominates it). Cosine is scale-free, so the PC gradient (≈ γ × BP's when γ → 0) needs no
  rescaling; the only rescaling ever applied is by the positive scalar 1/γ, in the reported
  norm ratio ``pc_bp_norm_ratio`` = ‖∇F‖ / (γ ‖∇_W loss‖).

Linear nets: the closed form (docs/reference/algorithms.md#output-precision)
----------------------------------------------------------------------------
For φ = identity write A_1 = a_1 W_1, A_l = a_l W_l (+ I with skips), M = a_L W_L and
P_l = ∂f/∂z_l = M A_H ⋯ A_{l+1} (P_H = M) — constants, independent of x. Setting ∇_z E = 0 with
prediction errors ε_l = z_l − A_l z_{l-1} and output error e = f(z_H) − y gives
ε_H = −γ Mᵀe, ε_l = A_{l+1}ᵀ ε_{l+1}, i.e. ε_l = −γ P_lᵀ e, and unrolling z_H gives
f(z*) = f(x) + Σ_l P_l ε_l, hence

    e* = (I + C_γ)⁻¹ (f(x) − y),    C_γ = γ Σ_{l=1..H} P_l P_lᵀ   (C × C; = Σ_l (γ_L/γ_l) J_l J_lᵀ)
    ε*_l = −γ P_lᵀ e*,              z*_l = A_l z*_{l-1} + ε*_l   (z*_0 = x)

(a Woodbury rewriting of z* = H_z⁻¹ b, :func:`mutransfer.diagnostics.linear_equilibrium`; the two
agree to rounding, tested). The PC weight gradient at equilibrium is therefore, per example,

    ∇_{W_l} E = −a_l ε*_l z*_{l-1}ᵀ = γ · a_l P_lᵀ (I + C_γ)⁻¹ (f − y) · z*_{l-1}ᵀ   (P_L = I)

versus BP's  a_l P_lᵀ (f − y) · h_{l-1}ᵀ  (h = forward activities). PC differs from BP in two
places: the output error is preconditioned by (I + C_γ)⁻¹, and the presynaptic activities are the
equilibrium ones, z*_{l-1} = h_{l-1} + (shift driven by the ε*).

The "GN-like" reference update (``cos_pc_gn``)
-----------------------------------------------
ε* = −γ Jᵀ(I + γ J Jᵀ)⁻¹ (f − y), J = [P_1 … P_H], is exactly the damped Gauss–Newton
(Levenberg–Marquardt) step Δz in the space of all hidden activities that minimises
½‖Δz‖² + (γ/2)‖f − y + J Δz‖². Propagating that *output-space* GN error back through the forward
pass like BP does gives the reference

    G_l = a_l P_lᵀ (I + C_γ)⁻¹ (f − y) · h_{l-1}ᵀ          (batch mean; P_L = I)

i.e. BP with the output error replaced by the damped-GN error. For γ C-dominated
((I + C_γ)⁻¹ ≈ C_γ⁻¹) it is the minimum-norm Gauss–Newton target update (GNT; Bengio 2020,
Meulemans et al. 2020) up to the scalar 1/γ; for C_γ → 0 it is BP. G differs from PC only in the
presynaptic factor (h vs z*), so for the input layer (z*_0 = h_0 = x) PC = γ·G exactly and
``cos_pc_gn`` = 1 there by construction. ``cos_gn_bp`` measures how much the preconditioner alone
turns the update away from BP. NaN for nonlinear nets (no closed form).

Numerical note (what the benchmark shows; see ``benchmarks/gradient_alignment.py``): at
initialisation under μP, P_l P_lᵀ → (1/N)·I (Wishart, C ≪ N), so with γ̄_L = −1 C_γ → γ′·H·I is
asymptotically *isotropic*: the preconditioner becomes a scalar and does not turn the direction
(cos_gn_bp → 1); what keeps PC away from BP at γ̄_L = −1 is the O(1) per-coordinate shift of the
equilibrium activities, z* − h. With γ̄_L = 0 both effects are O(1/N).

Inference to convergence (``method="inference"``)
--------------------------------------------------
Plain gradient descent z ← z − β ∇_z F from the forward pass (as :func:`mutransfer.pc.infer`; β in
the same batch-mean units), in float64, until the relative residual
rms(∇_z F) / rms(∇_z F at the forward pass) ≤ ``tol`` (default 1e-10) or ``steps`` steps
(default 200 000). Default β: 0.9·B/λ̂ for linear nets and 0.5·B/λ̂ otherwise, λ̂ the largest
eigenvalue of the per-example activity Hessian at the forward pass by 100 power iterations
(B/λ̂ in batch-mean units is step 1/λ̂ on each example's energy). A relative residual of 1e-10
puts the activities within ~1e-10·κ(H_z) of z*, far below the 1e-4 agreement tested.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from mutransfer import bp
from mutransfer.networks import Net, Weights, forward, init_weights, layer_dims, make_net
from mutransfer.parametrization import resolve
from mutransfer.diagnostics.linear import linear_equilibrium
from mutransfer.pc import PCConfig, energy, output_precision

__all__ = [
    "ALIGNMENT",
    "EquilibriumInfo",
    "GradientAlignmentConfig",
    "bp_grads",
    "cosine",
    "gn_reference_grads",
    "gradient_alignment",
    "linear_equilibrium_output_space",
    "pc_equilibrium_grads",
    "run_gradient_alignment",
]

METHODS = ("auto", "closed_form", "output_space", "inference")
DEFAULT_TOL = 1e-10
DEFAULT_MAX_STEPS = 200_000


class EquilibriumInfo(NamedTuple):
    """How the equilibrium was found: ``method``, the equilibrium ``hidden`` activities
    [z*_1..z*_H] (float64 numpy, (B, N) each), ``steps`` (GD steps; 0 for closed forms),
    ``residual`` (rms ∇_z F relative to its value at the forward pass; 0 for closed forms) and
    ``beta`` (the step used; NaN for closed forms)."""

    method: str
    hidden: list
    steps: int
    residual: float
    beta: float


# --------------------------------------------------------------------------------------------
# Linear closed forms (float64 numpy)
# --------------------------------------------------------------------------------------------


def _linear_parts(net: Net, weights: Weights):
    """float64 (A_1..A_H, M, [P_1..P_H]) of a linear net: A_1 = a_1 W_1, A_l = a_l W_l (+ I),
    M = a_L W_L, P_l = ∂f/∂z_l (C, N)."""
    if net.activation != "linear":
        raise ValueError(f"closed form needs a linear net (activation={net.activation!r}); use method='inference'")
    W = [np.asarray(w, np.float64) for w in weights]
    a = net.multipliers
    N = W[0].shape[0]
    A = [a[0] * W[0]] + [a[k] * W[k] + (np.eye(N) if net.residual else 0.0) for k in range(1, net.depth - 1)]
    M = a[-1] * W[-1]
    P = [M]
    for Al in reversed(A[1:]):
        P.append(P[-1] @ Al)
    return A, M, P[::-1]


def _precond_error(P: Sequence[np.ndarray], delta: np.ndarray, gamma: float) -> np.ndarray:
    """e* = (I + C_γ)⁻¹ δ for every row δ of ``delta`` (B, C); C_γ = γ Σ_l P_l P_lᵀ."""
    C = delta.shape[1]
    S = np.eye(C) + gamma * sum(p @ p.T for p in P)
    return np.linalg.solve(S, delta.T).T  # S symmetric


def linear_equilibrium_output_space(net: Net, weights: Weights, x, y, *, output_precision: float = 1.0
                                    ) -> list[np.ndarray]:
    """Inference equilibrium [z*_1..z*_H] of a LINEAR net (mse) from the C × C output-space
    solve (module docstring; docs/reference/algorithms.md#output-precision):
    e* = (I + C_γ)⁻¹(f − y), ε*_l = −γ P_lᵀ e*,
    z*_l = A_l z*_{l-1} + ε*_l. Same answer as :func:`mutransfer.diagnostics.linear_equilibrium`
    but O(H·C·N² + B·H·N²) instead of O(H·N³). float64 numpy, (B, N) each."""
    A, M, P = _linear_parts(net, weights)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    h = x
    for Al in A:
        h = h @ Al.T
    f = h @ M.T
    e = _precond_error(P, f - y, output_precision)
    z, out = x, []
    for Al, Pl in zip(A, P):
        z = z @ Al.T - output_precision * (e @ Pl)
        out.append(z)
    return out


def gn_reference_grads(net: Net, weights: Weights, x, y, gamma_L: float) -> list[np.ndarray]:
    """The damped Gauss–Newton reference update of a LINEAR net (module docstring):
    G_l = mean_b a_l P_lᵀ (I + C_γ)⁻¹ (f_b − y_b) h_{l-1,b}ᵀ (P_L = I), forward activities h.
    float64 numpy, shaped like the weights. γ_L → 0 gives the BP gradient."""
    A, M, P = _linear_parts(net, weights)
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    hs = [x]
    for Al in A:
        hs.append(hs[-1] @ Al.T)
    f = hs[-1] @ M.T
    e = _precond_error(P, f - y, gamma_L)
    B = x.shape[0]
    a = net.multipliers
    Ps = P + [np.eye(M.shape[0])]
    return [a[k] * (e @ Ps[k]).T @ hs[k] / B for k in range(net.depth)]


# --------------------------------------------------------------------------------------------
# Equilibrium gradients
# --------------------------------------------------------------------------------------------


def _f64(weights, x, y):
    return ([jnp.asarray(w, jnp.float64) for w in weights], jnp.asarray(x, jnp.float64),
            jnp.asarray(y, jnp.float64))


def _lambda_max(net: Net, weights, x, y, cfg: PCConfig, hidden, iters: int = 100) -> float:
    """Largest eigenvalue of the per-example activity Hessian (max over the batch) at ``hidden``,
    by power iteration on Hessian-vector products of the batch-SUM energy."""
    B = x.shape[0]
    g = jax.grad(lambda zs: B * energy(net, weights, zs, x, y, cfg))
    hvp = jax.jit(lambda v: jax.jvp(g, (hidden,), (v,))[1])
    v = [jnp.asarray(np.random.default_rng(0).standard_normal(h.shape)) for h in hidden]
    lam = 0.0
    for _ in range(iters):
        n = math.sqrt(sum(float(jnp.sum(u * u)) for u in v))
        v = [u / n for u in v]
        hv = hvp(v)
        lam = sum(float(jnp.sum(a * b)) for a, b in zip(v, hv))
        v = hv
    return lam


def _infer_converged(net: Net, weights, x, y, cfg: PCConfig, beta: float, max_steps: int, tol: float):
    grad_z = jax.grad(lambda zs: energy(net, weights, zs, x, y, cfg))

    def rms(g):
        return jnp.sqrt(sum(jnp.sum(u * u) for u in g) / sum(u.size for u in g))

    hidden0 = forward(net, weights, x)[:-1]
    r0 = rms(grad_z(hidden0))

    def cond(state):
        _, t, r = state
        return (t < max_steps) & (r > tol * r0) & jnp.isfinite(r)

    def body(state):
        zs, t, _ = state
        g = grad_z(zs)
        zs = [z - beta * u for z, u in zip(zs, g)]
        return zs, t + 1, rms(grad_z(zs))

    zs, t, r = jax.jit(lambda z0: jax.lax.while_loop(cond, body, (z0, jnp.asarray(0), r0)))(hidden0)
    rel = float(r / r0) if float(r0) > 0 else 0.0
    if not math.isfinite(rel):
        raise FloatingPointError(f"PC inference diverged (beta={beta}); pass a smaller beta")
    return zs, int(t), rel


def pc_equilibrium_grads(net: Net, weights: Weights, x, y, gamma_L: float, *, method: str = "closed_form",
                         steps: int | None = None, beta: float | None = None, tol: float = DEFAULT_TOL,
                         return_info: bool = False):
    """∇_W F (batch-mean PC energy, output precision γ_L, mse) at the inference equilibrium.

    ``method``:
      * ``"closed_form"`` — z* = H_z⁻¹ b by block Cholesky
        (:func:`mutransfer.diagnostics.linear_equilibrium`), LINEAR nets; O(H·N³).
      * ``"output_space"`` — the same z* from the C × C solve e* = (I + C_γ)⁻¹(f − y)
        (:func:`linear_equilibrium_output_space`), LINEAR nets; cheap at any width.
      * ``"inference"`` — GD on the activities to convergence (any activation): ``steps`` (max,
        default 200 000), ``beta`` (batch-mean units like ``pc.infer``; default from the Hessian's
        λ_max, see the module docstring), stopping at relative residual ``tol``.
      * ``"auto"`` — ``output_space`` for linear nets, ``inference`` otherwise.

    The gradient itself is autodiff of :func:`mutransfer.pc.energy` at z*, in float64. Returns
    a list of float64 numpy arrays shaped like the weights; with ``return_info=True`` a pair
    (grads, :class:`EquilibriumInfo`).
    """
    if method not in METHODS:
        raise ValueError(f"method: unknown {method!r}; choose one of {METHODS}")
    if method == "auto":
        method = "output_space" if net.activation == "linear" else "inference"
    cfg = PCConfig(inference_steps=0, loss="mse", output_precision=float(gamma_L))
    with jax.enable_x64(True):
        w, xj, yj = _f64(weights, x, y)
        steps_done, residual, used_beta = 0, 0.0, math.nan
        if method == "closed_form":
            hidden = linear_equilibrium(net, w, xj, yj, output_precision=float(gamma_L))
        elif method == "output_space":
            hidden = linear_equilibrium_output_space(net, w, xj, yj, output_precision=float(gamma_L))
        else:
            if beta is None:
                lam = _lambda_max(net, w, xj, yj, cfg, forward(net, w, xj)[:-1])
                beta = (0.9 if net.activation == "linear" else 0.5) * xj.shape[0] / lam
            used_beta = float(beta)
            zs, steps_done, residual = _infer_converged(net, w, xj, yj, cfg, used_beta,
                                                        int(steps or DEFAULT_MAX_STEPS), float(tol))
            hidden = [np.asarray(z) for z in zs]
        hj = [jnp.asarray(h, jnp.float64) for h in hidden]
        grads = jax.grad(lambda ww: energy(net, ww, hj, xj, yj, cfg))(w)
        grads = [np.asarray(g, np.float64) for g in grads]
    if return_info:
        return grads, EquilibriumInfo(method, [np.asarray(h, np.float64) for h in hidden], steps_done, residual,
                                      used_beta)
    return grads


def bp_grads(net: Net, weights: Weights, x, y) -> list[np.ndarray]:
    """∇_W ½ mean_b ‖y − f(x)‖² by autodiff (:func:`mutransfer.bp.gradients`), float64 numpy."""
    with jax.enable_x64(True):
        w, xj, yj = _f64(weights, x, y)
        out = bp.gradients(net, w, xj, yj, 0.0, PCConfig(inference_steps=0, loss="mse"))
        return [np.asarray(g, np.float64) for g in out.grads]


def cosine(a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray) -> float:
    """Cosine similarity of two arrays (or lists of arrays, concatenated), float64."""
    if isinstance(a, (list, tuple)):
        a = np.concatenate([np.ravel(u) for u in a])
        b = np.concatenate([np.ravel(u) for u in b])
    a = np.ravel(np.asarray(a, np.float64))
    b = np.ravel(np.asarray(b, np.float64))
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return math.nan
    return float(a @ b / (na * nb))


# --------------------------------------------------------------------------------------------
# The width sweep
# --------------------------------------------------------------------------------------------


def _batch(data, *, batch_size: int, input_dim: int, output_dim: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (B, D), one-hot y (B, C)) float64: the first ``batch_size`` examples of a Dataset, an
    (x, labels-or-one-hot) pair or a dataset name; None / "synthetic": x ~ N(0, I_D), uniform
    random labels over ``output_dim`` classes (seeded by ``data_seed``)."""
    if data is None or (isinstance(data, str) and data == "synthetic"):
        rng = np.random.default_rng(data_seed)
        x = rng.standard_normal((batch_size, input_dim))
        labels, C = rng.integers(0, output_dim, batch_size), output_dim
    else:
        if isinstance(data, str):
            from mutransfer.data import load_dataset

            data = load_dataset(data, train_examples=batch_size, test_examples=1, subset_seed=data_seed)
        if hasattr(data, "x_train"):
            x, labels, C = data.x_train, np.asarray(data.y_train), int(data.num_classes)
        else:
            x, yy = data
            yy = np.asarray(yy)
            if yy.ndim == 2:
                labels, C = np.argmax(yy, axis=1), yy.shape[1]
            else:
                labels, C = yy, max(int(yy.max()) + 1, output_dim)
        x, labels = np.asarray(x)[:batch_size], np.asarray(labels)[:batch_size]
    return np.asarray(x, np.float64), np.eye(C)[np.asarray(labels, int)]


def _shift(shift: list, size: list, sl: slice) -> float:
    """Relative presynaptic shift of one layer, or pooled over the hidden activities z_1..z_H for
    "all" (x is clamped and excluded, else its fixed D-dim norm would dilute the pool)."""
    if sl == slice(None):
        return math.sqrt(sum(shift[1:]) / sum(size[1:]))
    return math.sqrt(sum(shift[sl]) / sum(size[sl]))


def gradient_alignment(parametrization: str, *, widths: Sequence[int], depth: int = 2,
                       gamma_exponents: Sequence[float] = (0.0, -1.0), gamma_prime: float = 1.0,
                       activation: str = "linear", residual: bool = False, data: Any = None,
                       seeds: Sequence[int] = (0,), batch_size: int = 256, input_dim: int = 64,
                       output_dim: int = 10, method: str = "auto", data_seed: int = 0,
                       inference_steps: int | None = None, beta: float | None = None,
                       tol: float = DEFAULT_TOL) -> pd.DataFrame:
    """Cosine of PC's equilibrium weight gradient with BP's (and with the damped-GN reference),
    per layer and overall, over ``widths`` × ``gamma_exponents`` × ``seeds``, at initialisation.

    Net: ``depth`` = H hidden layers of width N, ``parametrization`` (resolved with base shape =
    own shape; lr multipliers play no role in gradients), weights from ``jax.random.key(seed)``
    in float64. Data: one fixed batch (see :func:`_batch`; the same for all seeds and widths).
    Output precision γ_L = γ′·N^(−γ̄_L) for each γ̄_L in ``gamma_exponents``. ``method``: as
    :func:`pc_equilibrium_grads` (``"auto"``: output-space closed form for linear nets, GD
    inference to convergence otherwise).

    Returns one row per (width, γ̄_L, seed, layer) with columns ``parametrization``,
    ``activation``, ``residual``, ``width``, ``depth``, ``gamma_exponent``, ``gamma_prime``,
    ``gamma_L``, ``seed``, ``layer`` ("1".."L" or "all"), ``cos_pc_bp``, ``cos_pc_gn`` and
    ``cos_gn_bp`` (NaN for nonlinear nets), ``pc_bp_norm_ratio`` (‖∇F‖ / (γ_L ‖∇loss‖)),
    ``presyn_shift`` (‖z*_{l-1} − h_{l-1}‖ / ‖h_{l-1}‖, the relative equilibrium shift of the layer's
    presynaptic activities — 0 for layer 1, whose input x is clamped; pooled over z_1..z_H for
    "all"), ``method`` and ``inference_steps`` (GD steps used; 0 for closed forms).
    """
    x, y = _batch(data, batch_size=batch_size, input_dim=input_dim, output_dim=output_dim, data_seed=data_seed)
    D, C = x.shape[1], y.shape[1]
    linear = activation == "linear"
    rows = []
    for width in widths:
        layers = resolve(parametrization, input_dim=D, width=width, hidden_layers=depth, output_dim=C,
                         residual=residual)
        net = make_net(activation, residual, layers)
        for seed in seeds:
            with jax.enable_x64(True):
                w = init_weights(jax.random.key(seed), layer_dims(D, width, depth, C),
                                 [p.init_std for p in layers], jnp.float64)
            g_bp = bp_grads(net, w, x, y)
            with jax.enable_x64(True):
                h_fwd = [np.asarray(h, np.float64) for h in forward(net, w, jnp.asarray(x))[:-1]]
            for ge in gamma_exponents:
                gamma = output_precision(gamma_prime, ge, width)
                g_pc, info = pc_equilibrium_grads(net, w, x, y, gamma, method=method, steps=inference_steps,
                                                  beta=beta, tol=tol, return_info=True)
                g_gn = gn_reference_grads(net, w, x, y, gamma) if linear else None
                shift = [0.0] + [float(np.sum((z - h) ** 2)) for z, h in zip(info.hidden, h_fwd)]
                size = [float(np.sum(x ** 2))] + [float(np.sum(h ** 2)) for h in h_fwd]
                base = {"parametrization": parametrization, "activation": activation, "residual": bool(residual),
                        "width": int(width), "depth": int(depth), "gamma_exponent": float(ge),
                        "gamma_prime": float(gamma_prime), "gamma_L": gamma, "seed": int(seed),
                        "method": info.method, "inference_steps": info.steps}
                for name, sl in [(str(k + 1), slice(k, k + 1)) for k in range(net.depth)] + [("all", slice(None))]:
                    pc_l, bp_l = g_pc[sl], g_bp[sl]
                    ratio = (math.sqrt(sum(float(np.sum(g * g)) for g in pc_l))
                             / (gamma * math.sqrt(sum(float(np.sum(g * g)) for g in bp_l))))
                    rows.append({**base, "layer": name, "cos_pc_bp": cosine(pc_l, bp_l),
                                 "cos_pc_gn": cosine(pc_l, g_gn[sl]) if linear else math.nan,
                                 "cos_gn_bp": cosine(g_gn[sl], bp_l) if linear else math.nan,
                                 "pc_bp_norm_ratio": ratio,
                                 "presyn_shift": _shift(shift, size, sl)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Table-driven analysis (config in, DataFrame out)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GradientAlignmentConfig:
    """Arguments of :func:`gradient_alignment`, one block of rows per parametrization.

    Defaults: the Ishikawa et al. setting — 3-layer (H = 2) linear plain MLP under ``mupc``
    (identical to ``mup`` here: same multipliers and init, they differ only in lr multipliers),
    γ̄_L ∈ {0, −1}, γ′ = 1, one batch of 256 Gaussian inputs (D = 64, 10 classes), 3 seeds.
    ``dataset``: "synthetic" or a :func:`mutransfer.data.load_dataset` name (e.g.
    "fashion_mnist"; its first ``batch_size`` examples of a seeded subset)."""

    parametrizations: tuple[str, ...] = ("mupc",)
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)
    depth: int = 2
    gamma_exponents: tuple[float, ...] = (0.0, -1.0)
    gamma_prime: float = 1.0
    activation: str = "linear"
    residual: bool = False
    dataset: str = "synthetic"
    input_dim: int = 64
    output_dim: int = 10
    batch_size: int = 256
    seeds: tuple[int, ...] = (0, 1, 2)
    method: str = "auto"
    data_seed: int = 0


def run_gradient_alignment(cfg: GradientAlignmentConfig) -> pd.DataFrame:
    """Run :class:`GradientAlignmentConfig` → concatenated :func:`gradient_alignment` frames."""
    frames = [gradient_alignment(p, widths=cfg.widths, depth=cfg.depth, gamma_exponents=cfg.gamma_exponents,
                                 gamma_prime=cfg.gamma_prime, activation=cfg.activation, residual=cfg.residual,
                                 data=cfg.dataset, seeds=cfg.seeds, batch_size=cfg.batch_size,
                                 input_dim=cfg.input_dim, output_dim=cfg.output_dim, method=cfg.method,
                                 data_seed=cfg.data_seed)
              for p in cfg.parametrizations]
    return pd.concat(frames, ignore_index=True)


DESCRIPTION = ("cosine of PC's equilibrium weight gradient with BP's (and a damped Gauss–Newton reference) "
               "across widths for output precision γ_L = γ′·N^(−γ̄_L) (Ishikawa et al.)")

# (name, config class, run function, description) — for the table-driven registry.
ALIGNMENT = ("gradient_alignment", GradientAlignmentConfig, run_gradient_alignment, DESCRIPTION)
