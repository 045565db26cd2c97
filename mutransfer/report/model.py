"""The optimum-shift report as typed, frozen values: :class:`Report` → :class:`Analysis` (one group ×
size axis) → :class:`SizeRow` (one size), with the verdict (:class:`Verdict`), its reasons
(:class:`Reason`, codes :class:`ReasonCode`), the robustness views (:class:`ByBase`,
:class:`ByBudget`), missing points (:class:`Missing`) and surfaces (:class:`Surface`).

These classes are the one source of the report's fields: pages, the command line and the service
read attributes of them, never keys of the JSON. The JSON is their serialisation
(:meth:`Report.to_json` / :meth:`Report.from_json`), unchanged on the wire:

* numbers: finite floats and ints as they are, +inf as ``"inf"``, -inf as ``"-inf"``, NaN or "not
  available" as ``null`` (so ``json.dumps(report.to_json(), allow_nan=False)`` always works). In
  Python a ``float | None`` field holds ``math.inf`` for a diverged value and ``None`` for "not
  available" (NaN never appears in a typed report);
* sequences are tuples in Python and arrays on the wire; enums are their string values;
* a reason or a missing entry carries only the keys of its kind (:data:`REASON_FIELDS`,
  :data:`MISSING_FIELDS`); fields marked ``optional`` (e.g. ``sweep_id``) are left out when None.

The JSON schema of the wire format is generated from these classes (:mod:`.schema`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Literal, Mapping, Union

import numpy as np

Number = Union[int, float]  # a report number; float | None fields hold inf for "diverged", None for n/a


class Verdict(enum.StrEnum):
    """Does the base size's optimum transfer along the axis (:mod:`.verdict`)?"""

    TRANSFERS = "transfers"
    DOES_NOT_TRANSFER = "does not transfer"
    INCONCLUSIVE = "inconclusive"


class ReasonCode(enum.StrEnum):
    """Why a verdict is not ``transfers``; effect and meaning in :data:`.verdict.REASONS`."""

    REGRET = "regret"
    DRIFT = "drift"
    NO_OPTIMUM = "no_optimum"
    UNCERTAIN = "uncertain"
    OPTIMUM_ON_EDGE = "optimum_on_edge"
    PARTIAL = "partial"
    TOO_FEW_SEEDS = "too_few_seeds"
    NOT_RUN = "not_run"


def _optional(default: Any = None) -> Any:
    """A field left out of the JSON when None (added by a caller, not by the builder)."""
    return field(default=default, metadata={"optional": True})


# --------------------------------------------------------------------------- the codec


def _encode_number(x: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    f = float(x)
    if math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def _decode_number(x: Any, where: str) -> Any:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    if isinstance(x, str):
        if x in ("inf", "-inf"):
            return math.inf if x == "inf" else -math.inf
        raise ValueError(f"{where}: {x!r} is not a number (numbers are finite, 'inf', '-inf' or null)")
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{where}: {x!r} is not a number")
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x)
    raise ValueError(f"{where}: {x!r} is not a number")


