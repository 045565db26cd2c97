"""The one table of diagnostics analysis kinds and the columns shown for them: the headline value
the ``mutransfer diagnose`` table pivots over depth × width and the diagnostics page draws first,
whether it is drawn on a log scale, its title, and further columns the page draws beside it.

Kept free of JAX so that pages import it without the numerics (the kinds themselves, with their
configs and run functions, are :data:`mutransfer.diagnostics.ANALYSES`; a test checks both tables
name the same kinds).

``training_diagnostics`` shows ``kappa_abs`` = max|λ|/min|λ| of the activity Hessian: the quantity of
the μPC paper's Fig. 3 that this analysis exists to track, and finite where the Hessian of a
nonlinear net is indefinite (``kappa`` = λ_max/λ_min is ∞ there); its loss/energy ``ratio`` (Fig. 6 at
t > 0) and ``test_acc`` are secondary columns. ``coordinate_check`` shows ``mean_abs_dz`` = mean
|z_l(t) − z_l(0)|, the μP coordinate check (updates stay O(1) in width), with the activity size
``mean_abs_z`` beside it.
"""

from __future__ import annotations

from typing import NamedTuple


class Column(NamedTuple):
    """A displayed column of an analysis table: its name, log10 colour/axis scale, title."""

    value: str
    log: bool
    title: str


class KindColumns(NamedTuple):
    """What is shown of one analysis kind: the headline column and further ones."""

    headline: Column
    extra: tuple[Column, ...] = ()


KIND_COLUMNS: dict[str, KindColumns] = {
    "hessian_condition": KindColumns(Column("kappa", True, "condition number κ(H_z) at initialisation")),
    "loss_energy_ratio": KindColumns(Column("ratio", False, "loss / equilibrated energy F(z*) (→ 1: Theorem 1)")),
    "hessian_condition_during_training": KindColumns(Column("kappa", True, "κ(H_z) during training")),
    "training_diagnostics": KindColumns(
        Column("kappa_abs", True, "κ(H_z) = max|λ|/min|λ| during training (μPC Fig. 3)"),
        (Column("ratio", True, "loss / equilibrated energy F(z*) during training (μPC Fig. 6, t > 0)"),
         Column("test_acc", False, "test accuracy during training"))),
    "coordinate_check": KindColumns(
        Column("mean_abs_dz", True, "coordinate check: mean |Δz_l| = mean |z_l(t) − z_l(0)|"),
        (Column("mean_abs_z", True, "coordinate check at initialisation: mean |z_l| vs width, per layer"),)),
    "gradient_alignment": KindColumns(
        Column("cos_pc_bp", False, "cos(PC equilibrium gradient, BP gradient) vs width")),
}


def headline(kind: str) -> Column | None:
    """The headline column of an analysis kind (None for a kind this table does not know)."""
    k = KIND_COLUMNS.get(kind)
    return None if k is None else k.headline
