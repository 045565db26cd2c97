"""Sweep specs: what a user writes (YAML/JSON), validated before anything trains.

A spec is the product algorithm × parameterisation × width × depth (the *cells*) × weight lr ×
activity lr × seed (the *runs* of each cell). Unknown keys, empty grids, non-positive learning
rates, unknown names: all rejected with a :class:`SpecError` naming the field and the fix. Types
are strict (``widths: [true]`` is refused, not read as 1) and every number has a sane bound, so a
spec can never ask for 1e20 steps or an infinite budget; the bounds and the choices of every named
field (algorithms, parameterisations, datasets, metrics, ...) are published as a JSON Schema
(:func:`json_schema`, ``mutransfer schema``) that editors can validate a YAML spec against.

Learning-rate units: ``weight_lrs`` are the optimiser's base lr η (scaled per layer by the
parameterisation's c_l); ``activity_lrs`` are the inference step β on the gradient of the
*batch-mean* energy (the μPC paper's units). Algorithms without an activity lr (``bp``) ignore
the activity grid and record activity_lr as NaN.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from mutransfer.algorithms import ALGORITHMS
from mutransfer.data import DATASETS
from mutransfer.networks import ACTIVATIONS
from mutransfer.optim import DIRECTIONS
from mutransfer.losses import LOSSES
from mutransfer.parametrization import PARAMETRIZATIONS
from mutransfer.report import METRICS
from mutransfer.trainer import INITS, PRECISIONS
from sweeps.documents import DEFAULT_LIMITS, DocumentError, load_yaml


class SpecError(ValueError):
    """A spec failed validation. ``errors`` is a list of (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "\n".join(f"  {field}: {msg}" for field, msg in errors)
        super().__init__(f"invalid sweep spec ({len(errors)} error{'s' * (len(errors) > 1)}):\n{lines}")


class _Strict(BaseModel):
    # strict: no coercion (a boolean is not a width, "3" is not a count); ints are accepted as floats.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _choice(table: dict, what: str):
    def check(v: str) -> str:
        if v not in table:
            raise ValueError(f"unknown {what} {v!r}; choose one of {sorted(table)}")
        return v
    return check


def Choice(table: dict, what: str):
    """A name from ``table``: validated with a message listing the choices, published as a JSON
    Schema ``enum`` (so an editor flags a typo in a YAML spec)."""
    return Annotated[str, AfterValidator(_choice(table, what)), Field(json_schema_extra={"enum": sorted(table)})]


# Bounds of single numbers (absurd values are refused, never trained): the one table of them.
INT32 = 2**31 - 1
MAX_WIDTH, MAX_DEPTH = 65536, 1024      # network size (the service's limits are lower: sweeps/limits.py)
MAX_GRID = 256                         # values per lr/size axis
MAX_SEEDS = 1000
MAX_RUNS = 1_000_000                   # runs in one spec (counted arithmetically; split bigger sweeps)


def Int(lo: int, hi: int, description: str | None = None):
    return Annotated[int, Field(ge=lo, le=hi, description=description)]


def Float(lo: float, hi: float, *, open_lo: bool = True, description: str | None = None):
    low = {"gt": lo} if open_lo else {"ge": lo}
    return Annotated[float, Field(**low, le=hi, allow_inf_nan=False, description=description)]


PosInt = Int(1, 10**8)
PosFloat = Float(0, 1e6)
LR_MAX = 1e6
LR = Float(0, LR_MAX)


class Architecture(_Strict):
    """``mlp``/``residual_mlp``: dense layers of ``width`` units. ``cnn``/``residual_cnn``: ``depth``
    k×k SAME convolutions of ``width`` channels (fan-in k²·C), the first ``downsample_layers`` with
    stride 2, then a dense readout of the flattened last feature map; residual CNNs skip over the
    stride-1 hidden convs. depth 2 is the TP paper's 3-layer CNN."""

    kind: Literal["mlp", "residual_mlp", "cnn", "residual_cnn"] = "residual_mlp"
    activation: Choice(ACTIVATIONS, "activation") = "tanh"
    kernel_size: Int(1, 15) | None = Field(None, description="CNN kernel size k (default 3)")
    downsample_layers: Int(0, 16) | None = Field(
        None, description="CNN: how many leading convs have stride 2 (default 2)")

    @model_validator(mode="after")
    def _cnn_only(self):
        if not self.is_cnn:
            for name in ("kernel_size", "downsample_layers"):
                if getattr(self, name) is not None:
                    raise ValueError(f"architecture.{name}: only for kind cnn/residual_cnn; remove it "
                                     "or set architecture.kind: cnn")
        return self

    @property
    def residual(self) -> bool:
        return self.kind.startswith("residual_")

    @property
    def is_cnn(self) -> bool:
        return self.kind.endswith("cnn")

    @property
    def resolved_kernel_size(self) -> int:
        return self.kernel_size or 3

    @property
    def resolved_downsample_layers(self) -> int:
        return 2 if self.downsample_layers is None else self.downsample_layers


class DatasetSpec(_Strict):
    name: Choice(DATASETS, "dataset") = "fashion_mnist"
    train_examples: PosInt | None = None
    test_examples: PosInt | None = None
    data_dir: Annotated[str, Field(max_length=4096)] | None = None
    subset_seed: Int(0, INT32) = 0


class Training(_Strict):
    epochs: Int(1, 10000) = 1
    max_steps: PosInt | None = None
    batch_size: Int(1, 65536) = 64
    inference_steps: Int(1, 10000) | None = Field(None, description="T; default: the depth H")
    optimizer: Choice(DIRECTIONS, "optimizer") = "adam"
    loss: Choice(LOSSES, "loss") = "mse"
    output_precision: PosFloat = Field(1.0, description="γ′ in γ_L = γ′·N^(−γ̄_L)")
    output_precision_exponent: Float(-8, 8, open_lo=False) = Field(0.0, description="γ̄_L")
    divergence_factor: Float(1, 1e12) = 1e3
    precision: Choice(PRECISIONS, "precision") = Field(
        "float32", description="float32, or float64 through JAX's x64 mode (slower; near stability cliffs "
                               "float32 runs can land 15-18 % from their float64 values)")
    init: Choice(INITS, "init") = Field(
        "default", description="default: W ~ N(0, σ_l²); kaiming_uniform: W ~ U(−σ_l, σ_l), which under sp "
                               "is jpc's default U(±1/√fan_in) (the μPC paper's SP runs)")
    # TP/DTP only (refused on other specs): reconstruction noise σ_ε, feedback updates per step,
    # and the feedback weights' lr as a multiple of the weight lr η.
    feedback_noise: Float(0, 100, open_lo=False) | None = None
    feedback_steps: Int(1, 1000) | None = None
    feedback_lr_ratio: PosFloat | None = None


class Refine(_Strict):
    """``refine:``: limits of the grid extension ``mutransfer run SPEC --refine`` (or the service,
    when the field is present) does after the grid is finished (sweeps/refine.py). Not part of the
    spec hash: refining extends the same sweep."""

    max_rounds: Int(1, 100) | None = Field(None, description="rounds of extension at most (default 3)")
    max_runs: Int(1, MAX_RUNS) | None = Field(None, description="runs added in all at most (default: the spec's own run count)")


DEFAULT_DECIDE_ROUNDS, DEFAULT_DECIDE_SEEDS = 6, 8


class Decide(_Strict):
    """``decide:``: limits of the loop ``mutransfer run SPEC --decide`` (or the service, when the
    field is present) runs after the spec's own runs: report, act on every undecided analysis's
    reason codes (sweeps/decide.py), train what they ask for, report again — until every verdict is
    decided or a limit is hit. Not part of the spec hash: deciding grows the same sweep."""

    max_runs: Int(1, MAX_RUNS) | None = Field(
        None, description="runs the loop may add in all (default: as many as the spec's own)")
    max_seeds: Int(2, MAX_SEEDS) | None = Field(
        None, description=f"seeds at any one grid point at most (default {DEFAULT_DECIDE_SEEDS})")
    max_rounds: Int(1, 100) | None = Field(None, description=f"rounds at most (default {DEFAULT_DECIDE_ROUNDS})")


class GridSpec(_Strict):
    """``grid:``: where the lr grid is run. ``larger_sizes: full`` (default): the whole grid at
    every size. ``local``: the whole grid only at the base cell (base_width, base_depth); every
    other cell runs a (2·radius+1)-point neighbourhood per lr axis around the base cell's optimum,
    extended while its optimum sits on the neighbourhood's edge (sweeps/decide.py; needs ``decide``)."""

    larger_sizes: Literal["full", "local"] = "full"
    radius: Int(1, 16) = Field(1, description="neighbourhood half-width in grid steps (local only)")


class Logging(_Strict):
    every: PosInt = Field(10, description="log training metrics every k steps")
    eval_every: PosInt | None = Field(None, description="test metrics every m steps (default: each epoch)")
    test_chunk: Int(1, 10**6) = 1000


class Resources(_Strict):
    cpus_per_trial: Float(0, 1024) = 1
    gpus_per_trial: Float(0, 64, open_lo=False) = 0
    max_concurrent_trials: Int(1, 100000) | None = None
    max_runs_per_trial: Int(1, MAX_RUNS) | None = None
    memory_budget_gb: Float(0, 1e5) | None = None
    driver_restarts: Int(0, 10) = Field(
        2, description="how often the service relaunches this sweep's driver when it dies mid-sweep")


class AnalysisSpec(_Strict):
    """A diagnostic to run alongside the sweep (see ``mutransfer diagnose list``)."""

    kind: str
    settings: dict[str, Any] = {}

    @model_validator(mode="after")
    def _known(self):
        import dataclasses

        from mutransfer.diagnostics import ANALYSES

        if self.kind not in ANALYSES:
            raise ValueError(f"kind: unknown analysis {self.kind!r}; choose one of {sorted(ANALYSES)}")
        allowed = {f.name for f in dataclasses.fields(ANALYSES[self.kind].config)}
        unknown = sorted(set(self.settings) - allowed)
        if unknown:
            raise ValueError(f"settings: unknown {unknown} for {self.kind}; allowed: {sorted(allowed)}")
        for key, value in self.settings.items():
            _check_setting(f"settings.{key}", value)
        return self


def _check_setting(where: str, value: Any) -> None:
    """Analysis settings are small: finite numbers up to 1e6, lists of up to 64 of them."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and len(value) > 64:
        raise ValueError(f"{where}: at most 64 values, got {len(value)}")
    for v in items:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not (math.isfinite(v) and abs(v) <= 1e6):
            raise ValueError(f"{where}: {v!r} is out of range (finite, at most 1e6 in size)")
        if isinstance(v, (dict, list)):
            raise ValueError(f"{where}: expected a number, string or a list of them")


class SweepSpec(_Strict):
    """A whole sweep. See the module docstring for units."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    description: Annotated[str, Field(max_length=4000)] = ""
    algorithms: Annotated[list[Choice(ALGORITHMS, "algorithm")], Field(min_length=1)] = ["pc"]
    parametrizations: Annotated[list[Choice(PARAMETRIZATIONS, "parametrization")], Field(min_length=1)]
    architecture: Architecture = Architecture()
    widths: Annotated[list[Int(1, MAX_WIDTH)], Field(min_length=1, max_length=64)]
    depths: Annotated[list[Int(1, MAX_DEPTH)], Field(min_length=1, max_length=64)]
    base_width: Int(1, MAX_WIDTH) | None = None
    base_depth: Int(1, MAX_DEPTH) | None = None
    weight_lrs: Annotated[list[LR], Field(min_length=1, max_length=MAX_GRID)]
    activity_lrs: Annotated[list[LR], Field(min_length=1, max_length=MAX_GRID)] | None = None
    seeds: Annotated[list[Int(0, INT32)], Field(min_length=1, max_length=MAX_SEEDS,
                                                json_schema_extra=lambda s: _or_count(s, MAX_SEEDS))] = [0]
    dataset: DatasetSpec = DatasetSpec()
    training: Training = Training()
    logging: Logging = Logging()
    metric: Choice(METRICS, "metric") = "min_train_loss"
    analyses: Annotated[list[AnalysisSpec], Field(max_length=32)] = []
    resources: Resources = Resources()
    refine: Refine | None = None
    decide: Decide | None = None
    grid: GridSpec | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, v: Any) -> Any:
        # `seeds: 3` is shorthand for [0, 1, 2].
        if isinstance(v, int) and not isinstance(v, bool):
            if not 1 <= v <= MAX_SEEDS:
                raise ValueError(f"a seed count must be between 1 and {MAX_SEEDS}")
            return list(range(v))
        return v

    @field_validator("widths", "depths", "weight_lrs", "activity_lrs", "seeds", "algorithms",
                     "parametrizations")
    @classmethod
    def _no_duplicates(cls, v):
        if v is not None and len(set(v)) != len(v):
            raise ValueError("contains duplicates")
        return v

    @model_validator(mode="after")
    def _cross_checks(self):
        uses_activity = any(ALGORITHMS[a].uses_activity_lr for a in self.algorithms)
        if uses_activity and not self.activity_lrs:
            raise ValueError("activity_lrs: required for algorithms with an activity lr "
                             f"({[a for a in self.algorithms if ALGORITHMS[a].uses_activity_lr]})")
        n_runs = count_runs(self)
        if n_runs > MAX_RUNS:
            raise ValueError(f"spec: {n_runs:,} runs (cells × lr pairs × seeds) is more than {MAX_RUNS:,}; "
                             "split the sweep")
        fb = [a for a in self.algorithms if ALGORITHMS[a].feedback]
        t = self.training
        if fb and self.architecture.residual:
            raise ValueError(f"architecture.kind: {fb} need a plain mlp or cnn (target propagation has "
                             "no residual form); set architecture.kind: mlp or cnn")
        if not fb:
            for name in ("feedback_noise", "feedback_steps", "feedback_lr_ratio"):
                if getattr(t, name) is not None:
                    raise ValueError(f"training.{name}: only for tp/dtp; remove it or add tp/dtp to algorithms")
        if fb and len(fb) == len(self.algorithms):  # PC-only options on a TP-only spec
            if t.inference_steps is not None:
                raise ValueError("training.inference_steps: PC inference steps mean nothing for tp/dtp")
            if t.output_precision != 1.0 or t.output_precision_exponent != 0.0:
                raise ValueError("training.output_precision: PC's output precision means nothing for tp/dtp")
        if self.refine is not None and self.decide is not None:
            raise ValueError("refine: the decide loop extends edges itself (and adds seeds); remove refine")
        if self.local_grid:
            if self.decide is None:
                raise ValueError("grid.larger_sizes: local places its neighbourhoods once the base size is trained, "
                                 "which the decide loop does; add `decide: {}` to the spec (or use larger_sizes: full)")
            if self.refine is not None:
                raise ValueError("refine: a local grid extends its neighbourhoods through decide; remove refine")
        return self

    @property
    def local_grid(self) -> bool:
        return self.grid is not None and self.grid.larger_sizes == "local"

    # -- derived ---------------------------------------------------------------------------
    @property
    def resolved_base_width(self) -> int:
        return self.base_width or min(self.widths)

    @property
    def resolved_base_depth(self) -> int:
        return self.base_depth or min(self.depths)

    @property
    def grid_base(self) -> tuple[int, int]:
        """(width, depth) of the cell that runs the whole lr grid under a local grid: the base width
        and depth when the spec runs them, else its smallest."""
        w, d = self.resolved_base_width, self.resolved_base_depth
        return (w if w in self.widths else min(self.widths), d if d in self.depths else min(self.depths))

    def canonical(self) -> dict:
        """The spec with every default filled in, as plain JSON-able data."""
        return self.model_dump(mode="json")

    def spec_hash(self) -> str:
        """Stable hash of the canonical spec (what a sweep computes; ``description`` excluded)."""
        data = self.canonical()
        data.pop("description", None)
        data.pop("resources", None)  # where it runs does not change what it computes
        data.pop("refine", None)  # how far the grid may extend itself: the same sweep, grown
        data.pop("decide", None)  # how far the decide loop may grow it: the same sweep, too
        if data.get("grid") is None or data["grid"] == {"larger_sizes": "full", "radius": 1}:
            data.pop("grid", None)  # a full grid: the sweep ids of specs written before grid: existed
        # Fields added later are left out while unset, so older specs keep their sweep ids.
        if not data.get("analyses"):
            data.pop("analyses", None)
        for key in ("feedback_noise", "feedback_steps", "feedback_lr_ratio"):
            if data["training"].get(key) is None:
                data["training"].pop(key, None)
        for key, default in (("precision", "float32"), ("init", "default")):
            if data["training"].get(key) == default:
                data["training"].pop(key, None)
        arch = data["architecture"]
        if self.architecture.is_cnn:  # defaults spelled out or not: the same network
            arch["kernel_size"] = self.architecture.resolved_kernel_size
            arch["downsample_layers"] = self.architecture.resolved_downsample_layers
        else:
            arch.pop("kernel_size", None)
            arch.pop("downsample_layers", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def default_sweep_id(self) -> str:
        """``<name>-<hash8>``: the same spec maps to the same sweep, so rerunning resumes it."""
        return f"{self.name}-{self.spec_hash()[:8]}"


def count_runs(spec: SweepSpec) -> int:
    """Runs a spec asks for, from the lengths of its axes (never by building them). With a local
    grid: the whole grid at the base cell, a (2r+1)-point neighbourhood per lr axis elsewhere (the
    first placement; extensions are counted by the decide loop)."""
    cells = len(spec.parametrizations) * len(spec.widths) * len(spec.depths)
    local = cells - len(spec.parametrizations) if spec.local_grid and spec.grid else 0
    side = 2 * spec.grid.radius + 1 if spec.grid else 1
    total = 0
    for a in spec.algorithms:
        beta = ALGORITHMS[a].uses_activity_lr
        full = len(spec.weight_lrs) * (len(spec.activity_lrs or [None]) if beta else 1)
        near = min(side, len(spec.weight_lrs)) * (min(side, len(spec.activity_lrs or [None])) if beta else 1)
        total += ((cells - local) * full + local * near) * len(spec.seeds)
    return total


def _or_count(schema: dict, most: int) -> None:
    """JSON Schema of ``seeds``: a list of seeds, or a count n meaning [0, ..., n-1]."""
    as_list = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "integer", "minimum": 1, "maximum": most, "description": "a count n: seeds 0..n-1"},
                       as_list]


