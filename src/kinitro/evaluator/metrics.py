"""Per-task and overall metrics of an evaluation.

Rules:
- An episode *succeeds* when the task reported success at any step.
- Agent faults (timeout, crash, invalid action, protocol violation) are *scored*: the
  episode counts as a failure against the miner.
- Infrastructure faults (sandbox start, simulator error, lost worker, internal) are retried
  by the rollout pool; an episode that still has one is *not scored* (it appears only in
  ``episodes`` and ``failures``), so infrastructure trouble never lowers a miner's score.
- ``success_rate`` = successes / scored episodes, with a 95 % Wilson score interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kinitro.evaluator.results import EpisodeResult
from kinitro.protocol.common import EvalMetrics, FailureCause, wilson_interval

__all__ = ["EvalStats", "TaskStats", "compute_metrics", "task_stats", "wilson_interval"]


@dataclass(slots=True)
class TaskStats:
    episodes: int = 0
    successes: int = 0
    success_rate: float = 0.0
    ci_low: float = 0.0
    ci_high: float = 1.0
    mean_return: float = 0.0
    mean_steps_to_success: float | None = None
    failures: dict[FailureCause, int] = field(default_factory=dict)
    scored_episodes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "episodes": self.episodes,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "mean_return": self.mean_return,
            "mean_steps_to_success": self.mean_steps_to_success,
            "failures": {str(cause): n for cause, n in sorted(self.failures.items())},
            "scored_episodes": self.scored_episodes,
        }


@dataclass(slots=True)
class EvalStats:
    per_task: dict[str, TaskStats]
    overall: TaskStats

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_task": {k: v.to_dict() for k, v in self.per_task.items()},
            "overall": self.overall.to_dict(),
        }

    def to_protocol(self) -> Any:
        """The wire ``EvalMetrics`` model (``kinitro.protocol.common``)."""

        return EvalMetrics.model_validate(self.to_dict())


def task_stats(results: Iterable[EpisodeResult]) -> TaskStats:
    episodes = list(results)
    scored = [e for e in episodes if e.scored]
    successes = [e for e in scored if e.success]
    steps = [e.steps_to_success for e in successes if e.steps_to_success is not None]
    low, high = wilson_interval(len(successes), len(scored))
    failures = Counter(e.failure_cause for e in episodes if e.failure_cause is not None)
    return TaskStats(
        episodes=len(episodes),
        successes=len(successes),
        success_rate=len(successes) / len(scored) if scored else 0.0,
        ci_low=low,
        ci_high=high,
        mean_return=sum(e.total_reward for e in scored) / len(scored) if scored else 0.0,
        mean_steps_to_success=sum(steps) / len(steps) if steps else None,
        failures=dict(failures),
        scored_episodes=len(scored),
    )


def compute_metrics(results: Iterable[EpisodeResult], tasks: Iterable[str] = ()) -> EvalStats:
    """Metrics per task (every task in ``tasks`` appears, even with no episode) and overall."""
    episodes = sorted(results, key=lambda e: e.index)
    by_task: dict[str, list[EpisodeResult]] = {t: [] for t in tasks}
    for ep in episodes:
        by_task.setdefault(ep.task, []).append(ep)
    return EvalStats(
        per_task={task: task_stats(eps) for task, eps in by_task.items()},
        overall=task_stats(episodes),
    )
