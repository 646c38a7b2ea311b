"""Rollout worker: owns its environments, its own agent sandbox and an uploader.

A plain class; :mod:`kinitro.evaluator.rollout.pool` turns it into a Ray actor. A worker
is handed a few episodes at a time (:meth:`RolloutWorker.run_episodes`) and plays up to
``env_slots`` of them in lockstep on one agent connection, when the agent's manifest
allows that many slots (one agent instance per episode; see
:func:`~kinitro.evaluator.rollout.episode.run_batch`); otherwise one at a time.
Environments are built once per task and slot and reused (every episode reseeds them);
a task's environments after its first start from a copy of its compiled model.
The agent session is started on first use and restarted after an agent fault (a crashed
or misbehaving agent is not trusted for the next episode).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

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
from kinitro.evaluator.rollout.episode import (
    BUDGET_EXHAUSTED,
    EpisodePlay,
    EpisodeRun,
    EpisodesAbandoned,
    run_batch,
    run_episode,
)
from kinitro.evaluator.sandbox.base import pin_to_one_core
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro.protocol.common import FailureCause
from kinitro.storage.media import open_media_store

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
    frame_every: int = 0  # 0: no frames; N: a PNG frame every N steps (rgb modes only)
    log_actions: bool = True
    pin_core: bool = True
    """Pin each actor (and so its sandboxed agent, which inherits the affinity) to one core:
    an RPC round trip is then a same-core switch instead of a cross-core wake-up."""
    env_slots: int = 8
    """Episodes a worker plays at once on one agent connection (one ``act_batch`` round
    trip per step for all of them), capped by the slots the agent's manifest allows."""
    reveal_task_name: bool = True
    """False: the agent's task info carries ``name = ""`` (``BenchmarkSpec``)."""
    run_id: str = ""
    """Media keys of this run: ``episodes/<job_id>/<run_id>/…`` (``EvalRequest.run_id``)."""
    agent_budget_s: float | None = None
    """The job's agent compute budget (:mod:`kinitro.protocol.compute`); None: unlimited.
    The pool hands each call what is left of it."""


MAX_ENVS = 16
"""Environments a worker keeps built (~18 MB each on MT10): beyond it, the least recently
used task's go, never one of the batch being set up. Batches take one task at a time
(``pool._pick``), so this is two tasks' worth at 8 slots; a task evicted and needed again
costs copies of its compiled model (~15 ms each), or one compile (~0.2 s) and the copies."""

MAX_AGENT_START_FAULTS = 2
"""Consecutive agent faults while starting (hello) after which a worker stops retrying."""