def json_schema() -> dict:
    """The spec's JSON Schema (draft 2020-12): every key, its bounds and the choices of named fields."""
    schema = SweepSpec.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://mutransfer.invalid/sweep-spec.schema.json",
            **schema, "title": "mutransfer sweep spec"}


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "spec"


@functools.lru_cache(maxsize=1)
def _known_keys() -> tuple[str, ...]:
    """Every key a spec may hold, at any depth (for "did you mean")."""
    keys: set[str] = set()
    stack: list[Any] = [SweepSpec.model_json_schema()]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(k for k in (node.get("properties") or {}) if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return tuple(sorted(keys))


def _fix_hint(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1]) if err.get("loc") else ""
        close = difflib.get_close_matches(key, _known_keys(), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key ({hint}check the spelling; see sweeps/specs/*.yaml for the accepted keys)"
    if err["type"] == "missing":
        return "required field is missing"
    return msg


def parse_spec(data: Any) -> SweepSpec:
    """Validate a mapping into a :class:`SweepSpec`, or raise :class:`SpecError`."""
    if not isinstance(data, dict):
        raise SpecError([("spec", f"expected a mapping of keys to values, got {type(data).__name__}")])
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as e:
        errors = []
        for err in e.errors():
            field = _field_path(err["loc"])
            msg = _fix_hint(err)
            head = msg.split(":", 1)[0]
            if ":" in msg and " " not in head and (field == "spec" or head.startswith(field + ".")):
                field, msg = head, msg.split(":", 1)[1].strip()  # a validator's "field: message"
            errors.append((field, msg))
        raise SpecError(errors) from None


def load_spec(source: str | Path) -> SweepSpec:
    """Read a spec from a YAML or JSON file (JSON-like data only, within the document limits)."""
    path = Path(source)
    try:
        if path.stat().st_size > DEFAULT_LIMITS.max_bytes:
            raise SpecError([("spec", f"{path} is {path.stat().st_size} bytes; a spec is at most "
                                      f"{DEFAULT_LIMITS.max_bytes}")])
        text = path.read_bytes()
    except OSError as e:
        raise SpecError([("spec", f"cannot read {path}: {e.strerror or e}")]) from None
    return loads_spec(text, where=str(path))


def loads_spec(text: str | bytes, where: str = "spec") -> SweepSpec:
    try:
        data = load_yaml(text, where=where)  # JSON is YAML, so this reads both
    except DocumentError as e:
        raise SpecError([("spec", str(e))]) from None
    return parse_spec(data)

