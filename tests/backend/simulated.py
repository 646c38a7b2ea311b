"""Playing a job for real in the simulator, as a validator's evaluator would — every planned
episode reset with the seed derived for this validator, its action log in the media store
— and the ways a lying validator fakes it (the audit tests)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import ActionLog, action_log_key, encode_action_log
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import Episode, EvalJob
from kinitro.storage.media import LocalMediaStore

Policy = Callable[[Any], np.ndarray]


def idle(observation: Any) -> np.ndarray:
    """The miner's (weak) agent: never moves."""
    return np.zeros(4, dtype=np.float32)


def expert(observation: Any) -> np.ndarray:
    """A stronger policy than the miner's: Meta-World's scripted reach expert."""
    from metaworld.policies import SawyerReachV3Policy  # noqa: PLC0415 - the simulator loads only in the tests that build an env

    state = observation["state"] if isinstance(observation, dict) else observation
    with warnings.catch_warnings():  # "constants may be too high": clipped below
        warnings.simplefilter("ignore", UserWarning)
        action = SawyerReachV3Policy().get_action(np.asarray(state, dtype=np.float64))
    return np.clip(action, -1.0, 1.0).astype(np.float32)


def rollout(job: EvalJob, task: str, seed: int, policy: Policy) -> ActionLog:
    """One episode of ``task`` under ``job``'s terms, reset with ``seed``."""
    spec = job.benchmark
    bench = get_benchmark(spec.benchmark_id, [task])
    env = make_env(bench, task, EnvConfig(max_steps=spec.max_steps))
    actions, rewards, successes = [], [], []
    try:
        observation = env.reset(seed)
        for _ in range(spec.max_steps):
            action = policy(observation)
            out = env.step(action)
            actions.append(action)
            rewards.append(out.reward)
            successes.append(out.success)
            observation = out.observation
            if out.terminated or out.truncated:
                break
    finally:
        env.close()
    return ActionLog(
        benchmark_id=spec.benchmark_id,
        task=task,
        job_id=job.job_id,
        episode_index=0,
        seed=seed,
        max_steps=spec.max_steps,
        actions=np.asarray(actions, dtype=np.float32),
        rewards=np.asarray(rewards, dtype=np.float64),
        successes=np.asarray(successes, dtype=bool),
    )


def play_for_real(
    job: EvalJob,
    media_dir: Path,
    policy: Policy = idle,
    *,
    seed_of: Callable[[int], int] | None = None,
    upload: bool = True,
) -> list[Episode]:
    """The job's episodes played with ``policy``, each action log put in ``media_dir``
    (unless not ``upload``). ``seed_of`` (derived seed → seed played) is a liar's: the
    log's header names the seed it played, the episode claims the derived one."""
    spec = job.benchmark
    store = LocalMediaStore(media_dir)
    episodes = []
    for index in range(spec.total_episodes):
        task, k = spec.tasks[index // spec.episodes_per_task], index % spec.episodes_per_task
        derived = episode_seed(job.seed, task, k)
        log = rollout(job, task, seed_of(derived) if seed_of else derived, policy)
        log = replace(log, episode_index=index)
        key = action_log_key(job.job_id, index, job.id)
        if upload:
            store.put(key, encode_action_log(log))
        wins = np.nonzero(log.successes)[0]
        episodes.append(
            Episode(
                job_id=job.job_id,
                episode_index=index,
                task=task,
                task_episode=k,
                seed=derived,
                success=bool(wins.size),
                total_reward=float(log.rewards.sum()),
                steps=log.steps,
                steps_to_success=int(wins[0]) + 1 if wins.size else None,
                terminated=bool(wins.size),
                truncated=not wins.size,
                actions_ref=key,
                duration_s=0.1,
            )
        )
    return episodes
