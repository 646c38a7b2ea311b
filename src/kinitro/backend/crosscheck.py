"""Cross-checks of a validator's reports against its job, on ingest (pure rules, no I/O).

A validator is trusted for nothing it can be checked on. Everything a job specifies is
known to the backend, so every ``episode`` and the final ``eval_result`` are held against
it before they are stored:

* **episode** (:func:`check_episode`) — its index is in the job's plan and names the plan's
  task and task episode (``index = task_position × episodes_per_task + task_episode``,
  the order the evaluator plans them); its ``seed`` is the one derived for *this*
  validator (:func:`kinitro.protocol.rounds.episode_seed` of the job seed sent to it), so
  it cannot replay another validator's episodes or pick friendlier seeds; its steps are
  within the benchmark's ``max_steps`` and consistent (``steps_to_success ≤ steps``).
* **result** (:func:`check_result`) — a ``completed`` result needs one stored summary per
  planned episode (fewer → :attr:`~StrikeReason.MISSING_EPISODES`), and its metrics must
  be exactly what those summaries add up to per task and overall (episode, success and
  scored counts, failures per cause, success rate and its Wilson interval, mean return
  and mean steps to success within float rounding). Inflating a success rate therefore
  means fabricating episodes, whose seeds are fixed and whose action logs are replayed by
  the audits after the reveal.

Ordering: the evaluator appends a job's episodes to the outbox before its result and the
outbox sends in that order, but a retried (nacked) episode can arrive after the result.
So a result whose episodes are not all in yet is *held* — answered with a retryable nack
— and refused as missing only once ``result_grace_s`` has passed since it first came
(:func:`hold_or_refuse`). Before a result is accepted a resent episode replaces the
stored one (an evaluator re-run after a crash), so the summaries checked are the run the
result comes from; after, the job's episodes are frozen.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kinitro.protocol.common import (
    BenchmarkSpec,
    EvalMetrics,
    FailureCause,
    StrikeReason,
    TaskMetrics,
    wilson_interval,
)
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import Episode

REL_TOL = 1e-6  # float fields are recomputed from the summaries; JSON round trips are exact
ABS_TOL = 1e-6


@dataclass(frozen=True, slots=True)
class Refusal:
    """A report that does not match its job: refused for good, counted as a strike."""

    reason: StrikeReason
    detail: str

    def message(self) -> str:
        """The negative ack's detail: the reason first, machine-readable."""
        return f"{self.reason.value}: {self.detail}"[:4000]


