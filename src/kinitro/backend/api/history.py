"""History routes behind the dashboard's charts: a competition's success over time and the
validators' throughput over time (``/api/v1``). Series are computed on request by one
grouped query each (:mod:`kinitro.backend.db.repo_history`).

Without ``window_s`` a series starts at the first result (at most 30 days back); without
``bucket_s`` the window is cut into about 48 buckets of a round width (10 s … 1 day), so a
devnet minutes old and a network months old both get a readable chart. A window is never
cut into more than :data:`MAX_BUCKETS` buckets (a smaller ``bucket_s`` is widened).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from kinitro.backend.api.schemas import error_responses
from kinitro.backend.db import repo_competitions, repo_history
from kinitro.backend.db.common import utcnow
from kinitro.backend.deps import CompetitionIdPath, ConnDep, strict_query
from kinitro.backend.errors import NotFoundError

router = APIRouter(
    prefix="/api/v1",
    tags=["public"],
    responses=error_responses(400, 429, 503),
    dependencies=[Depends(strict_query)],
)

MAX_WINDOW_S = 90 * 86_400
DEFAULT_MAX_WINDOW_S = 30 * 86_400
MAX_BUCKETS = 500
TARGET_BUCKETS = 48
STEPS_S = (10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400)

WindowQuery = Annotated[
    int | None,
    Query(
        ge=60,
        le=MAX_WINDOW_S,
        description="Seconds back from now (default: since the first result, at most 30 days)",
    ),
]
BucketQuery = Annotated[
    int | None,
    Query(ge=10, le=86_400, description="Bucket width in seconds (default: ~48 buckets)"),
]


class SuccessPoint(BaseModel):
    """One bucket of a competition's results."""

    at: datetime = Field(description="Start of the bucket")
    episodes: int = Field(ge=1, description="Episodes reported in the bucket")
    successes: int = Field(ge=0)
    success_rate: float = Field(ge=0, le=1, description="Successes over episodes, all results")
    best_success_rate: float = Field(
        ge=0, le=1, description="The best submission's success rate in the bucket"
    )


class SuccessHistory(BaseModel):
    """A competition's success rate over time (buckets without results are left out)."""

    competition_id: str
    since: datetime
    until: datetime
    bucket_s: int
    points: list[SuccessPoint]


class ThroughputPoint(BaseModel):
    at: datetime = Field(description="Start of the bucket")
    jobs: int = Field(ge=1, description="Results the validator reported in the bucket")
    episodes: int = Field(ge=0, description="Episodes of those results")
    episodes_per_min: float = Field(ge=0)


class ValidatorThroughput(BaseModel):
    validator_hotkey: str
    jobs: int = Field(ge=0, description="Results in the whole window")
    episodes: int = Field(ge=0, description="Episodes in the whole window")
    points: list[ThroughputPoint]


class ThroughputHistory(BaseModel):
    """Episodes each validator evaluated over time (from its results, by arrival)."""

    since: datetime
    until: datetime
    bucket_s: int
    validators: list[ValidatorThroughput]


def window(
    first: datetime | None, window_s: int | None, bucket_s: int | None, now: datetime
) -> tuple[datetime, timedelta]:
    """(since, bucket width) of a series ending ``now``; ``first`` is its first result."""
    if window_s is None:
        span = (now - first).total_seconds() if first is not None else 3600.0
        window_s = int(min(max(span, 60.0), DEFAULT_MAX_WINDOW_S)) + 1
    if bucket_s is None:
        wanted = window_s / TARGET_BUCKETS
        bucket_s = next((s for s in STEPS_S if s >= wanted), STEPS_S[-1])
    bucket_s = max(bucket_s, math.ceil(window_s / MAX_BUCKETS))
    return now - timedelta(seconds=window_s), timedelta(seconds=bucket_s)


@router.get(
    "/competitions/{competition_id}/history",
    response_model=SuccessHistory,
    responses=error_responses(404),
)
async def competition_history(
    competition_id: CompetitionIdPath,
    conn: ConnDep,
    window_s: WindowQuery = None,
    bucket_s: BucketQuery = None,
) -> SuccessHistory:
    """Success over time: per bucket the episodes of every result of the competition, the
    share that succeeded and the best submission's rate."""
    if await repo_competitions.get_competition(conn, competition_id) is None:
        raise NotFoundError(f"competition {competition_id!r} not found")
    now = utcnow()
    first = await repo_history.first_result_at(conn, competition_id)
    since, bucket = window(first, window_s, bucket_s, now)
    found = await repo_history.success_series(conn, competition_id, since, bucket)
    return SuccessHistory(
        competition_id=competition_id,
        since=since,
        until=now,
        bucket_s=int(bucket.total_seconds()),
        points=[
            SuccessPoint(
                at=r["at"],
                episodes=int(r["episodes"]),
                successes=int(r["successes"]),
                success_rate=int(r["successes"]) / int(r["episodes"]),
                best_success_rate=min(1.0, float(r["best_success_rate"])),
            )
            for r in found
        ],
    )


@router.get("/validators/throughput", response_model=ThroughputHistory)
async def validator_throughput(
    conn: ConnDep, window_s: WindowQuery = None, bucket_s: BucketQuery = None
) -> ThroughputHistory:
    """Validator throughput over time: per validator and bucket, the results it reported
    and their episodes (also per minute of the bucket)."""
    now = utcnow()
    first = await repo_history.first_result_at(conn, None)
    since, bucket = window(first, window_s, bucket_s, now)
    minutes = bucket.total_seconds() / 60
    series: dict[str, ValidatorThroughput] = {}
    for r in await repo_history.throughput_series(conn, since, bucket):
        hotkey = str(r["validator_hotkey"])
        v = series.setdefault(
            hotkey, ValidatorThroughput(validator_hotkey=hotkey, jobs=0, episodes=0, points=[])
        )
        episodes, jobs = int(r["episodes"] or 0), int(r["jobs"])
        v.jobs += jobs
        v.episodes += episodes
        v.points.append(
            ThroughputPoint(
                at=r["at"], jobs=jobs, episodes=episodes, episodes_per_min=episodes / minutes
            )
        )
    return ThroughputHistory(
        since=since,
        until=now,
        bucket_s=int(bucket.total_seconds()),
        validators=sorted(series.values(), key=lambda v: (-v.episodes, v.validator_hotkey)),
    )
