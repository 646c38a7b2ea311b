"""Ingest answers with an outcome, the socket turns it into an ack (kinitro.backend.ingest,
kinitro.backend.validator_ws.reply). Stored and duplicate reports of real jobs are
covered over the wire (test_flow, test_lying_validator); here the refusals that need no
job, against a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.ingest import IngestOutcome, Report, Verdict, ingest, ingest_batch
from kinitro.backend.runtimes import RuntimePolicy
from kinitro.backend.settings import Settings
from kinitro.backend.validator_ws import reply
from kinitro.core.db import create_engine
from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.runtime import RuntimeVersions
from kinitro.protocol.validator_ws import EpisodeSteps, EvalResult, JobStatus, StepSample

HOTKEY = "5" + "F" * 47
NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RuntimePolicy({"mujoco": ("3.3.0",)})


def _status(job_id: str = "nojob") -> JobStatus:
    return JobStatus(job_id=job_id, state=JobState.RUNNING, seq=1, at=NOW)


def _result(mujoco: str) -> EvalResult:
    return EvalResult(
        job_id="somejob",
        state=JobState.FAILED,
        error="crashed",
        started_at=NOW,
        finished_at=NOW,
        evaluator_version="test",
        runtime=RuntimeVersions(simulator={"mujoco": mujoco}, benchmarks={"metaworld": 3}),
    )


def _steps(batch_index: int) -> EpisodeSteps:
    sample = StepSample(step=0, observation=[0.0], action=[0.0], reward=0.0, success=False)
    return EpisodeSteps(job_id="nojob", episode_index=0, batch_index=batch_index, samples=[sample])


@pytest.fixture
async def conn(backend_db_url: str) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(backend_db_url)
    try:
        async with engine.begin() as connection:
            yield connection
    finally:
        await engine.dispose()


def test_only_stored_and_duplicate_are_acked_positively() -> None:
    message = _status()
    assert {o for o in IngestOutcome if o.accepted} == {
        IngestOutcome.STORED,
        IngestOutcome.DUPLICATE,
    }
    for outcome in (IngestOutcome.STORED, IngestOutcome.DUPLICATE):
        ack = reply(message, outcome)
        assert ack.ok and ack.ack_id == message.id and ack.error_code is None
    verdict = Verdict(IngestOutcome.HELD, ErrorCode.UNAVAILABLE, "waits for 2 episode(s)")
    ack = reply(message, verdict)
    assert (ack.ok, ack.ack_id, ack.error_code, ack.detail) == (
        False,
        message.id,
        ErrorCode.UNAVAILABLE,
        "waits for 2 episode(s)",
    )


async def test_reports_on_an_unknown_job_are_refused(conn: AsyncConnection) -> None:
    settings = Settings(database_url="postgresql://unused/db")
    outcome = await ingest(conn, HOTKEY, _status(), settings)
    assert outcome == Verdict(IngestOutcome.UNKNOWN_JOB, ErrorCode.UNKNOWN_JOB, "no job nojob")
    batch: list[tuple[Report, str | bytes]] = [
        (m, m.model_dump_json()) for m in (_steps(0), _status(), _steps(1))
    ]
    outcomes = await ingest_batch(conn, HOTKEY, batch, settings, POLICY)
    assert [o.outcome for o in outcomes if isinstance(o, Verdict)] == [
        IngestOutcome.UNKNOWN_JOB
    ] * 3


async def test_a_result_of_a_refused_runtime_is_not_stored(conn: AsyncConnection) -> None:
    settings = Settings(database_url="postgresql://unused/db")
    refused, unknown = await ingest_batch(
        conn,
        HOTKEY,
        [(m, m.model_dump_json()) for m in (_result("3.1.0"), _result("3.3.0"))],
        settings,
        POLICY,
    )
    assert isinstance(refused, Verdict) and refused.outcome is IngestOutcome.REFUSED_RUNTIME
    assert refused.code is ErrorCode.UNSUPPORTED_VERSION
    assert refused.detail == (
        "result of job somejob: evaluator runtime refused: "
        "mujoco 3.1.0 is not accepted (this backend accepts 3.3.0)"
    )
    # an accepted runtime goes on to the job, which does not exist
    assert isinstance(unknown, Verdict) and unknown.outcome is IngestOutcome.UNKNOWN_JOB