def _plain(x: Any) -> Any:
    """An opaque mapping/value (a group key, a refinement record) as plain JSON."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (float, np.floating, int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return _encode_number(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _args(hint: Any) -> tuple:
    return typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _encode(value: Any, hint: Any) -> Any:
    if value is None:
        return None
    if _is_union(hint):
        arms = [a for a in _args(hint) if a is not type(None)]
        if set(arms) <= {int, float}:
            return _encode_number(value)
        if len(arms) == 1:
            return _encode(value, arms[0])
        return _plain(value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        item = _args(hint)[0]
        return [_encode(v, item) for v in value]
    if origin is Literal:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value.value if isinstance(value, enum.Enum) else str(value)
    if dataclasses.is_dataclass(hint):
        return value.to_json()
    if hint in (int, float):
        return _encode_number(value)
    if hint is bool:
        return bool(value)
    if hint is str:
        return str(value)
    return _plain(value)  # Mapping / Any: opaque


def _decode(value: Any, hint: Any, where: str) -> Any:
    if _is_union(hint):
        arms = [a for a in _args(hint) if a is not type(None)]
        if value is None:
            if type(None) in _args(hint):
                return None
            raise ValueError(f"{where}: null is not allowed")
        if set(arms) <= {int, float}:
            return _decode_number(value, where)
        if len(arms) == 1:
            return _decode(value, arms[0], where)
        return value
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        item = _args(hint)[0]
        return tuple(_decode(v, item, f"{where}[{k}]") for k, v in enumerate(value))
    if origin is Literal:
        if value not in _args(hint):
            raise ValueError(f"{where}: {value!r} is not one of {list(_args(hint))}")
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not one of {[m.value for m in hint]}") from None
    if dataclasses.is_dataclass(hint):
        return hint.from_json(value, where=where)
    if hint in (int, float):
        if value is None:
            raise ValueError(f"{where}: null is not allowed")
        v = _decode_number(value, where)
        if hint is int and (isinstance(v, float)):
            raise ValueError(f"{where}: {value!r} is not an integer")
        return v
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {value!r} is not a boolean")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: {value!r} is not a string")
        return value
    if typing.get_origin(hint) in (Mapping, dict, typing.get_origin(Mapping[str, Any])):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        return dict(value)
    return value


@lru_cache(maxsize=None)
def hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a report class (cached)."""
    return typing.get_type_hints(cls)


class _Json:
    """JSON (de)serialisation of a report dataclass from its field types (module docstring)."""

    # (discriminating field, {its value: the other fields that kind carries}) for a variant record
    _VARIANTS: ClassVar[tuple[str, Mapping[str, tuple[str, ...]]] | None] = None

    @classmethod
    def wire_fields(cls, kind: str | None = None) -> tuple[str, ...]:
        """The JSON keys of this class (of one ``kind`` for a variant record), in wire order."""
        names = tuple(f.name for f in dataclasses.fields(cls))
        if cls._VARIANTS is None or kind is None:
            return names
        tag, table = cls._VARIANTS
        allowed = {tag, *table[kind]}
        return tuple(n for n in names if n in allowed)

    def to_json(self) -> dict[str, Any]:
        """This value as plain JSON (numbers encoded, module docstring)."""
        kinds = type(self)._VARIANTS
        kind = None if kinds is None else str(getattr(self, kinds[0]))
        out: dict[str, Any] = {}
        types_ = hints(type(self))
        for f in dataclasses.fields(self):
            if f.name not in type(self).wire_fields(kind):
                continue
            v = getattr(self, f.name)
            if v is None and f.metadata.get("optional"):
                continue
            out[f.name] = _encode(v, types_[f.name])
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str | None = None):
        """Read a value back from its JSON; a ValueError names the field path of anything wrong."""
        where = where or cls.__name__
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
        types_ = hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; a new report field is declared in "
                             f"mutransfer/report/model.py ({cls.__name__})")
        if cls._VARIANTS is not None:
            tag, table = cls._VARIANTS
            kind = data.get(tag)
            if kind not in table:
                raise ValueError(f"{where}.{tag}: {kind!r} is not one of {sorted(table)}")
            extra = sorted(set(data) - set(cls.wire_fields(kind)))
            if extra:
                raise ValueError(f"{where}: field(s) {extra} do not belong to {tag} {kind!r}")
        kwargs = {}
        for name, f in fields.items():
            if name in data:
                kwargs[name] = _decode(data[name], types_[name], f"{where}.{name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{where}: missing field {name!r}")
        return cls(**kwargs)


# --------------------------------------------------------------------------- the records


@dataclass(frozen=True)
class Thresholds(_Json):
    """The verdict's tolerances: regret (in the metric's regret unit), argmin moves in grid steps,
    fitted drift in octaves per doubling (reported, not deciding)."""

    regret_tol: float
    steps_tol: int
    drift_tol: float


@dataclass(frozen=True)
class Provisional(_Json):
    """An unfinished sweep: ``cells_done`` of its ``cells_total`` planned cells have results."""

    cells_done: int
    cells_total: int


