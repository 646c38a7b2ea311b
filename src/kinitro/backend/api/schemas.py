"""Response and request models of the REST API (pydantic at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from kinitro.protocol.common import COMPETITION_ID_PATTERN, BenchmarkSpec

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Row(BaseModel):
    model_config = ConfigDict(extra="allow")


class CompetitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=COMPETITION_ID_PATTERN, max_length=32)
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    points: float = Field(default=1.0, ge=0)
    min_success_rate: float = Field(default=0.0, ge=0, le=1)
    min_validators: int = Field(default=1, ge=1, le=64)
    win_margin: float = Field(default=0.05, ge=0, le=1)
    approval_mode: Literal["auto", "admin"] = "auto"
    replication: int | None = Field(default=None, ge=1, le=64)
    active: bool = False


class CompetitionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    benchmarks: list[BenchmarkSpec] | None = Field(default=None, min_length=1)
    points: float | None = Field(default=None, ge=0)
    min_success_rate: float | None = Field(default=None, ge=0, le=1)
    min_validators: int | None = Field(default=None, ge=1, le=64)
    win_margin: float | None = Field(default=None, ge=0, le=1)
    approval_mode: Literal["auto", "admin"] | None = None
    replication: int | None = Field(default=None, ge=1, le=64)
    active: bool | None = None


class Competition(BaseModel):
    id: str
    name: str
    description: str
    benchmarks: list[dict[str, Any]]
    points: float
    active: bool
    min_success_rate: float
    min_validators: int
    win_margin: float
    approval_mode: str
    replication: int | None
    created_at: datetime
    updated_at: datetime
    leader: dict[str, Any] | None = None


class Submission(BaseModel):
    id: int
    competition_id: str | None
    miner_hotkey: str
    miner_uid: int | None
    commitment: str
    commitment_block: int
    artifact_registry: str | None
    artifact_repo: str | None
    artifact_revision: str | None
    artifact_sha256: str | None
    artifact_size: int | None
    status: str
    rejection_reason: str | None
    rejection_detail: str | None
    credited_submission_id: int | None
    created_at: datetime
    updated_at: datetime


class Job(BaseModel):
    id: str
    submission_id: int
    competition_id: str
    benchmark_id: str
    benchmark: dict[str, Any]
    round_id: str
    replication: int
    deadline_s: int
    state: str
    miner_hotkey: str
    miner_uid: int | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    roles: list[Literal["admin", "read"]] = Field(min_length=1)
    expires_in_s: int | None = Field(default=None, ge=60)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    roles: list[str]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    key: str | None = Field(default=None, description="Shown once, at creation")


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)
