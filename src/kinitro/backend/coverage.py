"""The coverage rule at ingest (:mod:`kinitro.protocol.coverage`), whatever a validator
claims: a ``completed`` result in which fewer than ``min_scored_share`` of the job's planned
episodes were scored becomes a ``failed`` result with the dominant infrastructure cause.
Ingest then treats it as any infrastructure failure: the job is offered again (another
validator first) up to ``max_attempts``, after which the failure is stored — with the
cause and no metrics, so nothing of it is ever scored."""

from __future__ import annotations

from typing import Any

from kinitro.protocol.common import BenchmarkSpec, JobState
from kinitro.protocol.coverage import shortfall
from kinitro.protocol.validator_ws import EvalResult


def apply_coverage_rule(message: EvalResult, job: dict[str, Any], min_share: float) -> EvalResult:
    """``message``, or its ``failed`` twin when too few of the job's episodes were scored."""
    if message.state is not JobState.COMPLETED or message.metrics is None:
        return message
    overall = message.metrics.overall
    total = BenchmarkSpec.model_validate(job["benchmark"]).total_episodes
    short = shortfall(overall.scored_episodes, total, overall.failures, min_share)
    if short is None:
        return message
    return message.model_copy(
        update={
            "state": JobState.FAILED,
            "metrics": None,
            "failure_cause": short.cause,
            "error": f"coverage ({short.cause}): {short.describe()}",
        }
    )