@dataclass(frozen=True)
class EdgeFlag(_Json):
    """A size's grid argmin on the grid's edge: ``lr`` (weight_lr | activity_lr), ``side``, its value."""

    lr: str
    side: Literal["low", "high"]
    value: float


@dataclass(frozen=True)
class GridPoint(_Json):
    """A grid point (weight_lr, activity_lr); activity_lr None without one; both None for "no finite
    optimum" in a bootstrap frequency table."""

    weight_lr: float | None
    activity_lr: float | None


@dataclass(frozen=True)
class ArgminFreq(_Json):
    """How often a grid point wins the argmin over the seed-bootstrap resamples (``freq`` in [0, 1])."""

    weight_lr: float | None
    activity_lr: float | None
    freq: float


@dataclass(frozen=True)
class SizeRow(_Json):
    """One size of an analysis (the base is the smallest size, ``Analysis.base_size``).

    Optima: ``eta_star``/``beta_star`` the grid argmin of the seed-mean surface, ``*_fit`` the
    sub-grid quadratic fit in (log2 η, log2 β) with its bootstrap CI (``fit``: its kind,
    ``fit_clipped``: clipped to the grid). Transfer of the base optimum: ``regret`` (unit
    ``Report.regret_unit``; inf when the base optimum diverged here, None when not run / no optimum)
    with ``regret_ci``; ``grid_steps_*`` the argmin's move in steps of the sweep's grid with CIs;
    ``dlog2_*`` the same in octaves (``*_fit`` for the fit); ``drift_*`` octaves per doubling of
    size (None at the base). ``metric_at_opt`` / ``metric_at_base_opt`` in the metric's natural units.
    Seed bootstrap: ``seed_mode`` (most frequent argmin) and its ``seed_mode_freq``,
    ``seed_argmin_freq`` (all winners); None / empty with one seed. ``complete``: no grid point or
    seed missing at this size."""

    size: int
    complete: bool
    n_seeds: int
    edge: tuple[EdgeFlag, ...]
    metric_at_base_opt: float | None
    regret: float | None
    grid_steps_eta: int | None
    grid_steps_beta: int | None
    dlog2_eta: float | None
    dlog2_beta: float | None
    regret_ci: tuple[float | None, ...] | None
    grid_steps_eta_ci: tuple[int, ...] | None
    grid_steps_beta_ci: tuple[int, ...] | None
    eta_star: float | None
    beta_star: float | None
    eta_star_fit: float | None
    beta_star_fit: float | None
    fit: str
    fit_clipped: bool
    metric_at_opt: float | None
    eta_star_fit_ci: tuple[float, ...] | None
    beta_star_fit_ci: tuple[float, ...] | None
    dlog2_eta_fit: float | None
    dlog2_beta_fit: float | None
    drift_eta: float | None
    drift_beta: float | None
    seed_mode: GridPoint | None
    seed_mode_freq: float | None
    seed_argmin_freq: tuple[ArgminFreq, ...]
    n_runs: int
    n_diverged: int
    n_diverged_inference: int = 0  # of n_diverged: runs whose inference diverged (mutransfer.inference_health)
    local: bool = False  # ran a local lr grid (sweeps/decide.py): optimum and regret against its neighbourhood

    def star(self, lr: str) -> float | None:
        """The grid optimum of ``lr`` ("eta"/"weight_lr" or "beta"/"activity_lr")."""
        return self.eta_star if _lr(lr) == "eta" else self.beta_star

    def star_fit(self, lr: str) -> float | None:
        return self.eta_star_fit if _lr(lr) == "eta" else self.beta_star_fit

    def star_fit_ci(self, lr: str) -> tuple[float, ...] | None:
        return self.eta_star_fit_ci if _lr(lr) == "eta" else self.beta_star_fit_ci

    def grid_steps(self, lr: str) -> int | None:
        return self.grid_steps_eta if _lr(lr) == "eta" else self.grid_steps_beta

    def grid_steps_ci(self, lr: str) -> tuple[int, ...] | None:
        return self.grid_steps_eta_ci if _lr(lr) == "eta" else self.grid_steps_beta_ci

    def dlog2(self, lr: str) -> float | None:
        return self.dlog2_eta if _lr(lr) == "eta" else self.dlog2_beta


