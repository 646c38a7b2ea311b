"""Playing a job over the real validator WebSocket as an honest validator would — every
planned episode with the seed derived for it, then a result whose metrics are what those
episodes add up to — and the helpers the lying-validator tests bend."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kinitro.protocol.common import EvalMetrics, FailureCause, JobState, TaskMetrics
from kinitro.protocol.common import wilson_interval as wilson
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import Ack, Episode, EvalJob, EvalResult


def episodes_for(job: EvalJob, successes: int, *, reward: float = 1.0) -> list[Episode]:
    """The job's planned episodes (task by task), the first ``successes`` successful."""
    spec = job.benchmark
    out = []
    for index in range(spec.total_episodes):
        task = spec.tasks[index // spec.episodes_per_task]
        k = index % spec.episodes_per_task
        win = index < successes
        steps = min(spec.max_steps, 10 if win else spec.max_steps)
        out.append(
            Episode(
                job_id=job.job_id,
                episode_index=index,
                task=task,
                task_episode=k,
                seed=episode_seed(job.seed, task, k),
                success=win,
                total_reward=reward * (index + 1),
                steps=steps,
                steps_to_success=steps if win else None,
                terminated=win,
                truncated=not win,
                duration_s=0.1,
            )
        )
    return out


def _task_metrics(episodes: list[Episode]) -> TaskMetrics:
    scored = [e for e in episodes if e.failure_cause is None or e.failure_cause.is_agent_fault]
    wins = [e for e in scored if e.success]
    low, high = wilson(len(wins), len(scored))
    steps = [e.steps_to_success for e in wins if e.steps_to_success is not None]
    failures: dict[FailureCause, int] = {}
    for e in episodes:
        if e.failure_cause is not None:
            failures[e.failure_cause] = failures.get(e.failure_cause, 0) + 1
    return TaskMetrics(
        episodes=len(episodes),
        successes=len(wins),
        success_rate=len(wins) / len(scored) if scored else 0.0,
        ci_low=low,
        ci_high=high,
        mean_return=sum(e.total_reward for e in scored) / len(scored) if scored else 0.0,
        mean_steps_to_success=sum(steps) / len(steps) if steps else None,
        failures=failures,
        scored_episodes=len(scored),
    )


def metrics_for(job: EvalJob, episodes: list[Episode]) -> EvalMetrics:
    return EvalMetrics(
        per_task={
            t: _task_metrics([e for e in episodes if e.task == t]) for t in job.benchmark.tasks
        },
        overall=_task_metrics(episodes),
    )


def completed(job: EvalJob, episodes: list[Episode], **update: Any) -> EvalResult:
    now = datetime.now(UTC)
    return EvalResult(
        job_id=job.job_id,
        state=JobState.COMPLETED,
        metrics=metrics_for(job, episodes),
        started_at=now,
        finished_at=now,
        evaluator_version="test",
    ).model_copy(update=update)


async def deliver(client: Any, message: Any, within: float = 15.0) -> Ack:
    """Send one message and return the backend's ack of it."""
    await client.send(message)
    while True:
        ack = await client.recv_type("ack", within=within)
        if ack.ack_id == message.id:
            return ack  # type: ignore[no-any-return]


async def play(client: Any, job: EvalJob, successes: int, **result_update: Any) -> Ack:
    """Every episode (each must be accepted), then the result; returns the result's ack."""
    episodes = episodes_for(job, successes)
    for episode in episodes:
        ack = await deliver(client, episode)
        assert ack.ok, ack
    return await deliver(client, completed(job, episodes, **result_update))
