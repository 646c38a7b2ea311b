"""Re-simulate a logged episode from its seed and actions; check rewards and success.

An action log (:mod:`kinitro.evaluator.episode_logger`) holds the benchmark id, task,
episode seed, step budget, the competition knobs (``Conditions``) and every float32 action
the agent sent, plus the per-step rewards and success flags that were observed. Replaying
feeds the same actions to a fresh environment built with the same knobs and reset with the
same seed — which re-creates the same dynamics, action delay and action noise, all drawn
from the seed — and compares step by step.

Rewards do not depend on what the agent was shown, so the knobs that act on observations
(observation noise, a hidden goal) are checked against the episode's published step
samples instead: pass them as ``observations`` (step → the state the agent acted on at
that step) and replay compares them with the states it re-creates. Replay never renders
(image observations carry no state to compare), whatever the competition's mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import ActionLog, decode_action_log
from kinitro.evaluator.errors import EpisodeLogError
from kinitro.protocol.conditions import Conditions
from kinitro.storage.media import MediaStoreError, open_media_store

REWARD_ATOL = 1e-6
OBSERVATION_ATOL = 1e-5
"""Step samples carry float32 states as JSON numbers: equal to well within this."""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    benchmark_id: str
    task: str
    job_id: str
    episode_index: int
    steps: int
    replayed_steps: int
    logged_return: float
    replayed_return: float
    logged_success: bool
    replayed_success: bool
    max_reward_diff: float
    first_mismatch_step: int | None
    exact: bool
    observations_checked: int = 0
    first_observation_mismatch_step: int | None = None
    conditions_match: bool = True
    """False when the log's knobs differ from those the job prescribed (if given)."""

    @property
    def ok(self) -> bool:
        return (
            self.conditions_match
            and self.first_mismatch_step is None
            and self.first_observation_mismatch_step is None
            and self.logged_success == self.replayed_success
            and self.steps == self.replayed_steps
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "benchmark_id": self.benchmark_id,
            "task": self.task,
            "job_id": self.job_id,
            "episode_index": self.episode_index,
            "steps": self.steps,
            "replayed_steps": self.replayed_steps,
            "logged_return": self.logged_return,
            "replayed_return": self.replayed_return,
            "logged_success": self.logged_success,
            "replayed_success": self.replayed_success,
            "max_reward_diff": self.max_reward_diff,
            "first_mismatch_step": self.first_mismatch_step,
            "observations_checked": self.observations_checked,
            "first_observation_mismatch_step": self.first_observation_mismatch_step,
            "conditions_match": self.conditions_match,
            "exact": self.exact,
            "ok": self.ok,
        }


def load_action_log(
    episode: str, media_url: str | None = None, **media_options: object
) -> ActionLog:
    """Load from a file path, or from a media-store key (``actions_ref``) in ``media_url``."""
    path = Path(episode)
    if path.is_file():
        return decode_action_log(path.read_bytes())
    if media_url is None:
        raise EpisodeLogError(f"no such file {episode!r} (pass --media to read a media key)")

    try:
        data = open_media_store(media_url, **media_options).get(episode)
    except MediaStoreError as exc:
        raise EpisodeLogError(str(exc)) from exc
    return decode_action_log(data)


def replay(
    log: ActionLog,
    observations: Mapping[int, Sequence[float]] | None = None,
    *,
    conditions: Conditions | None = None,
) -> ReplayReport:
    """Re-simulate ``log``; with ``observations`` (step → state shown before that step's
    action, as in step samples) also check what the agent was shown, and with
    ``conditions`` (the job's ``BenchmarkSpec.conditions``) that the log claims the knobs
    the job prescribed — a log that understates them is not a replay of that job."""
    bench = get_benchmark(log.benchmark_id, [log.task])
    config = EnvConfig(max_steps=log.max_steps, conditions=log.conditions)
    env = make_env(bench, log.task, config)
    wanted = {step: obs for step, obs in (observations or {}).items() if len(obs)}
    rewards: list[float] = []
    successes: list[bool] = []
    obs_bad: int | None = None
    try:
        obs = env.reset(log.seed)
        for step, action in enumerate(log.actions, 1):
            if step in wanted and obs_bad is None and not _same_state(obs, wanted[step]):
                obs_bad = step
            out = env.step(np.asarray(action, dtype=np.float32))
            rewards.append(out.reward)
            successes.append(out.success)
            obs = out.observation
            if out.terminated or out.truncated:
                break
    finally:
        env.close()
    replayed = np.asarray(rewards, dtype=np.float64)
    n = min(len(replayed), log.steps)
    diff = np.abs(replayed[:n] - log.rewards[:n])
    bad = np.nonzero(diff > REWARD_ATOL)[0]
    flags_bad = np.nonzero(np.asarray(successes[:n]) != log.successes[:n])[0]
    first = min([int(i) + 1 for i in (*bad[:1], *flags_bad[:1])], default=None)
    unreached = [step for step in wanted if step > len(rewards)]
    if unreached and obs_bad is None:
        obs_bad = min(unreached)  # a sample of a step the episode never played
    return ReplayReport(
        benchmark_id=log.benchmark_id,
        task=log.task,
        job_id=log.job_id,
        episode_index=log.episode_index,
        steps=log.steps,
        replayed_steps=len(rewards),
        logged_return=float(log.rewards.sum()),
        replayed_return=float(replayed.sum()),
        logged_success=bool(log.successes.any()),
        replayed_success=bool(any(successes)),
        max_reward_diff=float(diff.max()) if n else 0.0,
        first_mismatch_step=first,
        exact=bool(n == log.steps and np.array_equal(replayed[:n], log.rewards[:n])),
        observations_checked=len(wanted),
        first_observation_mismatch_step=obs_bad,
        conditions_match=conditions is None or conditions == log.conditions,
    )


def _same_state(observation: object, sample: Sequence[float]) -> bool:
    state = observation.get("state") if isinstance(observation, dict) else observation
    state = np.asarray(state, dtype=np.float64).ravel()
    expected = np.asarray(sample, dtype=np.float64).ravel()
    return state.shape == expected.shape and bool(
        np.allclose(state, expected, rtol=0.0, atol=OBSERVATION_ATOL)
    )
