"""The hot loop: reset, then (agent act → env step) until the episode ends.

Two drivers share one per-episode state machine (:class:`EpisodePlay`):

* :func:`run_episode` — one episode, one ``act`` round trip per step;
* :func:`run_batch` — up to *K* episodes in lockstep on one agent connection (one slot,
  i.e. one agent instance, per episode): one ``act_batch`` round trip per step serves every
  still-running episode, so the fixed cost of a round trip (two context switches, four
  system calls, framing) is paid once per K simulator steps.

Per step each episode does one simulator step and one O(1) record into preallocated
arrays; everything else (encoding, uploads, telemetry) happens after the episode or on
other threads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kinitro.evaluator.envs import TaskEnv
from kinitro.evaluator.episode_logger import EpisodeRecorder
from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout.agent import AgentSession, classify
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro.protocol.common import FailureCause

MAX_FRAMES = 64
"""Frames kept per episode (the ``episode`` message carries at most 64 media refs)."""
STOP_CHECK_EVERY = 32
"""Steps between two looks at ``stop`` (the job being cancelled): a cancelled job lets
go of its worker within a fraction of a second, at no measurable cost per step."""


BUDGET_EXHAUSTED = "the job's agent compute budget is exhausted"


class EpisodesAbandoned(EvaluatorError):
    """``stop`` said the job is being cancelled: the episodes in progress are dropped."""


@dataclass(slots=True)
class EpisodeRun:
    result: EpisodeResult
    recorder: EpisodeRecorder
    frames: list[tuple[int, np.ndarray]]


class EpisodePlay:
    """One episode in progress: its environment, current observation and records."""

    __slots__ = (
        "agent_s",
        "done",
        "env",
        "frame_every",
        "frames",
        "max_steps",
        "obs",
        "recorder",
        "result",
        "spec",
        "started",
        "step_no",
        "task",
        "total",
    )

    def __init__(
        self,
        env: TaskEnv,
        spec: EpisodeSpec,
        task: TaskInfo,
        *,
        max_steps: int,
        step_log_interval: int,
        frame_every: int = 0,
    ) -> None:
        self.env = env
        self.spec = spec
        self.task = task
        self.max_steps = max_steps
        self.frame_every = frame_every
        self.started = time.perf_counter()
        self.result = EpisodeResult(
            index=spec.index, task=spec.task, task_episode=spec.task_episode, seed=spec.seed
        )
        self.recorder = EpisodeRecorder(max_steps, env.action_dim, step_log_interval)
        self.frames: list[tuple[int, np.ndarray]] = []
        self.obs: Any = None
        self.step_no = 0
        self.total = 0.0
        self.done = False
        self.agent_s = 0.0

    def begin(self) -> bool:
        """Reset the simulator with the episode's seed; False (and done) if it fails."""
        try:
            self.obs = self.env.reset(self.spec.seed)
        except Exception as exc:  # noqa: BLE001 - a simulator failure is data, not a crash
            self.fail(FailureCause.SIMULATOR_ERROR, f"reset: {exc}")
            return False
        if self.frame_every:
            self._grab(0)
        return True

    def fail(self, cause: FailureCause, detail: str) -> None:
        """End the episode with a failure (agent fault, simulator error)."""
        self.result.failure_cause, self.result.failure_detail = cause, detail
        self.done = True

    def fail_agent(self, exc: BaseException) -> None:
        self.fail(*classify(exc))

    def advance(self, action: np.ndarray) -> bool:
        """Step the simulator with ``action`` and record it; True once the episode ended."""
        step = self.step_no + 1
        result = self.result
        try:
            out = self.env.step(action)
        except Exception as exc:  # noqa: BLE001
            self.fail(FailureCause.SIMULATOR_ERROR, f"step {step}: {type(exc).__name__}: {exc}")
            return True
        self.step_no = step
        self.total += out.reward
        ended = out.terminated or out.truncated or step == self.max_steps
        self.recorder.record(step, self.obs, action, out.reward, out.success, out.info, last=ended)
        if out.success and result.steps_to_success is None:
            result.steps_to_success = step
            result.success = True
        if self.frame_every and (step % self.frame_every == 0 or ended):
            self._grab(step)
        self.obs = out.observation
        if ended:
            result.terminated = out.terminated
            result.truncated = out.truncated or (step == self.max_steps and not out.terminated)
            self.done = True
        return ended

    def _grab(self, step: int) -> None:
        if len(self.frames) >= MAX_FRAMES:
            return
        frame = self.env.render()
        if frame is not None:
            self.frames.append((step, frame))

    def finish(self) -> EpisodeRun:
        result = self.result
        result.steps = self.recorder.steps
        result.total_reward = self.total
        result.samples = self.recorder.samples
        result.duration_s = time.perf_counter() - self.started
        result.agent_s = self.agent_s
        return EpisodeRun(result, self.recorder, self.frames)