def _lr(lr: str) -> str:
    if lr in ("eta", "weight_lr"):
        return "eta"
    if lr in ("beta", "activity_lr"):
        return "beta"
    raise ValueError(f"lr={lr!r}: expected eta/weight_lr or beta/activity_lr")


@dataclass(frozen=True)
class Reason(_Json):
    """One reason of a verdict; which fields a code carries is :data:`REASON_FIELDS`.

    ``detail`` is one line of measured numbers. ``decisive`` (regret, drift, no_optimum): the
    failure is at a size whose grid is complete, with the base's complete too, so it decides
    "does not transfer". ``criterion`` (regret | weight_lr | activity_lr), ``value`` and its ``ci``
    (regret in ``unit``, or grid steps of ``lr``); edge: ``lr``, ``side``, the ``sizes`` and grid
    ``values`` and which way to ``extend`` the grid; partial: ``cells_done``/``cells_total`` sizes
    complete, ``missing_sizes``, ``incomplete_sizes``; too_few_seeds: ``sizes`` and the least
    ``n_seeds``."""

    code: ReasonCode
    detail: str
    size: int | None = None
    criterion: str | None = None
    value: float | None = None
    ci: tuple[float | None, ...] | None = None
    decisive: bool | None = None
    unit: str | None = None
    lr: str | None = None
    side: Literal["low", "high"] | None = None
    sizes: tuple[int, ...] | None = None
    values: tuple[float, ...] | None = None
    extend: Literal["below", "above"] | None = None
    cells_done: int | None = None
    cells_total: int | None = None
    missing_sizes: tuple[int, ...] | None = None
    incomplete_sizes: tuple[int, ...] | None = None
    n_seeds: int | None = None

    _VARIANTS: ClassVar = ("code", {})  # filled below from REASON_FIELDS

    @property
    def effect(self) -> str:
        """"fails" (decides "does not transfer" when decisive) or "blocks" (rules out "transfers")."""
        from .verdict import REASONS

        return REASONS[self.code][0]


# reason code -> the fields (besides ``code``) it carries, in wire order
REASON_FIELDS: dict[ReasonCode, tuple[str, ...]] = {
    ReasonCode.REGRET: ("size", "criterion", "value", "ci", "decisive", "detail", "unit"),
    ReasonCode.DRIFT: ("size", "criterion", "value", "ci", "decisive", "detail", "lr"),
    ReasonCode.NO_OPTIMUM: ("size", "decisive", "detail"),
    ReasonCode.UNCERTAIN: ("size", "criterion", "value", "ci", "detail"),
    ReasonCode.NOT_RUN: ("size", "detail"),
    ReasonCode.OPTIMUM_ON_EDGE: ("lr", "side", "sizes", "values", "extend", "detail"),
    ReasonCode.PARTIAL: ("cells_done", "cells_total", "missing_sizes", "incomplete_sizes", "detail"),
    ReasonCode.TOO_FEW_SEEDS: ("sizes", "n_seeds", "detail"),
}
Reason._VARIANTS = ("code", {str(k): v for k, v in REASON_FIELDS.items()})


@dataclass(frozen=True)
class Missing(_Json):
    """What the sweep has not (yet) run: a whole ``size``, a grid ``point`` at a size, or some
    ``seeds`` at a point (``n_seeds`` of ``expected_seeds``); fields per kind: :data:`MISSING_FIELDS`."""

    kind: Literal["size", "point", "seeds"]
    size: int
    weight_lr: float | None = None
    activity_lr: float | None = None
    n_seeds: int | None = None
    expected_seeds: int | None = None

    _VARIANTS: ClassVar = ("kind", {})


