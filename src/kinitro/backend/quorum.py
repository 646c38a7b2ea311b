"""A competition's quorum and replication as they apply: its own value, else the backend's.

``min_validators`` (quorum) is how many validators' results a job needs before it counts;
``replication`` is how many validators each job is assigned to. A quorum above the
replication could never be reached, so it is refused wherever either is set (settings,
admin API). Replication above the quorum is slack: a validator that drops out or whose
result is refused leaves the job still able to reach quorum after reassignment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kinitro.backend.settings import Settings


def quorum_of(competition: Mapping[str, Any], settings: Settings) -> int:
    return int(competition.get("min_validators") or settings.min_validators)


def replication_of(competition: Mapping[str, Any], settings: Settings) -> int:
    return int(competition.get("replication") or settings.replication)


def with_effective(competition: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The competition row with ``quorum`` and ``effective_replication`` filled in."""
    return {
        **competition,
        "quorum": quorum_of(competition, settings),
        "effective_replication": replication_of(competition, settings),
    }


def annotate_board(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leaderboard rows (score rows) with ``quorum`` ({have, need}) and ``awaiting_quorum``
    lifted out of the stored score detail."""
    for row in rows:
        progress = (row.get("detail") or {}).get("quorum") or None
        row["quorum"] = progress
        row["awaiting_quorum"] = progress is not None and progress["have"] < progress["need"]
    return rows


def problem(competition: Mapping[str, Any], settings: Settings) -> str | None:
    """Why this competition's quorum cannot be reached, or None."""
    quorum, replication = quorum_of(competition, settings), replication_of(competition, settings)
    if quorum > replication:
        return (
            f"min_validators {quorum} exceeds replication {replication}: "
            "a job could never reach its quorum"
        )
    return None