def run_episode(
    env: TaskEnv,
    agent: AgentSession,
    spec: EpisodeSpec,
    task: TaskInfo,
    *,
    max_steps: int,
    step_log_interval: int,
    frame_every: int = 0,
    stop: Callable[[], bool] | None = None,
    budget_s: float | None = None,
) -> EpisodeRun:
    """Play one episode; agent and simulator failures become a ``failure_cause``. Raises
    :class:`EpisodesAbandoned` when ``stop()`` (looked at every ``STOP_CHECK_EVERY``
    steps) turns true. Agent time beyond ``budget_s`` ends it as ``agent_timeout``."""
    play = EpisodePlay(
        env,
        spec,
        task,
        max_steps=max_steps,
        step_log_interval=step_log_interval,
        frame_every=frame_every,
    )
    if not play.begin():
        return play.finish()
    clock = time.perf_counter
    limit = math.inf if budget_s is None else budget_s
    started = clock()
    try:
        agent.reset(task)
    except Exception as exc:  # noqa: BLE001
        play.fail_agent(exc)
        return play.finish()
    finally:
        play.agent_s += clock() - started
    act = agent.act
    advance = play.advance
    while True:
        if stop is not None and play.step_no % STOP_CHECK_EVERY == 0 and stop():
            raise EpisodesAbandoned
        started = clock()
        try:
            action = act(play.obs)
        except Exception as exc:  # noqa: BLE001
            play.fail_agent(exc)
            break
        finally:
            play.agent_s += clock() - started
        if play.agent_s > limit:
            play.fail(FailureCause.AGENT_TIMEOUT, BUDGET_EXHAUSTED)
            break
        if advance(action):
            break
    return play.finish()


@dataclass(slots=True)
class BatchOutcome:
    """What :func:`run_batch` leaves: every episode of the batch, finished or failed."""

    runs: list[EpisodeRun] = field(default_factory=list)
    agent_failed: bool = False


def run_batch(
    plays: list[EpisodePlay],
    agent: AgentSession,
    stop: Callable[[], bool] | None = None,
    budget_s: float | None = None,
) -> BatchOutcome:
    """Play ``plays`` in lockstep, slot ``i`` = ``plays[i]``, one ``act_batch`` per step.

    Any agent failure ends every episode still running, each charged to the agent: the
    slot the agent named gets its own fault, the others are cut short by it; a failure
    naming no slot (timeout, crash, protocol violation) is every running episode's. None
    is replayed: the agent process is the miner's, and a replay would be a second draw of
    a stochastic policy that a miner could buy by failing on purpose. ``stop`` as in
    :func:`run_episode`; agent time beyond ``budget_s`` (every round trip counts once,
    shared by its episodes) ends every running episode as ``agent_timeout``.
    """
    out = BatchOutcome()
    running: list[int] = []
    for slot, play in enumerate(plays):
        if play.begin():
            running.append(slot)
    clock = time.perf_counter
    limit = math.inf if budget_s is None else budget_s
    used = 0.0
    try:
        for slot in running:
            started = clock()
            try:
                agent.reset(plays[slot].task, slot)
            finally:
                plays[slot].agent_s += clock() - started
                used += clock() - started
    except Exception as exc:  # noqa: BLE001
        _blame(plays, running, exc, out)
        running = []
    act_batch = agent.act_batch
    steps = 0
    while running:
        if stop is not None and steps % STOP_CHECK_EVERY == 0 and stop():
            raise EpisodesAbandoned
        steps += 1
        started = clock()
        try:
            actions = act_batch(running, [plays[s].obs for s in running])
        except Exception as exc:  # noqa: BLE001
            _blame(plays, running, exc, out)
            break
        finally:
            spent = clock() - started
            used += spent
            for s in running:
                plays[s].agent_s += spent / len(running)
        if used > limit:
            for s in running:
                plays[s].fail(FailureCause.AGENT_TIMEOUT, BUDGET_EXHAUSTED)
            break
        still = []
        for j, slot in enumerate(running):
            if not plays[slot].advance(actions[j]):
                still.append(slot)
        running = still
    out.runs = [play.finish() for play in plays]
    return out


def _blame(
    plays: list[EpisodePlay], running: list[int], exc: BaseException, out: BatchOutcome
) -> None:
    out.agent_failed = True
    cause, detail = classify(exc)
    slot = getattr(exc, "slot", None)
    for s in running:
        if slot is None or s == slot:
            plays[s].fail(cause, detail)
        else:
            plays[s].fail(
                cause, f"cut short by the agent's failure in slot {slot}: {detail}"[:2000]
            )