MISSING_FIELDS: dict[str, tuple[str, ...]] = {
    "size": ("size",),
    "point": ("size", "weight_lr", "activity_lr"),
    "seeds": ("size", "weight_lr", "activity_lr", "n_seeds", "expected_seeds"),
}
Missing._VARIANTS = ("kind", MISSING_FIELDS)


@dataclass(frozen=True)
class Surface(_Json):
    """The seed-mean metric over the (weight_lr, activity_lr) grid at one size, in natural units:
    ``values[i][j]`` at weight_lr[i], activity_lr[j] (one column without an activity lr); None =
    not run, ±inf = diverged. ``n_seeds[i][j]``: seeds run there."""

    size: int
    weight_lr: tuple[float, ...]
    activity_lr: tuple[float, ...] | None
    values: tuple[tuple[float | None, ...], ...]
    n_seeds: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class RegretAt(_Json):
    """The regret (with CI) at one size when another size is the base (:class:`ByBase`)."""

    size: int
    regret: float | None
    regret_ci: tuple[float | None, ...] | None


@dataclass(frozen=True)
class ByBase(_Json):
    """The verdict with ``base_size`` as the base: its reasons' codes, regret at every size."""

    base_size: int
    verdict: Verdict
    verdict_text: str
    reason_codes: tuple[ReasonCode, ...]
    max_regret: float | None
    regret: tuple[RegretAt, ...]


@dataclass(frozen=True)
class BudgetSize(_Json):
    """One size at one budget fraction: grid argmin, metric there, and the base optimum's regret."""

    size: int
    eta_star: float | None
    beta_star: float | None
    metric_at_opt: float | None
    regret: float | None
    regret_ci: tuple[float | None, ...] | None


@dataclass(frozen=True)
class ByBudget(_Json):
    """The verdict at ``fraction`` of the training steps, from the runs ``column`` that holds the
    metric at that checkpoint (:data:`.metrics.BUDGET_COLUMNS`)."""

    fraction: float
    column: str
    verdict: Verdict
    verdict_text: str
    reason_codes: tuple[ReasonCode, ...]
    max_regret: float | None
    sizes: tuple[BudgetSize, ...]


@dataclass(frozen=True)
class DriftSlope:
    """The sub-grid fit's drift d log2 lr* / d log2 size (octaves per doubling) with its CI and its
    state against ``drift_tol`` (within | beyond | uncertain; None without a slope)."""

    value: float | None
    ci: tuple[float, ...] | None
    state: str | None


@dataclass(frozen=True)
class Analysis(_Json):
    """One group of fixed settings (``group``: algorithm, parametrization, activation, dataset and the
    other size axis held) along one size ``axis``: the grids, one :class:`SizeRow` per size (the
    smallest is the base), the fitted drift slopes, the verdict with its text and reasons, the
    robustness views (``by_budget`` None with ``by_budget_note`` when unavailable), warnings,
    what is missing, the surfaces, and the sweeps whose runs it read."""

    group: Mapping[str, Any]
    axis: str
    base_size: int
    eta_grid: tuple[float, ...]
    beta_grid: tuple[float, ...] | None
    sizes: tuple[SizeRow, ...]
    drift_slope_eta: float | None
    drift_slope_eta_ci: tuple[float, ...] | None
    drift_slope_eta_state: Literal["within", "beyond", "uncertain"] | None
    drift_slope_beta: float | None
    drift_slope_beta_ci: tuple[float, ...] | None
    drift_slope_beta_state: Literal["within", "beyond", "uncertain"] | None
    verdict: Verdict
    verdict_text: str
    reasons: tuple[Reason, ...]
    by_base: tuple[ByBase, ...]
    by_budget: tuple[ByBudget, ...] | None
    by_budget_note: str | None
    warnings: tuple[str, ...]
    missing: tuple[Missing, ...]
    surfaces: tuple[Surface, ...]
    sweep_ids: tuple[str, ...] = ()

    def drift_slope(self, lr: str) -> DriftSlope:
        """The fitted drift slope of ``lr`` (eta | beta | weight_lr | activity_lr)."""
        if _lr(lr) == "eta":
            return DriftSlope(self.drift_slope_eta, self.drift_slope_eta_ci, self.drift_slope_eta_state)
        return DriftSlope(self.drift_slope_beta, self.drift_slope_beta_ci, self.drift_slope_beta_state)

    @property
    def is_2d(self) -> bool:
        """True when the analysis has an activity lr (a 2-D (η, β) surface)."""
        return self.beta_grid is not None

    @property
    def base(self) -> SizeRow:
        return next(s for s in self.sizes if s.size == self.base_size)

    def size_row(self, size: int) -> SizeRow | None:
        return next((s for s in self.sizes if s.size == size), None)

    def surface(self, size: int) -> Surface | None:
        return next((s for s in self.surfaces if s.size == size), None)

    @property
    def reason_codes(self) -> tuple[ReasonCode, ...]:
        """The distinct codes of the reasons, sorted."""
        return tuple(sorted({r.code for r in self.reasons}))


