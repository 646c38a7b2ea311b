"""The coverage rule: a job counts only when almost all of its episodes were scored.

Infrastructure faults are never scored, so a job where many episodes hit them says little
about the miner — and a miner who could steer episodes into infrastructure faults would
choose which ones count. The evaluator (before reporting) and the backend (on every
``completed`` result, whatever the validator claims) apply the same rule: fewer than
``min_scored_share`` of the job's planned episodes scored is a job-level infrastructure
failure with the dominant infrastructure cause — re-run (on another validator when
possible) and, attempts spent, stored ``failed`` with that cause, never scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kinitro.protocol.common import FailureCause

DEFAULT_MIN_SCORED_SHARE = 0.9


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Too few scored episodes: how many, and the infrastructure cause to report."""

    scored: int
    total: int
    min_share: float
    cause: FailureCause
    failures: dict[str, int]

    def describe(self) -> str:
        return (
            f"only {self.scored} of {self.total} episodes scored (at least "
            f"{self.min_share:.0%} needed); failures: {self.failures}"
        )


def shortfall(
    scored: int,
    total: int,
    failures: Mapping[FailureCause, int],
    min_share: float = DEFAULT_MIN_SCORED_SHARE,
) -> Shortfall | None:
    """None when ``scored`` of ``total`` planned episodes is enough, else the shortfall."""
    if total <= 0 or scored >= min_share * total - 1e-9:
        return None
    infra = {FailureCause(c): n for c, n in failures.items() if not FailureCause(c).is_agent_fault}
    cause = max(sorted(infra), key=lambda c: infra[c]) if infra else FailureCause.INTERNAL
    named = {str(FailureCause(c)): n for c, n in sorted(failures.items())}
    return Shortfall(scored, total, min_share, cause, named)
