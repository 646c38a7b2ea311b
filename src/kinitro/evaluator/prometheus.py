"""Prometheus metrics of an evaluator process (``kinitro evaluator run``).

The orchestrator sees each episode's *final* result as it comes (the rollout pool retries
infrastructure faults itself and hands the final result the causes of the retried
attempts and the agent sandboxes its workers started). Final results feed the episode and
step counters, so ``rate()`` of those is the evaluator's throughput; every attempt's
failure feeds the failure counters by cause. Jobs feed the job counters and the
busy-worker gauge. Each metric is documented in ``docs/ops/metrics.md``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kinitro.evaluator.results import EpisodeResult
from kinitro.protocol.common import FailureCause, JobState

EPISODE_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
JOB_SECONDS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class EvaluatorMetrics:
    def __init__(self, *, concurrency: int, workers_per_job: int) -> None:
        self.registry = r = CollectorRegistry()
        self.workers_per_job = workers_per_job
        self.episodes = Counter(
            "kinitro_evaluator_episodes",
            "Final episode results by outcome: success, failure (scored) or infra (not scored)",
            ["outcome"],
            registry=r,
        )
        self.steps = Counter(
            "kinitro_evaluator_steps", "Environment steps of final episode results", registry=r
        )
        self.episode_seconds = Histogram(
            "kinitro_evaluator_episode_duration_seconds",
            "Wall time of one episode (final results)",
            buckets=EPISODE_SECONDS,
            registry=r,
        )
        self.failures = Counter(
            "kinitro_evaluator_episode_failures",
            "Episode attempts that failed, by cause (infrastructure causes are retried)",
            ["cause", "fault"],
            registry=r,
        )
        self.sandbox_starts = Counter(
            "kinitro_evaluator_sandbox_starts",
            "Agent sandboxes started by rollout workers (failed starts count as failures "
            "with cause sandbox_start)",
            registry=r,
        )
        self.jobs = Counter(
            "kinitro_evaluator_jobs", "Jobs finished by final state", ["state"], registry=r
        )
        self.job_seconds = Histogram(
            "kinitro_evaluator_job_duration_seconds",
            "Wall time of one job, from pick to result",
            buckets=JOB_SECONDS,
            registry=r,
        )
        self.jobs_running = Gauge(
            "kinitro_evaluator_jobs_running", "Jobs being evaluated now", registry=r
        )
        self.workers = Gauge(
            "kinitro_evaluator_rollout_workers",
            "Rollout workers this evaluator may run at once (concurrency × workers per job)",
            registry=r,
        )
        self.workers_busy = Gauge(
            "kinitro_evaluator_rollout_workers_busy",
            "Rollout workers evaluating a job now",
            registry=r,
        )
        self.workers.set(concurrency * workers_per_job)
        for cause in FailureCause:
            self.failures.labels(cause.value, _fault(cause))
        for outcome in ("success", "failure", "infra"):
            self.episodes.labels(outcome)

    def episode(self, result: EpisodeResult) -> None:
        """A final episode result (with its retried attempts)."""
        outcome = "infra" if result.infra_fault else "success" if result.success else "failure"
        self.episodes.labels(outcome).inc()
        self.steps.inc(result.steps)
        self.episode_seconds.observe(result.duration_s)
        if result.sandbox_starts:
            self.sandbox_starts.inc(result.sandbox_starts)
        causes = [*result.retried]
        if result.failure_cause is not None:
            causes.append(result.failure_cause)
        for cause in causes:
            self.failures.labels(cause.value, _fault(cause)).inc()

    def running(self, jobs: int) -> None:
        self.jobs_running.set(jobs)
        self.workers_busy.set(jobs * self.workers_per_job)

    def job_finished(self, state: JobState | str, seconds: float | None) -> None:
        """A job ended (``seconds`` from pick to result) or went back to the queue
        (``"retried"``, no duration)."""
        self.jobs.labels(str(getattr(state, "value", state))).inc()
        if seconds is not None:
            self.job_seconds.observe(seconds)


def _fault(cause: FailureCause) -> str:
    return "agent" if cause.is_agent_fault else "infra"
