"""Competitions, leaders, scores and leaderboards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue

from kinitro.protocol.baselines import Baselines
from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.views._base import Json, View


class LeaderDecision(View):
    """A leader decision: a ``candidate`` awaiting approval, the ``leader``, or a past one
    (``dethroned``, ``rejected``, ``withdrawn``); with the submission's miner."""

    id: int
    competition_id: str
    submission_id: int
    status: str
    success_rate: float
    ci_low: float
    ci_high: float
    reason: str | None
    decided_by: str | None
    created_at: datetime
    decided_at: datetime | None
    miner_hotkey: str | None = None
    miner_uid: int | None = None


class Competition(View):
    id: str
    name: str
    description: str
    benchmarks: list[BenchmarkSpec]
    points: float
    active: bool
    min_success_rate: float
    min_validators: int | None
    min_episodes: int
    min_leader_score: float
    approval_mode: str
    replication: int | None
    round_seconds: int | None = None
    """Length of its rounds (null: the backend's ``round_duration_s``); a change applies
    from the next round."""
    quorum: int | None = None
    """Effective quorum (``min_validators``, else the backend default)."""
    effective_replication: int | None = None
    max_expert_baseline: float | None = None
    baselines: Baselines | None = None
    """Reference agents' scores on the current benchmarks (``protocol.baselines``)."""
    created_at: datetime
    updated_at: datetime
    leader: LeaderDecision | None = None


class CompetitionPreset(View):
    """A preset a competition can start from (``"preset": name`` when creating one)."""

    name: str
    title: str
    description: str
    benchmarks: list[BenchmarkSpec]
    max_expert_baseline: float | None


class QuorumProgress(View):
    """Validators' results in (``have``: the fewest any job of the submission has) and
    needed (``need``) before a submission's score counts for ranking and weights."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    have: Annotated[int, Field(ge=0)]
    need: Annotated[int, Field(ge=1)]

    @property
    def awaiting(self) -> bool:
        return self.have < self.need

    def describe(self) -> str:
        """``awaiting quorum (1/3)`` while short of quorum, else ``""``."""
        return f"awaiting quorum ({self.have}/{self.need})" if self.awaiting else ""


class PairedTest(View):
    """A challenger's paired test against the leader over their shared episodes."""

    shared_episodes: int
    shared_rounds: int
    wins: int
    losses: int
    p_value: float
    worst_p_value: float
    better: bool


class ScoreDetail(View):
    """How a score was computed (the score engine's record)."""

    complete: bool = True
    """Every job has results at quorum."""
    copy_kind: str | None = None
    """``artifact`` (same sha256) or ``behaviour`` (same actions on the same seeds)."""
    qualified: bool | None = None
    rounds: list[JsonValue] = Field(default_factory=list)
    vs_leader: PairedTest | None = None
    quorum: QuorumProgress | None = None
    runtime: JsonValue = None
    """The evaluator runtime its counted results share (its key, or empty)."""
    jobs: list[Json] = Field(default_factory=list)


class Score(View):
    """A submission's aggregated score (a row of the scores table)."""

    submission_id: int
    competition_id: str
    success_rate: float
    ci_low: float
    ci_high: float
    episodes: int
    successes: int
    validators: int
    disagreement: bool
    eligible: bool
    copy_of: int | None
    detail: ScoreDetail
    computed_at: datetime


class ExplainedScore(Score):
    """A submission's score with its place on the leaderboard, when it has one."""

    rank: int | None = None
    reason: str | None = None
    to_lead: str | None = None


class LeaderboardRow(Score):
    """A leaderboard row: the score, the miner's submission and why it stands there."""

    miner_hotkey: str
    miner_uid: int | None
    commitment_block: int
    artifact_sha256: str | None
    artifact_repo: str | None
    artifact_revision: str | None
    status: str
    quorum: QuorumProgress | None
    awaiting_quorum: bool
    is_leader: bool
    vs_leader: PairedTest | None
    reason: str | None
    """Why it is not eligible or not leading (null for the leader)."""
    to_lead: str | None
    """What it would take to lead."""
    rank: int | None = None
    """1-based place (the REST route's rows; the snapshot's are in order)."""


class Leaderboard(View):
    competition_id: str
    leader: LeaderDecision | None
    min_episodes: int
    min_leader_score: float
    approval_mode: str
    pending_candidates: list[LeaderDecision]
    rows: list[LeaderboardRow]
