"""Sweep specs: what a user writes (YAML/JSON), validated before anything trains.

A spec is the product algorithm × parameterisation × width × depth (the *cells*) × weight lr ×
activity lr × seed (the *runs* of each cell). Unknown keys, empty grids, non-positive learning
rates, unknown names: all rejected with a :class:`SpecError` naming the field and the fix.

Learning-rate units: ``weight_lrs`` are the optimiser's base lr η (scaled per layer by the
parameterisation's c_l); ``activity_lrs`` are the inference step β on the gradient of the
*batch-mean* energy (the μPC paper's units). Algorithms without an activity lr (``bp``) ignore
the activity grid and record activity_lr as NaN.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mutransfer.algorithms import ALGORITHMS
from mutransfer.data import DATASETS
from mutransfer.networks import ACTIVATIONS
from mutransfer.optim import DIRECTIONS
from mutransfer.losses import LOSSES
from mutransfer.parametrization import PARAMETRIZATIONS
from mutransfer.report import METRICS


class SpecError(ValueError):
    """A spec failed validation. ``errors`` is a list of (field path, message)."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        lines = "\n".join(f"  {field}: {msg}" for field, msg in errors)
        super().__init__(f"invalid sweep spec ({len(errors)} error{'s' * (len(errors) > 1)}):\n{lines}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _choice(table: dict, what: str):
    def check(v: str) -> str:
        if v not in table:
            raise ValueError(f"unknown {what} {v!r}; choose one of {sorted(table)}")
        return v
    return check


PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Architecture(_Strict):
    """``mlp``/``residual_mlp``: dense layers of ``width`` units. ``cnn``/``residual_cnn``: ``depth``
    k×k SAME convolutions of ``width`` channels (fan-in k²·C), the first ``downsample_layers`` with
    stride 2, then a dense readout of the flattened last feature map; residual CNNs skip over the
    stride-1 hidden convs. depth 2 is the TP paper's 3-layer CNN."""

    kind: Literal["mlp", "residual_mlp", "cnn", "residual_cnn"] = "residual_mlp"
    activation: str = "tanh"
    kernel_size: Annotated[int, Field(ge=1, le=15)] | None = Field(None, description="CNN kernel size k (default 3)")
    downsample_layers: Annotated[int, Field(ge=0)] | None = Field(
        None, description="CNN: how many leading convs have stride 2 (default 2)")
    _check_act = field_validator("activation")(lambda cls, v: _choice(ACTIVATIONS, "activation")(v))

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
    name: str = "fashion_mnist"
    train_examples: PosInt | None = None
    test_examples: PosInt | None = None
    data_dir: str | None = None
    subset_seed: Annotated[int, Field(ge=0)] = 0
    _check_name = field_validator("name")(lambda cls, v: _choice(DATASETS, "dataset")(v))


class Training(_Strict):
    epochs: PosInt = 1
    max_steps: PosInt | None = None
    batch_size: PosInt = 64
    inference_steps: PosInt | None = Field(None, description="T; default: the depth H")
    optimizer: str = "adam"
    loss: str = "mse"
    output_precision: PosFloat = Field(1.0, description="γ′ in γ_L = γ′·N^(−γ̄_L)")
    output_precision_exponent: float = Field(0.0, allow_inf_nan=False, description="γ̄_L")
    divergence_factor: Annotated[float, Field(gt=1)] = 1e3
    # TP/DTP only (refused on other specs): reconstruction noise σ_ε, feedback updates per step,
    # and the feedback weights' lr as a multiple of the weight lr η.
    feedback_noise: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    feedback_steps: PosInt | None = None
    feedback_lr_ratio: PosFloat | None = None
    _check_opt = field_validator("optimizer")(lambda cls, v: _choice(DIRECTIONS, "optimizer")(v))
    _check_loss = field_validator("loss")(lambda cls, v: _choice(LOSSES, "loss")(v))


class Logging(_Strict):
    every: PosInt = Field(10, description="log training metrics every k steps")
    eval_every: PosInt | None = Field(None, description="test metrics every m steps (default: each epoch)")
    test_chunk: PosInt = 1000


class Resources(_Strict):
    cpus_per_trial: Annotated[float, Field(gt=0)] = 1
    gpus_per_trial: Annotated[float, Field(ge=0)] = 0
    max_concurrent_trials: PosInt | None = None
    max_runs_per_trial: PosInt | None = None
    memory_budget_gb: Annotated[float, Field(gt=0)] | None = None


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
        return self


class SweepSpec(_Strict):
    """A whole sweep. See the module docstring for units."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    description: str = ""
    algorithms: Annotated[list[str], Field(min_length=1)] = ["pc"]
    parametrizations: Annotated[list[str], Field(min_length=1)]
    architecture: Architecture = Architecture()
    widths: Annotated[list[PosInt], Field(min_length=1)]
    depths: Annotated[list[PosInt], Field(min_length=1)]
    base_width: PosInt | None = None
    base_depth: PosInt | None = None
    weight_lrs: Annotated[list[PosFloat], Field(min_length=1)]
    activity_lrs: Annotated[list[PosFloat], Field(min_length=1)] | None = None
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = [0]
    dataset: DatasetSpec = DatasetSpec()
    training: Training = Training()
    logging: Logging = Logging()
    metric: str = "min_train_loss"
    analyses: list[AnalysisSpec] = []
    resources: Resources = Resources()

    _check_algos = field_validator("algorithms")(
        lambda cls, v: [_choice(ALGORITHMS, "algorithm")(a) for a in v])
    _check_params = field_validator("parametrizations")(
        lambda cls, v: [_choice(PARAMETRIZATIONS, "parametrization")(p) for p in v])
    _check_metric = field_validator("metric")(lambda cls, v: _choice(METRICS, "metric")(v))

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, v: Any) -> Any:
        # `seeds: 3` is shorthand for [0, 1, 2].
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError("a seed count must be >= 1")
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
        return self

    # -- derived ---------------------------------------------------------------------------
    @property
    def resolved_base_width(self) -> int:
        return self.base_width or min(self.widths)

    @property
    def resolved_base_depth(self) -> int:
        return self.base_depth or min(self.depths)

    def canonical(self) -> dict:
        """The spec with every default filled in, as plain JSON-able data."""
        return self.model_dump(mode="json")

    def spec_hash(self) -> str:
        """Stable hash of the canonical spec (what a sweep computes; ``description`` excluded)."""
        data = self.canonical()
        data.pop("description", None)
        data.pop("resources", None)  # where it runs does not change what it computes
        # Fields added later are left out while unset, so older specs keep their sweep ids.
        if not data.get("analyses"):
            data.pop("analyses", None)
        for key in ("feedback_noise", "feedback_steps", "feedback_lr_ratio"):
            if data["training"].get(key) is None:
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


def _field_path(loc: tuple) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "spec"


def _fix_hint(err: dict) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (check the spelling; see sweeps/specs/*.yaml for the accepted keys)"
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
    """Read a spec from a YAML or JSON file (safe loader only: no tags, no code)."""
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError([("spec", f"cannot read {path}: {e.strerror or e}")]) from None
    return loads_spec(text, where=str(path))


def loads_spec(text: str, where: str = "spec") -> SweepSpec:
    try:
        data = yaml.safe_load(text)  # JSON is YAML, so this reads both
    except yaml.YAMLError as e:
        raise SpecError([("spec", f"{where} is not valid YAML/JSON: {e}")]) from None
    return parse_spec(data)

