"""Which rounds of a submission count: its most recent complete ones, pure (no I/O).

A submission has one job per benchmark in every round it is evaluated in (its first round,
then every round while it is the leader or a top challenger). A round is *complete* for it
once every one of its jobs of that round has ``quorum`` usable results. Its score is the
record of its last ``window`` complete rounds (``leader_window_rounds``), so a leader's
standing follows its recent rounds and a round still being evaluated never makes a scored
submission incomplete again. Until a round is complete, its earliest round is shown
(awaiting quorum).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class RoundJobs:
    """A submission's jobs in one round: how many, and usable results per job so far."""

    starts_at: datetime
    expected: int = 0
    results: dict[str, int] = field(default_factory=dict)  # job_id → usable results

    def complete(self, quorum: int) -> bool:
        at_quorum = sum(1 for n in self.results.values() if n >= max(1, quorum))
        return self.expected > 0 and at_quorum >= self.expected


def recent_rounds(rounds: Mapping[str, RoundJobs], *, quorum: int, window: int) -> list[str]:
    """The round ids that count, oldest first (never empty when ``rounds`` is not)."""
    ordered = sorted(rounds, key=lambda r: (rounds[r].starts_at, r))
    complete = [r for r in ordered if rounds[r].complete(quorum)]
    if complete:
        return complete[-max(1, window) :]
    return ordered[:1]