class _RepeatedStartFault(Exception):
    def __init__(self, cause: FailureCause, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


def _cancel_requested() -> bool:
    """True when the driver cancelled the Ray call being run (deadline, shutdown)."""
    import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

    if not ray.is_initialized():
        return False
    try:
        return ray.get_runtime_context().is_canceled()
    except RuntimeError:  # not inside a Ray worker
        return False


def _pin(index: int) -> int | None:
    """Pin this process to the ``index``-th allowed core (round robin); None if unsupported."""

    try:
        allowed = sorted(os.sched_getaffinity(0))
        return pin_to_one_core(allowed[index % len(allowed)])
    except (AttributeError, OSError, ValueError) as exc:
        log.debug("cannot pin rollout worker: %s", exc)
        return None


@dataclass(slots=True)
class WorkerTimes:
    """Where a worker's time went (``time.time()`` stamps, seconds): read by the pool at the
    end of a job for its time summary (``RolloutPool.timeline``)."""

    created_at: float
    ready_at: float = 0.0
    env_build_s: float = 0.0
    envs_built: int = 0
    agent_start_s: float = 0.0
    busy_s: float = 0.0
    """Inside ``run_episodes`` (includes the env builds and agent starts above)."""


class RolloutWorker:
    """Plays the batches of one job at a time; between jobs (:meth:`release`, then
    :meth:`reuse` with the next job's config) it keeps its process, imports, pinned core,
    compiled models and, for the same benchmark and environment config, its environments:
    a warm worker starts a job without paying for any of them again (``rollout.pool``)."""

    def __init__(self, config: WorkerConfig, index: int = 0) -> None:
        self._times = WorkerTimes(created_at=time.time())
        self.config = config
        self.core: int | None = None
        if config.pin_core:
            self.core = _pin(index)
        self._envs: dict[str, list[TaskEnv]] = {}  # task → one env per slot, LRU order
        self._agent: AgentSession | None = None
        self._start_faults = 0
        self._sandbox_starts = 0  # since the last run_episodes returned (metrics)
        self._last_start_fault: tuple[FailureCause, str] | None = None
        self._uploader: MediaUploader | None = None
        self._open_uploader()
        self._times.ready_at = time.time()

    def _open_uploader(self) -> None:
        cfg = self.config
        if cfg.media_url:
            self._uploader = MediaUploader(open_media_store(cfg.media_url, **cfg.media_options))

    def reuse(self, config: WorkerConfig) -> None:
        """Take on the next job (after :meth:`release`): its agent starts on first use as
        for a new worker; environments stay when the benchmark and environment config are
        the job's (every episode reseeds them), the uploader when the media store is."""
        self._drop_agent()
        old, self.config = self.config, config
        if (old.benchmark, old.env) != (config.benchmark, config.env):
            self._close_envs()
        if (old.media_url, old.media_options) != (config.media_url, config.media_options):
            if self._uploader is not None:
                self._uploader.close()
            self._uploader = None
            self._open_uploader()
        self._start_faults = self._sandbox_starts = 0
        self._last_start_fault = None
        now = time.time()
        self._times = WorkerTimes(created_at=now, ready_at=now)

    def release(self) -> bool:
        """End of the job: the agent sandbox goes, uploads are stored. True when the worker
        can take another job."""
        self._drop_agent()
        if self._uploader is not None:
            self._uploader.flush()
        return True

    def times(self) -> WorkerTimes:
        return self._times

    def _env(self, task: str, index: int = 0, keep: Collection[str] = ()) -> TaskEnv:
        """The ``index``-th environment of ``task`` (built on first use); evicting never
        closes one of ``task``'s or ``keep``'s (the batch being set up)."""
        envs = self._envs.pop(task, [])
        self._envs[task] = envs  # most recently used last
        while len(envs) <= index:
            t0 = time.perf_counter()
            envs.append(make_env(self.config.benchmark, task, self.config.env))
            self._times.env_build_s += time.perf_counter() - t0
            self._times.envs_built += 1
        total = sum(len(v) for v in self._envs.values())
        for old in list(self._envs):
            if total <= MAX_ENVS:
                break
            if old == task or old in keep:
                continue
            for env in self._envs.pop(old):
                total -= 1
                _close_env(env)
        return envs[index]

    def _ensure_agent(self, env: TaskEnv) -> AgentSession:
        if self._agent is None:
            t0 = time.perf_counter()
            try:
                self._agent = self.config.launcher.start(
                    env.observation_spec(), env.action_spec(), max(1, self.config.env_slots)
                )
            finally:
                self._times.agent_start_s += time.perf_counter() - t0
            self._sandbox_starts += 1
        return self._agent

    def _drop_agent(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            try:
                agent.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead agent may fail
                log.debug("closing agent failed: %s", exc)

    @property
    def slots(self) -> int:
        """Episodes this worker plays at once: ``env_slots``, capped by the running agent's
        granted slots (1 while no agent runs: the last one failed)."""
        if self._agent is None:
            return 1
        return max(1, min(self._agent.slots, self.config.env_slots))

    def run_episodes(
        self, specs: list[EpisodeSpec], budget_s: float | None = None
    ) -> tuple[list[EpisodeResult], int]:
        """Play one lockstep batch of ``specs`` — as many as the agent's slots allow — and
        return their results in the order of ``specs``, with :attr:`slots` (how many to
        hand this worker next time). Episodes it did not start come back without a result:
        the pool hands them out again, so results stream back batch by batch.

        Every episode is played once: an agent failure is charged to every episode it
        ended (see :func:`~kinitro.evaluator.rollout.episode.run_batch`), never replayed.
        ``budget_s``: agent time the batch may use (what is left of the job's compute
        budget); once it is spent, the episodes in progress, and all of ``specs`` when
        it was spent already, fail as ``agent_timeout``. A cancelled call (``ray.cancel``,
        the job is being stopped) returns within ``STOP_CHECK_EVERY`` steps, dropping the
        episodes in progress.
        """
        t0 = time.perf_counter()
        try:
            return self._run_episodes(specs, budget_s)
        finally:
            self._times.busy_s += time.perf_counter() - t0

    def _run_episodes(
        self, specs: list[EpisodeSpec], budget_s: float | None
    ) -> tuple[list[EpisodeResult], int]:
        results: dict[int, EpisodeResult] = {}
        if budget_s is not None and budget_s <= 0:  # the compute budget is spent
            results = {
                spec.index: EpisodeResult.failed(spec, FailureCause.AGENT_TIMEOUT, BUDGET_EXHAUSTED)
                for spec in specs
            }
        elif not _cancel_requested():  # (cancelled: nobody reads the results)
            try:
                results = self._play(specs[: max(1, self.config.env_slots)], budget_s)
            except EpisodesAbandoned:  # cancelled mid-episode: nobody reads these either
                self._drop_agent()
        played = [results[spec.index] for spec in specs if spec.index in results]
        if played:  # reported once per call, on its first result
            played[0].sandbox_starts, self._sandbox_starts = self._sandbox_starts, 0
        return played, self.slots

    def _play(self, batch: list[EpisodeSpec], budget_s: float | None) -> dict[int, EpisodeResult]:
        """Play as much of ``batch`` as the agent's slots allow (and environments could be
        built for), within ``budget_s`` of agent time; the results by episode index."""
        cfg = self.config
        try:
            env0 = self._env(batch[0].task)
        except Exception as exc:  # noqa: BLE001
            return {
                batch[0].index: EpisodeResult.failed(
                    batch[0], FailureCause.SIMULATOR_ERROR, f"cannot build env: {exc}"
                )
            }
        try:
            if self._start_faults >= MAX_AGENT_START_FAULTS and self._last_start_fault:
                # The agent failed to come up repeatedly (import error, hang in __init__):
                # do not pay the start deadline again for every remaining episode.
                cause, detail = self._last_start_fault
                raise _RepeatedStartFault(cause, f"agent failed to start again: {detail}")
            agent = self._ensure_agent(env0)
            self._start_faults = 0
        except Exception as exc:  # noqa: BLE001
            cause, detail = classify(exc)
            if cause.is_agent_fault:
                self._start_faults += 1
                self._last_start_fault = (cause, detail)
            return {spec.index: EpisodeResult.failed(spec, cause, detail) for spec in batch}
        batch = batch[: self.slots]
        envs = [env0]
        seen = {batch[0].task: 1}
        keep = {spec.task for spec in batch}
        try:
            for spec in batch[1:]:
                envs.append(self._env(spec.task, seen.get(spec.task, 0), keep))
                seen[spec.task] = seen.get(spec.task, 0) + 1
        except Exception as exc:  # noqa: BLE001
            batch = batch[: len(envs)]
            log.warning("cannot build more envs for a batch: %s", exc)
        if agent.slots <= 1:
            run = run_episode(
                env0,
                agent,
                batch[0],
                self._task(batch[0]),
                max_steps=cfg.env.max_steps,
                step_log_interval=cfg.step_log_interval,
                frame_every=cfg.frame_every,
                stop=_cancel_requested,
                budget_s=budget_s,
            )
            runs, failed = [run], run.result.failure_cause is not None
        else:
            plays = [
                EpisodePlay(
                    env,
                    spec,
                    self._task(spec),
                    max_steps=cfg.env.max_steps,
                    step_log_interval=cfg.step_log_interval,
                    frame_every=cfg.frame_every,
                )
                for env, spec in zip(envs, batch, strict=True)
            ]
            outcome = run_batch(plays, agent, _cancel_requested, budget_s)
            runs = outcome.runs
            failed = outcome.agent_failed or any(r.result.failure_cause for r in runs)
        if failed:
            # Agent faults and transport failures leave the agent in an unknown state.
            self._drop_agent()
        broken = [
            env
            for env, run in zip(envs, runs, strict=False)
            if run.result.failure_cause == FailureCause.SIMULATOR_ERROR
        ]
        if broken:
            self._discard_envs(broken)
        return {run.result.index: self._publish(run) for run in runs}

    def _discard_envs(self, broken: list[TaskEnv]) -> None:
        """Close environments whose simulator raised: the next episode, of this job or of
        the next job on this warm worker, gets a new one instead of a state it left."""
        gone = {id(env) for env in broken}
        for envs in self._envs.values():
            # an env's index is its slot: the task's go from the first broken one on
            first = next((i for i, env in enumerate(envs) if id(env) in gone), len(envs))
            for env in envs[first:]:
                _close_env(env)
            del envs[first:]

    def _task(self, spec: EpisodeSpec) -> TaskInfo:
        cfg = self.config
        return TaskInfo(
            name=spec.task if cfg.reveal_task_name else "",
            benchmark_id=cfg.benchmark.benchmark_id,
            max_steps=cfg.env.max_steps,
            metadata={"provider": cfg.benchmark.provider, "mode": cfg.env.observation_mode},
        )

    def _publish(self, run: EpisodeRun) -> EpisodeResult:
        """Queue the episode's action log and frames for upload; the result refs them."""
        cfg = self.config
        result = run.result
        if run.recorder.steps:
            result.action_fingerprint = run.recorder.fingerprint(cfg.env.max_steps)
        if self._uploader is not None and cfg.log_actions and run.recorder.steps:
            action_log = run.recorder.action_log(
                benchmark_id=cfg.benchmark.benchmark_id,
                task=result.task,
                job_id=cfg.job_id,
                episode_index=result.index,
                seed=result.seed,
                max_steps=cfg.env.max_steps,
                conditions=cfg.env.resolved(cfg.benchmark).conditions,
            )
            result.actions_ref = self._uploader.submit(
                action_log_key(cfg.job_id, result.index, cfg.run_id),
                encode_action_log(action_log),
                ACTION_LOG_CONTENT_TYPE,
            )
        if self._uploader is not None:
            for step, frame in run.frames:
                result.media_refs.append(
                    self._uploader.submit(
                        frame_key(cfg.job_id, result.index, step, cfg.run_id),
                        encode_png(frame),
                        "image/png",
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
        self._close_envs()

    def _close_envs(self) -> None:
        for envs in self._envs.values():
            for env in envs:
                _close_env(env)
        self._envs.clear()


def _close_env(env: TaskEnv) -> None:
    try:
        env.close()
    except Exception as exc:  # noqa: BLE001
        log.debug("closing env failed: %s", exc)
