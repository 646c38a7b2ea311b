"""Rollout worker: owns its environments, its own agent sandbox and an uploader.

A plain class; :mod:`kinitro.evaluator.rollout.pool` turns it into a Ray actor. One worker
runs one episode at a time. Environments are built once per task and reused (every
episode reseeds them). The agent session is started on first use and restarted after an
agent fault (a crashed or misbehaving agent is not trusted for the next episode).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from kinitro.evaluator import results as fc
from kinitro.evaluator.envs import BenchmarkDef, EnvConfig, TaskEnv, make_env
from kinitro.evaluator.episode_logger import (
    ACTION_LOG_CONTENT_TYPE,
    MediaUploader,
    action_log_key,
    encode_action_log,
    encode_png,
    frame_key,
)
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout.agent import AgentLauncher, AgentSession, classify
from kinitro.evaluator.rollout.episode import run_episode
from kinitro.protocol.agent_rpc import TaskInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker needs; picklable, shipped once to each Ray actor."""

    job_id: str
    benchmark: BenchmarkDef
    env: EnvConfig
    launcher: AgentLauncher
    step_log_interval: int = 50
    media_url: str | None = None
    media_options: dict[str, Any] = field(default_factory=dict)
    frame_every: int = 0  # 0: no frames; N: a PNG frame every N steps (state+rgb only)
    log_actions: bool = True
    pin_core: bool = True
    """Pin each actor (and so its sandboxed agent, which inherits the affinity) to one core:
    an RPC round trip is then a same-core switch instead of a cross-core wake-up."""


MAX_AGENT_START_FAULTS = 2
"""Consecutive agent faults while starting (hello) after which a worker stops retrying."""


class _RepeatedStartFault(Exception):
    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


def _pin(index: int) -> int | None:
    """Pin this process to the ``index``-th allowed core (round robin); None if unsupported."""
    import os

    from kinitro.evaluator.sandbox.base import pin_to_one_core

    try:
        allowed = sorted(os.sched_getaffinity(0))
        return pin_to_one_core(allowed[index % len(allowed)])
    except (AttributeError, OSError, ValueError) as exc:
        log.debug("cannot pin rollout worker: %s", exc)
        return None


class RolloutWorker:
    def __init__(self, config: WorkerConfig, index: int = 0) -> None:
        self.config = config
        self.core: int | None = None
        if config.pin_core:
            self.core = _pin(index)
        self._envs: dict[str, TaskEnv] = {}
        self._agent: AgentSession | None = None
        self._start_faults = 0
        self._last_start_fault: tuple[str, str] | None = None
        self._uploader: MediaUploader | None = None
        if config.media_url:
            from kinitro.storage.media import open_media_store

            self._uploader = MediaUploader(
                open_media_store(config.media_url, **config.media_options)
            )

    def ping(self) -> bool:
        return True

    def _env(self, task: str) -> TaskEnv:
        env = self._envs.get(task)
        if env is None:
            env = self._envs[task] = make_env(self.config.benchmark, task, self.config.env)
        return env

    def _ensure_agent(self, env: TaskEnv) -> AgentSession:
        if self._agent is None:
            self._agent = self.config.launcher.start(env.observation_spec(), env.action_spec())
        return self._agent

    def _drop_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            try:
                agent.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead agent may fail
                log.debug("closing agent failed: %s", exc)

    def run_episode(self, spec: EpisodeSpec) -> EpisodeResult:
        cfg = self.config
        try:
            env = self._env(spec.task)
        except Exception as exc:  # noqa: BLE001
            return EpisodeResult(
                index=spec.index,
                task=spec.task,
                task_episode=spec.task_episode,
                seed=spec.seed,
                failure_cause=fc.SIMULATOR_ERROR,
                failure_detail=f"cannot build env: {exc}",
            )
        try:
            if self._start_faults >= MAX_AGENT_START_FAULTS and self._last_start_fault:
                # The agent failed to come up repeatedly (import error, hang in __init__):
                # do not pay the start deadline again for every remaining episode.
                cause, detail = self._last_start_fault
                raise _RepeatedStartFault(cause, f"agent failed to start again: {detail}")
            agent = self._ensure_agent(env)
            self._start_faults = 0
        except Exception as exc:  # noqa: BLE001
            cause, detail = classify(exc)
            if cause in fc.AGENT_FAULTS:
                self._start_faults += 1
                self._last_start_fault = (cause, detail)
            return EpisodeResult(
                index=spec.index,
                task=spec.task,
                task_episode=spec.task_episode,
                seed=spec.seed,
                failure_cause=cause,
                failure_detail=detail,
            )
        task = TaskInfo(
            name=spec.task,
            benchmark_id=cfg.benchmark.benchmark_id,
            max_steps=cfg.env.max_steps,
            episode_index=spec.task_episode,
            metadata={"provider": cfg.benchmark.provider, "mode": cfg.env.observation_mode},
        )
        run = run_episode(
            env,
            agent,
            spec,
            task,
            max_steps=cfg.env.max_steps,
            step_log_interval=cfg.step_log_interval,
            frame_every=cfg.frame_every,
        )
        result = run.result
        if result.failure_cause is not None:
            # Agent faults and transport failures leave the agent in an unknown state.
            self._drop_agent()
        if self._uploader is not None and cfg.log_actions and run.recorder.steps:
            action_log = run.recorder.action_log(
                benchmark_id=cfg.benchmark.benchmark_id,
                task=spec.task,
                job_id=cfg.job_id,
                episode_index=spec.index,
                seed=spec.seed,
                max_steps=cfg.env.max_steps,
                goal_hidden=not cfg.benchmark.goal_observable,
            )
            result.actions_ref = self._uploader.submit(
                action_log_key(cfg.job_id, spec.index),
                encode_action_log(action_log),
                ACTION_LOG_CONTENT_TYPE,
            )
        if self._uploader is not None:
            for step, frame in run.frames:
                result.media_refs.append(
                    self._uploader.submit(
                        frame_key(cfg.job_id, spec.index, step), encode_png(frame), "image/png"
                    )
                )
        return result

    def flush(self) -> list[str]:
        """Wait for pending uploads; return failures."""
        return self._uploader.flush() if self._uploader is not None else []

    def close(self) -> None:
        self._drop_agent()
        if self._uploader is not None:
            self._uploader.close()
        for env in self._envs.values():
            try:
                env.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("closing env failed: %s", exc)
        self._envs.clear()
