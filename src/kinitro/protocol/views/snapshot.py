"""The realtime snapshot: what a ``/ws/realtime`` subscriber sees before the events."""

from __future__ import annotations

from typing_extensions import TypedDict

from kinitro.protocol.views.competitions import Competition, LeaderboardRow
from kinitro.protocol.views.jobs import Job, Submission
from kinitro.protocol.views.network import Stats, Validator, WeightSet


class SnapshotData(TypedDict):
    """The ``data`` of a ``snapshot`` message: the REST views of the current state,
    narrowed by the subscription's filters (a plain dict of typed views)."""

    competitions: list[Competition]
    leaderboards: dict[str, list[LeaderboardRow]]
    """Each competition's leaderboard rows, best first (``GET …/leaderboard`` rows)."""
    recent_submissions: list[Submission]
    live_jobs: list[Job]
    validators: list[Validator]
    latest_weights: WeightSet | None
    stats: Stats
