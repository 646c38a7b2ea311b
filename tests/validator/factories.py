"""Valid protocol messages for validator tests."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from kinitro.protocol.common import ArtifactRef, BenchmarkSpec, EvalMetrics, JobState, TaskMetrics
from kinitro.protocol.validator_ws import (
    Episode,
    EpisodeSteps,
    EvalJob,
    EvalResult,
    JobStatus,
    SetWeights,
    StepSample,
)

MINER_HOTKEY = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def make_job(job_id: str | None = None, *, attempt: int = 1) -> EvalJob:
    job_id = job_id or f"job-{uuid.uuid4().hex[:12]}"
    return EvalJob(
        job_id=job_id,
        submission_id="sub-1",
        competition_id="reach",
        miner_hotkey=MINER_HOTKEY,
        miner_uid=3,
        artifact=ArtifactRef(
            registry="local",
            repo="miner/agent",
            revision="v1",
            sha256=hashlib.sha256(job_id.encode()).hexdigest(),
            size_bytes=1234,
        ),
        benchmark=BenchmarkSpec(
            benchmark_id="metaworld/MT1-reach-v3", tasks=["reach-v3"], episodes_per_task=2
        ),
        round_id="round-1",
        seed=42,
        deadline_s=600,
        attempt=attempt,
        created_at=datetime.now(UTC),
    )


def make_status(job_id: str, seq: int, state: JobState = JobState.RUNNING) -> JobStatus:
    return JobStatus(
        job_id=job_id, state=state, seq=seq, episodes_done=0, episodes_total=2, at=datetime.now(UTC)
    )


def make_episode(job_id: str, index: int) -> Episode:
    return Episode(
        job_id=job_id,
        episode_index=index,
        task="reach-v3",
        task_episode=index,
        seed=index,
        success=index % 2 == 0,
        total_reward=1.5,
        steps=10,
        terminated=True,
        truncated=False,
        duration_s=0.1,
    )


def make_steps(job_id: str, index: int, batch: int, n: int = 3) -> EpisodeSteps:
    return EpisodeSteps(
        job_id=job_id,
        episode_index=index,
        batch_index=batch,
        samples=[
            StepSample(step=i, observation=[0.1] * 4, action=[0.0] * 4, reward=0.5, success=False)
            for i in range(n)
        ],
    )


def _metrics(successes: int, episodes: int) -> TaskMetrics:
    rate = successes / episodes
    return TaskMetrics(
        episodes=episodes,
        successes=successes,
        success_rate=rate,
        ci_low=max(0.0, rate - 0.3),
        ci_high=min(1.0, rate + 0.3),
        mean_return=1.0,
        mean_steps_to_success=None,
        failures={},
        scored_episodes=episodes,
    )


def make_result(job_id: str, state: JobState = JobState.COMPLETED) -> EvalResult:
    now = datetime.now(UTC)
    metrics = EvalMetrics(per_task={"reach-v3": _metrics(1, 2)}, overall=_metrics(1, 2))
    return EvalResult(
        job_id=job_id,
        state=state,
        metrics=metrics if state is JobState.COMPLETED else None,
        error=None if state is JobState.COMPLETED else "boom",
        started_at=now - timedelta(seconds=5),
        finished_at=now,
        evaluator_version="test",
    )


def make_weights(weights_id: str, netuid: int, weights: dict[int, float]) -> SetWeights:
    return SetWeights(
        weights_id=weights_id, netuid=netuid, weights=weights, computed_at=datetime.now(UTC)
    )
