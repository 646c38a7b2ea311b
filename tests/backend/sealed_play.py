"""An honest validator's evaluation played for real, without a sandbox: every planned
episode of a job in the real simulator on the seed derived for it, random actions, an
action log in the media directory and step samples, as the rollout worker records them.
``kinitro round verify`` replays these logs, so they must be the real thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import EpisodeRecorder, action_log_key, encode_action_log
from kinitro.evaluator.telemetry import wire_samples
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import Episode, EpisodeSteps, EvalJob

STEP_LOG_INTERVAL = 5


def play_real(job: EvalJob, media_dir: Path) -> tuple[list[Episode], list[EpisodeSteps]]:
    spec = job.benchmark
    bench = get_benchmark(spec.benchmark_id, list(spec.tasks))
    episodes, steps = [], []
    for index in range(spec.total_episodes):
        task = spec.tasks[index // spec.episodes_per_task]
        k = index % spec.episodes_per_task
        seed = episode_seed(job.seed, task, k)
        config = EnvConfig(max_steps=spec.max_steps, conditions=spec.conditions).resolved(bench)
        env = make_env(bench, task, config)
        rng = np.random.default_rng(index)
        recorder = EpisodeRecorder(spec.max_steps, env.action_dim, STEP_LOG_INTERVAL)
        total, first_success, ended = 0.0, None, None
        try:
            obs = env.reset(seed)
            for step in range(1, spec.max_steps + 1):
                action = rng.uniform(-1, 1, size=env.action_dim).astype(np.float32)
                out = env.step(action)
                total += out.reward
                last = out.terminated or out.truncated or step == spec.max_steps
                recorder.record(step, obs, action, out.reward, out.success, out.info, last=last)
                if out.success and first_success is None:
                    first_success = step
                obs = out.observation
                if last:
                    ended = out
                    break
        finally:
            env.close()
        log = recorder.action_log(
            benchmark_id=spec.benchmark_id,
            task=task,
            job_id=job.job_id,
            episode_index=index,
            seed=seed,
            max_steps=spec.max_steps,
            conditions=config.conditions,
        )
        key = action_log_key(job.job_id, index, job.id)
        (media_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (media_dir / key).write_bytes(encode_action_log(log))
        assert ended is not None
        episodes.append(
            Episode(
                job_id=job.job_id,
                episode_index=index,
                task=task,
                task_episode=k,
                seed=seed,
                success=first_success is not None,
                total_reward=float(log.rewards.sum()),
                steps=recorder.steps,
                steps_to_success=first_success,
                terminated=ended.terminated,
                truncated=not ended.terminated,
                duration_s=0.1,
                actions_ref=key,
            )
        )
        steps.append(
            EpisodeSteps(
                job_id=job.job_id,
                episode_index=index,
                batch_index=0,
                samples=wire_samples(recorder.samples),
            )
        )
    return episodes, steps
