"""Response and request models of the REST API (pydantic at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from kinitro.protocol.common import COMPETITION_ID_PATTERN, BenchmarkSpec
from kinitro.protocol.presets import get_preset


def _storable(value: str) -> str:
    """PostgreSQL text holds neither NUL characters nor unpaired UTF-16 surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no unpaired surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
"""Free text from a client: any Unicode that PostgreSQL can store."""


class ErrorBody(BaseModel):
    """Every error response: a human ``detail`` and a stable machine ``code``."""

    detail: str
    code: str = Field(examples=["not_found"])


class SealedBody(ErrorBody):
    """403 ``sealed``: the data derives from a round secret that is not revealed yet."""

    sealed_until: datetime


SEALED_RESPONSE: dict[int | str, dict[str, Any]] = {
    403: {"model": SealedBody, "description": "Sealed until the round's reveal (`sealed`)"}
}


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    """422: the request does not match the schema; ``detail`` lists the fields."""

    detail: list[FieldError]
    code: Literal["invalid_request"]


_DESCRIPTIONS = {
    400: "Bad request (`bad_request`)",
    401: "Missing, unknown, expired or revoked API key (`unauthorized`)",
    403: "The API key lacks the role (`forbidden`)",
    404: "No such resource (`not_found`)",
    409: "Conflict with the current state (`conflict`)",
    413: "The request body is larger than this route accepts (`payload_too_large`)",
    429: "Too many requests from this address (`rate_limited`); retry after `Retry-After` s",
    503: "The database is unavailable (`unavailable`); retry later",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error bodies of ``statuses`` (and 422)."""
    out: dict[int | str, dict[str, Any]] = {
        422: {"model": ValidationErrorBody, "description": "Invalid request (`invalid_request`)"}
    }
    for status in statuses:
        out[status] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
    return out


ExpertLimit = Annotated[float, Field(ge=0, le=1)]
RoundSeconds = Annotated[int, Field(ge=10, le=30 * 86_400)]


class CompetitionIn(BaseModel):
    """A new competition. ``preset`` (``kinitro.protocol.presets``) fills ``benchmarks``,
    ``description`` and ``max_expert_baseline`` where the body leaves them out."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=COMPETITION_ID_PATTERN, max_length=32)
    name: Text = Field(min_length=1, max_length=200)
    preset: str | None = Field(default=None, max_length=64, exclude=True)
    description: Text = Field(default="", max_length=10_000)
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    max_expert_baseline: ExpertLimit | None = None
    """Activation is refused while the scripted-expert baseline exceeds this."""
    points: float = Field(default=1.0, ge=0)
    min_success_rate: float = Field(default=0.0, ge=0, le=1)
    min_validators: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Quorum: validators whose results a job needs (null: backend default).",
    )
    min_episodes: int = Field(
        default=30, ge=1, le=100_000, description="Scored episodes a leader needs at least."
    )
    min_leader_score: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="A leader's Wilson lower bound must exceed this.",
    )
    approval_mode: Literal["auto", "admin"] = "auto"
    replication: int | None = Field(default=None, ge=1, le=64)
    round_seconds: RoundSeconds | None = Field(
        default=None,
        description="Length of the competition's rounds (null: the backend's round_duration_s).",
    )
    active: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("preset"), str):
            preset = get_preset(data["preset"])  # ValueError names the known presets
            return {**preset.competition_fields(), **data}
        return data


class CompetitionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=10_000)
    benchmarks: list[BenchmarkSpec] | None = Field(default=None, min_length=1)
    points: float | None = Field(default=None, ge=0)
    min_success_rate: float | None = Field(default=None, ge=0, le=1)
    min_validators: int | None = Field(default=None, ge=1, le=64)
    min_episodes: int | None = Field(default=None, ge=1, le=100_000)
    min_leader_score: float | None = Field(default=None, ge=0, lt=1)
    approval_mode: Literal["auto", "admin"] | None = None
    replication: int | None = Field(default=None, ge=1, le=64)
    round_seconds: RoundSeconds | None = None
    max_expert_baseline: ExpertLimit | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _no_null_values(self) -> CompetitionPatch:
        # omitted = unchanged; null only means something for replication,
        # min_validators and round_seconds (the backend's default) and
        # max_expert_baseline (no limit)
        nulls = sorted(
            name
            for name in self.model_fields_set
            if getattr(self, name) is None
            and name
            not in ("replication", "min_validators", "max_expert_baseline", "round_seconds")
        )
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null (omit a field to keep it)")
        return self


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=100)
    roles: list[Literal["admin", "read", "render"]] = Field(min_length=1, max_length=3)
    expires_in_s: int | None = Field(default=None, ge=60, le=100 * 365 * 86_400)


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

    reason: Text | None = Field(default=None, max_length=500)
