"""Diagnostics from the papers (docs/reference/diagnostics.md): activity Hessian and its conditioning, the linear-net
inference equilibrium and equilibrated energy (μPC paper Theorem 1), and the coordinate check.

Conventions
-----------
* Layers. A net has H hidden layers and L = H + 1 weight matrices (``net.depth``). Activities
  are ``hidden = [z_1, ..., z_H]``, each ``(B, N)``; the output f = a_L W_L φ(z_H) is clamped to y,
  the input z_0 = x is clamped, so the *free* activities are z_1..z_H (H·N numbers per example).
* Vectorisation. One example's free activities are stacked layer-major:
  ``vec(z) = [z_1; z_2; ...; z_H]`` (index ``j·N + i`` is unit i of z_{j+1}). With
  ``per_example=False`` the batch is stacked example-major on top of that.
* Per-example vs batch-mean energy. :func:`mutransfer.pc.energy` is the batch MEAN
  F = (1/B) Σ_b E_b with the per-example energy

      E_b(z) = Σ_{l=1..H} ½‖z_l − μ_l(z_{l-1})‖² + γ_L · ℓ(y_b, a_L W_L φ(z_H)).

  Examples do not interact, so ∂²F/∂z∂z is block diagonal over examples with blocks (1/B)·∇²E_b.
  Everything called "the activity Hessian" here is ∇²E_b of ONE example (no 1/B factor), the
  (H·N × H·N) matrix of the μPC paper's Eq. 5 — unless ``per_example=False`` is asked for.
* Block structure. z_l only meets z_{l-1} and z_{l+1} in E, so the Hessian is block tridiagonal:
  diagonal blocks D_l = I + ∂²/∂z_l² ½‖z_{l+1} − μ_{l+1}(z_l)‖² (l < H) and
  D_H = I + γ_L ∂²ℓ/∂z_H², sub-diagonal blocks ∂²E/∂z_{l+1}∂z_l = −J_{l+1}, J_{l+1} = ∂μ_{l+1}/∂z_l.
  This is exact for any activation (the second-derivative terms of a nonlinear μ sit in the
  diagonal blocks), so :func:`activity_hessian_blocks` builds the Hessian from H per-layer
  Jacobians/Hessians in O(H·N³) instead of the dense autodiff's O((H·N)²·N).
* Linear nets (φ = identity). With A_l = a_l W_l (+ I with skips, l = 2..H) and M = a_L W_L:
  D_l = I + A_{l+1}ᵀA_{l+1} (l < H), D_H = I + γ MᵀM, off-diagonal blocks (l, l+1) = −A_{l+1}ᵀ,
  and ∇_z E = H_z z − b with b_1 = a_1 W_1 x, b_H = γ Mᵀ y (zero elsewhere), so the inference
  equilibrium is z* = H_z⁻¹ b (the Hessian does not depend on z or on the data).
  The closed forms assume the ``mse`` output loss ½‖y − f‖².
* Theorem 1. For a linear net F(z*) = (1/2B) Σ_b r_bᵀ S⁻¹ r_b with r = y − f(x),
  S = γ⁻¹ I + Σ_{l=1..H} P_l P_lᵀ, P_l = ∂f/∂z_l = M A_H ⋯ A_{l+1} (P_H = M). For γ = 1 this is the
  paper's S = I + Σ_l P_l P_lᵀ.
* Precision. Closed forms and equilibria are computed in float64 numpy regardless of the weights'
  dtype. Autodiff Hessians are computed in the weights' dtype: run under ``jax.enable_x64(True)``
  with float64 weights when κ is large (float32 resolves λ_min only down to ~1e-7·λ_max).
* Evaluation point. For nonlinear nets the Hessian depends on z; unless ``hidden`` is given it is
  taken at the forward-pass activities (PC's inference initialisation), as in the μPC authors' code.

Modules, one job each (everything is re-exported here, so ``from mutransfer.diagnostics import X``
works as before): :mod:`~mutransfer.diagnostics.hessian` (autodiff and block Hessians),
:mod:`~mutransfer.diagnostics.linear` (linear-net closed forms, equilibria, Theorem 1),
:mod:`~mutransfer.diagnostics.conditioning` (κ by dense eigenvalues or Lanczos),
:mod:`~mutransfer.diagnostics.training` (small training loops), :mod:`~mutransfer.diagnostics.coordinates`
(forward statistics, coordinate check), :mod:`~mutransfer.diagnostics.during_training` (κ and the
loss/energy ratio tracked over training), :mod:`~mutransfer.diagnostics.alignment` (PC/TP updates vs
BP and the Gauss–Newton target) and :mod:`~mutransfer.diagnostics.analyses` (the table-driven
registry that specs and ``mutransfer diagnose`` use).
"""

from mutransfer.diagnostics.analyses import (ANALYSES, Analysis, CoordinateCheckConfig, HessianConditionConfig,
                                             HessianTrainingConfig, LossEnergyRatioConfig, run_analysis)
from mutransfer.diagnostics.conditioning import Conditioning, block_condition_number, condition_number
from mutransfer.diagnostics.coordinates import coordinate_check, forward_stats
from mutransfer.diagnostics.during_training import (TrainingDiagnosticsConfig, numerical_equilibrium,
                                                    run_training_diagnostics)
from mutransfer.diagnostics.hessian import (DEFAULT_MAX_BYTES, GiB, HessianBlocks, _check_size,  # noqa: F401
                                            activity_hessian, activity_hessian_blocks, assemble_blocks)
from mutransfer.diagnostics.linear import (MAX_S_CONDITION, equilibrated_energy,  # noqa: F401
                                           linear_activity_hessian, linear_equilibrium, linear_hessian_blocks, loss_energy_ratio,
                                           theorem1_energy)
from mutransfer.diagnostics.training import _as_xy, _build, _Trainer  # noqa: F401 (benchmarks, tests)

__all__ = [
    "ANALYSES",
    "Analysis",
    "CoordinateCheckConfig",
    "Conditioning",
    "HessianBlocks",
    "HessianConditionConfig",
    "HessianTrainingConfig",
    "LossEnergyRatioConfig",
    "TrainingDiagnosticsConfig",
    "activity_hessian",
    "activity_hessian_blocks",
    "assemble_blocks",
    "block_condition_number",
    "condition_number",
    "coordinate_check",
    "equilibrated_energy",
    "forward_stats",
    "linear_activity_hessian",
    "linear_hessian_blocks",
    "linear_equilibrium",
    "loss_energy_ratio",
    "numerical_equilibrium",
    "run_analysis",
    "run_training_diagnostics",
    "theorem1_energy",
]
