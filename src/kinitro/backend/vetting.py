"""Vetting a validator's report before ingest stores it: who may report, and the
cross-checks (:mod:`.crosscheck`) with their consequences (:mod:`.standing`).

:func:`vet` runs inside the ingest transaction for every ``job_status``, ``episode`` and
``eval_result`` of a known job and answers ``None`` (store it) or a :class:`Verdict`: the
:class:`IngestOutcome` to count, and the error code and detail of the negative ack the
socket sends. The checks are per message and batched per result (one query for a
result's episode summaries), never per step sample: ``episode_steps`` are only checked
for who sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from kinitro.backend import crosscheck, rounds, standing
from kinitro.backend.db import repo_ingest, repo_jobs, repo_standing
from kinitro.backend.db.common import utcnow
from kinitro.protocol.common import BenchmarkSpec, ErrorCode, JobState, StrikeReason
from kinitro.protocol.validator_ws import Episode, EpisodeSteps, EvalResult, JobStatus

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.settings import Settings

Report = JobStatus | EvalResult | Episode | EpisodeSteps


class IngestOutcome(StrEnum):
    """What became of a validator's report (the ``outcome`` label of
    ``kinitro_backend_validator_messages``)."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    """Already stored (a resend): acked again, nothing changed."""
    UNKNOWN_JOB = "unknown_job"
    REFUSED_RUNTIME = "refused_runtime"
    """A result of an evaluator runtime this backend does not accept."""
    NOT_ASSIGNED = "not_assigned"
    REFUSED_CHECK = "refused_check"
    """A cross-check failed (or failed before: the assignment is rejected)."""
    SUSPENDED = "suspended"
    HELD = "held"
    """A result ahead of its episodes: resend later."""

    @property
    def accepted(self) -> bool:
        """Acked positively (stored now or before)."""
        return self in (IngestOutcome.STORED, IngestOutcome.DUPLICATE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A report not stored: the ``outcome`` counted, and the ``code`` and ``detail`` of
    the negative ack that answers it."""

    outcome: IngestOutcome
    code: ErrorCode
    detail: str


def job_seed(settings: Settings, job: dict[str, Any], hotkey: str) -> int:
    """The job seed ``hotkey`` was sent (``EvalJob.seed``): every episode seed of its run
    derives from it (:func:`kinitro.protocol.rounds.episode_seed`). It is the validator's
    own seed of the job's round (:func:`kinitro.backend.rounds.job_seed`), so an episode
    of another validator's run (or a seed it leaked) is refused here. An agent re-run
    audit job is played on the seed of the validator it audits (:mod:`.reruns`)."""
    return rounds.job_seed(settings, job["round_id"], job.get("audit_of_validator") or hotkey)


async def _refuse(
    conn: AsyncConnection,
    settings: Settings,
    hotkey: str,
    message: Report,
    refusal: crosscheck.Refusal,
) -> Verdict:
    await standing.strike(conn, settings, hotkey, message.job_id, refusal)
    return Verdict(IngestOutcome.REFUSED_CHECK, ErrorCode.CROSS_CHECK_FAILED, refusal.message())


async def vet(
    conn: AsyncConnection,
    settings: Settings,
    hotkey: str,
    job: dict[str, Any],
    assignment: dict[str, Any] | None,
    message: Report,
) -> Verdict | None:
    """None when ``message`` may be stored, else why not (see the module docstring)."""
    if assignment is None:
        stray = crosscheck.Refusal(
            StrikeReason.NOT_ASSIGNED, f"job {message.job_id} was never assigned to you"
        )
        verdict = await _refuse(conn, settings, hotkey, message, stray)
        return Verdict(IngestOutcome.NOT_ASSIGNED, verdict.code, verdict.detail)
    if assignment["state"] == "rejected":
        strike = await repo_standing.strike_of(conn, hotkey, message.job_id)
        why = f"{strike['reason']}: {strike['detail']}" if strike else "refused"
        return Verdict(
            IngestOutcome.REFUSED_CHECK,
            ErrorCode.CROSS_CHECK_FAILED,
            f"your report on job {message.job_id} was refused ({why})"[:4000],
        )
    until = await repo_standing.suspended_until(conn, hotkey)
    if until is not None:
        return Verdict(
            IngestOutcome.SUSPENDED,
            ErrorCode.NOT_PERMITTED,
            f"this validator is suspended until {until.isoformat()} (strikes); "
            "its reports are not accepted",
        )
    if isinstance(message, JobStatus | EpisodeSteps):
        return None
    if await repo_ingest.has_result(conn, message.job_id, hotkey):
        return None  # the report is settled: a resend is a duplicate, acked as such
    spec = BenchmarkSpec.model_validate(job["benchmark"])
    refusal: crosscheck.Refusal | None
    if isinstance(message, Episode):
        refusal = crosscheck.check_episode(spec, job_seed(settings, job, hotkey), message)
        return await _refuse(conn, settings, hotkey, message, refusal) if refusal else None
    if message.state is not JobState.COMPLETED or message.metrics is None:
        return None
    episodes = [
        crosscheck.EpisodeSummary.of(row)
        for row in await repo_ingest.episode_summaries(conn, message.job_id, hotkey)
    ]
    gaps = crosscheck.missing(spec, episodes)
    if gaps:
        first = await repo_jobs.hold_result(conn, message.job_id, hotkey)
        refusal = crosscheck.hold_or_refuse(spec, gaps, first, utcnow(), settings.result_grace_s)
        if refusal is None:
            return Verdict(
                IngestOutcome.HELD,
                ErrorCode.UNAVAILABLE,
                f"result of job {message.job_id} waits for {len(gaps)} episode(s) "
                f"(first {gaps[0]}); resend later",
            )
    else:
        refusal = crosscheck.check_result(spec, message.metrics, episodes)
    return await _refuse(conn, settings, hotkey, message, refusal) if refusal else None