@dataclass(frozen=True)
class SingleSize(_Json):
    """A group with one size so far along ``axis`` (nothing to compare, so no verdict): its grids, its
    :class:`SizeRow` (optima, counts) and :class:`Surface`, and warnings — what the pages draw for a
    sweep that has run one size only."""

    group: Mapping[str, Any]
    axis: str
    size: int
    eta_grid: tuple[float, ...]
    beta_grid: tuple[float, ...] | None
    row: SizeRow
    surface: Surface
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Report(_Json):
    """The optimum-shift report of a runs table (:func:`.build.build_report`).

    ``metric`` (its runs ``column``, ``direction`` min|max, ``regret_unit`` relative | accuracy
    points), the options that produced it (``thresholds``, ``ci_level``, ``diverged`` policy,
    ``n_bootstrap``, ``rng_seed``), ``n_runs`` rows read, ``provisional`` while the sweep's plan
    has unfinished cells, the ``analyses``, ``notes`` on what could not be analysed, and the groups
    with one size so far along the first size axis (``single_size``, no verdict). ``units`` and
    ``encoding`` restate the conventions in words. Set by the callers that know the sweep:
    ``sweep_id``, ``cells_missing`` (parts not finished), ``refinement`` (the refined grid's record,
    :mod:`sweeps.refine`), ``decide`` (the decide loop's record: rounds, stop reason, open analyses,
    :mod:`sweeps.decide`)."""

    metric: str
    column: str
    direction: Literal["min", "max"]
    units: str
    encoding: str
    regret_unit: Literal["relative", "accuracy points"]
    thresholds: Thresholds
    ci_level: float
    diverged: str
    n_bootstrap: int
    rng_seed: int
    n_runs: int
    provisional: Provisional | None
    analyses: tuple[Analysis, ...]
    notes: tuple[str, ...]
    single_size: tuple[SingleSize, ...] = ()
    # diverged runs by runs-table diverge_reason (mutransfer.inference_health): the training loss blew
    # up (also every diverged run recorded before the column existed), or inference raised the energy
    n_diverged_loss: int = 0
    n_diverged_inference: int = 0
    sweep_id: str | None = _optional()
    cells_missing: tuple[str, ...] | None = _optional()
    refinement: Mapping[str, Any] | None = _optional()
    decide: Mapping[str, Any] | None = _optional()

    @classmethod
    def coerce(cls, report: "Report | Mapping[str, Any] | None") -> "Report | None":
        """A :class:`Report` from a Report or its JSON (None stays None)."""
        if report is None or isinstance(report, Report):
            return report
        return cls.from_json(report)

    def with_(self, **changes: Any) -> "Report":
        """A copy with some fields replaced (e.g. ``sweep_id``, ``refinement``)."""
        return dataclasses.replace(self, **changes)

    def analysis(self, axis: str, **group: Any) -> Analysis | None:
        """The first analysis along ``axis`` whose group has the given settings."""
        for a in self.analyses:
            if a.axis == axis and all(a.group.get(k) == v for k, v in group.items()):
                return a
        return None
