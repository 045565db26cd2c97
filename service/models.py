"""Response shapes of the JSON API, so that /openapi.json documents them (statuses as an enum)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sweeps.registry import STATUSES, Status

# A sweep as the API shows it: the registry's statuses, and ``unknown`` for results with no
# registry row whose planned runs are not all stored (``error`` says what is there).
SweepStatus = Literal[(*STATUSES, "unknown")]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields added later pass through


class Cell(_Open):
    part: str = Field(description="results part: cell-<cell_id>[-chunk-<k>]")
    cell_id: str
    runs: int
    status: Status = Field(description="the same vocabulary as sweeps")
    progress: float = Field(description="fraction of the cell's steps done (1 when finished)")
    attempts: int
    error: str | None = None
    note: str | None = Field(None, description="what happened to it (e.g. a corrupt part recomputed)")


class Summary(_Open):
    id: str
    name: str
    status: SweepStatus
    description: str = ""
    runs_done: int = Field(description="runs of verified finished cells")
    runs_total: int
    progress: float = Field(description="0..1; below 1 until the sweep has finished")
    eta_s: float | None = Field(description="seconds left at the measured throughput; null until a cell finished")
    created_at: float | None = None
    links: dict[str, str] = {}


class SweepState(Summary):
    runs_in_progress: float
    error: str | None = None
    note: str | None = Field(None, description="what the service did about this sweep (relaunches, recoveries)")
    updated_at: float | None = None
    started_at: float | None = None
    heartbeat_age_s: float | None = Field(None, description="seconds since its driver's last heartbeat")
    restarts: int = 0
    metric: str
    cells: list[Cell]


class SweepList(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[Summary]


class Submitted(BaseModel):
    id: str
    status: Status
    resubmitted: bool = Field(description="the same spec was submitted before (it resumes; nothing is redone)")
    links: dict[str, str]


class Cancelled(BaseModel):
    id: str
    status: str = Field(description="'cancelling' while its trials stop, else the sweep's status")
    cancelled: bool


class Health(BaseModel):
    status: str = Field(description="ok | degraded")
    registry: bool
    results: str
    reason: str | None = Field(None, description="why it is degraded (e.g. the registry cannot be read)")
