"""Evaluator metrics: what the orchestrator records from attempts, episodes and jobs."""

from __future__ import annotations

from prometheus_client import generate_latest

from kinitro.evaluator.prometheus import EvaluatorMetrics
from kinitro.evaluator.results import EpisodeResult
from kinitro.protocol.common import FailureCause


def _ep(**kw: object) -> EpisodeResult:
    return EpisodeResult(index=0, task="reach-v3", task_episode=0, seed=1, **kw)  # type: ignore[arg-type]


def test_episodes_with_their_retried_attempts_and_jobs() -> None:
    m = EvaluatorMetrics(concurrency=2, workers_per_job=4)
    # a sandbox that failed to start once, then an episode that succeeded
    m.episode(
        _ep(success=True, steps=40, duration_s=0.5, sandbox_starts=1,
            retried=[FailureCause.SANDBOX_START], attempts=2)
    )  # fmt: skip
    m.episode(_ep(failure_cause="agent_crash", steps=7, duration_s=0.1))
    m.running(1)
    m.job_finished("completed", 12.0)
    m.job_finished("retried", None)
    text = generate_latest(m.registry).decode()
    for line in (
        'kinitro_evaluator_episode_failures_total{cause="sandbox_start",fault="infra"} 1.0',
        'kinitro_evaluator_episode_failures_total{cause="agent_crash",fault="agent"} 1.0',
        'kinitro_evaluator_episode_failures_total{cause="worker_lost",fault="infra"} 0.0',
        "kinitro_evaluator_sandbox_starts_total 1.0",
        'kinitro_evaluator_episodes_total{outcome="success"} 1.0',
        'kinitro_evaluator_episodes_total{outcome="failure"} 1.0',
        "kinitro_evaluator_steps_total 47.0",
        "kinitro_evaluator_rollout_workers 8.0",
        "kinitro_evaluator_rollout_workers_busy 4.0",
        'kinitro_evaluator_jobs_total{state="completed"} 1.0',
        'kinitro_evaluator_jobs_total{state="retried"} 1.0',
        "kinitro_evaluator_job_duration_seconds_count 1.0",
    ):
        assert line in text, line