def planned(spec: BenchmarkSpec, index: int) -> tuple[str, int] | None:
    """(task, task_episode) of episode ``index`` of a job, None outside its plan."""
    if index >= spec.total_episodes:
        return None
    per_task = spec.episodes_per_task
    return spec.tasks[index // per_task], index % per_task


def check_episode(spec: BenchmarkSpec, base_seed: int, episode: Episode) -> Refusal | None:
    """Why this ``episode`` cannot belong to a job of ``spec`` run with ``base_seed``."""
    slot = planned(spec, episode.episode_index)
    if slot is None:
        return Refusal(
            StrikeReason.WRONG_EPISODE,
            f"episode {episode.episode_index}: the job has {spec.total_episodes} episodes",
        )
    task, task_episode = slot
    if (episode.task, episode.task_episode) != slot:
        return Refusal(
            StrikeReason.WRONG_EPISODE,
            f"episode {episode.episode_index} is {task!r} #{task_episode} in the job's plan, "
            f"not {episode.task!r} #{episode.task_episode}",
        )
    if episode.seed != episode_seed(base_seed, task, task_episode):
        return Refusal(
            StrikeReason.SEED_MISMATCH,
            # the seed itself is not quoted: strikes are public at once, and a wrong
            # seed may be another validator's (leaked) one of a round still sealed
            f"episode {episode.episode_index}: its seed is not the seed derived for this validator",
        )
    if episode.steps > spec.max_steps:
        return Refusal(
            StrikeReason.STEP_BUDGET_EXCEEDED,
            f"episode {episode.episode_index}: {episode.steps} steps, the budget is "
            f"{spec.max_steps}",
        )
    if episode.steps_to_success is not None and not 1 <= episode.steps_to_success <= episode.steps:
        return Refusal(
            StrikeReason.STEP_BUDGET_EXCEEDED,
            f"episode {episode.episode_index}: steps_to_success {episode.steps_to_success} "
            f"outside 1..{episode.steps}",
        )
    return None


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    """What a result's metrics are recomputed from (a stored episode row)."""

    index: int
    task: str
    success: bool
    total_reward: float
    steps_to_success: int | None
    failure_cause: FailureCause | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> EpisodeSummary:
        cause = row["failure_cause"]
        return cls(
            index=int(row["episode_index"]),
            task=str(row["task"]),
            success=bool(row["success"]),
            total_reward=float(row["total_reward"]),
            steps_to_success=row["steps_to_success"],
            failure_cause=FailureCause(cause) if cause else None,
        )

    @property
    def scored(self) -> bool:
        return self.failure_cause is None or self.failure_cause.is_agent_fault


def expected_metrics(episodes: Iterable[EpisodeSummary]) -> dict[str, Any]:
    """The metrics (as ``TaskMetrics`` fields) a set of episodes adds up to, by the same
    rules the evaluator applies (``kinitro.evaluator.metrics``)."""
    eps = list(episodes)
    scored = [e for e in eps if e.scored]
    wins = [e for e in scored if e.success]
    steps = [e.steps_to_success for e in wins if e.steps_to_success is not None]
    low, high = wilson_interval(len(wins), len(scored))
    return {
        "episodes": len(eps),
        "successes": len(wins),
        "scored_episodes": len(scored),
        "failures": dict(Counter(e.failure_cause for e in eps if e.failure_cause is not None)),
        "success_rate": len(wins) / len(scored) if scored else 0.0,
        "ci_low": low,
        "ci_high": high,
        "mean_return": sum(e.total_reward for e in scored) / len(scored) if scored else 0.0,
        "mean_steps_to_success": sum(steps) / len(steps) if steps else None,
    }


def _differs(reported: TaskMetrics, expected: Mapping[str, Any]) -> str | None:
    for name in ("episodes", "successes", "scored_episodes"):
        if getattr(reported, name) != expected[name]:
            return f"{name} {getattr(reported, name)} (episodes add up to {expected[name]})"
    if dict(reported.failures) != expected["failures"]:
        return f"failures {dict(reported.failures)} (episodes add up to {expected['failures']})"
    for name in ("success_rate", "ci_low", "ci_high", "mean_return", "mean_steps_to_success"):
        have, want = getattr(reported, name), expected[name]
        if (have is None) != (want is None) or (
            have is not None and not math.isclose(have, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)
        ):
            return f"{name} {have} (episodes add up to {want})"
    return None


def missing(spec: BenchmarkSpec, episodes: Sequence[EpisodeSummary]) -> list[int]:
    """Planned episode indices without a stored summary."""
    have = {e.index for e in episodes}
    return [i for i in range(spec.total_episodes) if i not in have]


def check_result(
    spec: BenchmarkSpec, metrics: EvalMetrics, episodes: Sequence[EpisodeSummary]
) -> Refusal | None:
    """Why a completed result's ``metrics`` are not what its ``episodes`` add up to (the
    caller has made sure every planned episode is there: :func:`missing`)."""
    if set(metrics.per_task) != set(spec.tasks):
        return Refusal(
            StrikeReason.METRICS_MISMATCH,
            f"metrics cover tasks {sorted(metrics.per_task)}, the job has {sorted(spec.tasks)}",
        )
    for task in spec.tasks:
        problem = _differs(
            metrics.per_task[task], expected_metrics(e for e in episodes if e.task == task)
        )
        if problem:
            return Refusal(StrikeReason.METRICS_MISMATCH, f"task {task!r}: {problem}")
    problem = _differs(metrics.overall, expected_metrics(episodes))
    if problem:
        return Refusal(StrikeReason.METRICS_MISMATCH, f"overall: {problem}")
    return None


def hold_or_refuse(
    spec: BenchmarkSpec, gaps: Sequence[int], first_seen: datetime, now: datetime, grace_s: float
) -> Refusal | None:
    """A result with episodes still missing: None to hold it (within the grace period
    since it first came), else the refusal."""
    if now - first_seen < timedelta(seconds=grace_s):
        return None
    shown = ", ".join(map(str, gaps[:10])) + (" …" if len(gaps) > 10 else "")
    return Refusal(
        StrikeReason.MISSING_EPISODES,
        f"{len(gaps)} of {spec.total_episodes} episodes never reported ({shown}) within "
        f"{grace_s:g} s of the result",
    )
