"""The hot loop: one episode = reset, then (agent act → env step) until the episode ends.

Per step it does one agent round trip, one simulator step and one O(1) record into
preallocated arrays; everything else (encoding, uploads, telemetry) happens after the
episode or on other threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from kinitro.evaluator import results as fc
from kinitro.evaluator.envs import TaskEnv
from kinitro.evaluator.episode_logger import EpisodeRecorder
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout.agent import AgentSession, classify
from kinitro.protocol.agent_rpc import TaskInfo

MAX_FRAMES = 64
"""Frames kept per episode (the ``episode`` message carries at most 64 media refs)."""


@dataclass(slots=True)
class EpisodeRun:
    result: EpisodeResult
    recorder: EpisodeRecorder
    frames: list[tuple[int, np.ndarray]]


def run_episode(
    env: TaskEnv,
    agent: AgentSession,
    spec: EpisodeSpec,
    task: TaskInfo,
    *,
    max_steps: int,
    step_log_interval: int,
    frame_every: int = 0,
) -> EpisodeRun:
    """Play one episode; agent and simulator failures become a ``failure_cause``."""
    started = time.perf_counter()
    result = EpisodeResult(
        index=spec.index, task=spec.task, task_episode=spec.task_episode, seed=spec.seed
    )
    recorder = EpisodeRecorder(max_steps, env.action_dim, step_log_interval)
    frames: list[tuple[int, np.ndarray]] = []
    run = EpisodeRun(result, recorder, frames)
    try:
        obs = env.reset(spec.seed)
    except Exception as exc:  # noqa: BLE001 - a simulator failure is data, not a crash
        result.failure_cause, result.failure_detail = fc.SIMULATOR_ERROR, f"reset: {exc}"
        return _finish(run, started)
    try:
        agent.reset(task)
    except Exception as exc:  # noqa: BLE001
        result.failure_cause, result.failure_detail = classify(exc)
        return _finish(run, started)
    if frame_every:
        _grab(env, 0, frames)
    total = 0.0
    for step in range(1, max_steps + 1):
        try:
            action = agent.act(obs)
        except Exception as exc:  # noqa: BLE001
            result.failure_cause, result.failure_detail = classify(exc)
            break
        try:
            out = env.step(action)
        except Exception as exc:  # noqa: BLE001
            result.failure_cause = fc.SIMULATOR_ERROR
            result.failure_detail = f"step {step}: {type(exc).__name__}: {exc}"
            break
        total += out.reward
        ended = out.terminated or out.truncated or step == max_steps
        recorder.record(step, obs, action, out.reward, out.success, out.info, last=ended)
        if out.success and result.steps_to_success is None:
            result.steps_to_success = step
            result.success = True
        if frame_every and (step % frame_every == 0 or ended) and len(frames) < MAX_FRAMES:
            _grab(env, step, frames)
        obs = out.observation
        if ended:
            result.terminated = out.terminated
            result.truncated = out.truncated or (step == max_steps and not out.terminated)
            break
    result.steps = recorder.steps
    result.total_reward = total
    result.samples = recorder.samples
    return _finish(run, started)


def _grab(env: TaskEnv, step: int, frames: list[tuple[int, np.ndarray]]) -> None:
    frame = env.render()
    if frame is not None:
        frames.append((step, frame))


def _finish(run: EpisodeRun, started: float) -> EpisodeRun:
    run.result.steps = run.recorder.steps
    run.result.samples = run.recorder.samples
    run.result.duration_s = time.perf_counter() - started
    return run
