"""Score the reference agents (zero, random, scripted expert) on a competition definition.

The agents run in-process: they are trusted reference code, not miner code, so no sandbox
or Ray is needed. Everything else is the evaluation's own path — the same episode plan and
seeds (:func:`~kinitro.evaluator.runner.plan_episodes`), environment wrappers with the
competition's knobs, episode loop (:func:`~kinitro.evaluator.rollout.episode.run_episode`)
and metrics — so a baseline is what that agent would score as a bundle.

The reference agents never look at images, so episodes are simulated without rendering
whatever the observation mode: the expert reads the state vector (with the competition's
observation noise and hidden goal), i.e. it stands for a bundle with perfect perception.
It is always given the true task name: a bundle can infer the task from what it observes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from kinitro import __version__
from kinitro.evaluator.envs import PROVIDERS, EnvConfig, TaskEnv, get_benchmark, make_env
from kinitro.evaluator.envs.base import Expert
from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.metrics import compute_metrics
from kinitro.evaluator.results import EpisodeResult
from kinitro.evaluator.rollout.episode import run_episode
from kinitro.evaluator.runner import plan_episodes
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro.protocol.baselines import (
    REFERENCE_AGENTS,
    Baselines,
    BaselineScore,
    ReferenceAgent,
    baseline_fingerprint,
)
from kinitro.protocol.common import BenchmarkSpec


class ReferencePolicy:
    """An in-process agent with the rollout loop's ``AgentSession`` surface (one slot)."""

    slots = 1

    def __init__(self, kind: ReferenceAgent, provider: str, action_dim: int, seed: int) -> None:
        self.kind = kind
        self.provider = PROVIDERS[provider]
        self.action_dim = action_dim
        self._rng = np.random.default_rng(seed)
        self._experts: dict[str, Expert] = {}
        self._expert: Expert | None = None

    def reset(self, task: TaskInfo, slot: int = 0) -> None:
        if self.kind != "expert":
            return
        if task.name not in self._experts:
            expert = self.provider.expert(task.name)
            if expert is None:
                raise EvaluatorError(f"no scripted expert for task {task.name!r}")
            self._experts[task.name] = expert
        self._expert = self._experts[task.name]

    def act(self, observation: Any) -> npt.NDArray[np.float32]:
        if self.kind == "zero":
            return np.zeros(self.action_dim, dtype=np.float32)
        if self.kind == "random":
            return self._rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        assert self._expert is not None
        state = observation["state"] if isinstance(observation, dict) else observation
        return self._expert(state)

    def act_batch(self, slots: Sequence[int], observations: Any) -> npt.NDArray[np.float32]:
        raise NotImplementedError("reference policies play one episode at a time")

    def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Progress:
    agent: ReferenceAgent
    done: int
    total: int


def score_agent(
    benchmarks: Sequence[BenchmarkSpec],
    agent: ReferenceAgent,
    *,
    episodes_per_task: int,
    seed: int = 0,
    on_episode: Callable[[Progress], None] = lambda _p: None,
) -> BaselineScore:
    """Play ``agent`` on every benchmark (``episodes_per_task`` each task) and score it."""
    started = time.process_time()
    results: list[EpisodeResult] = []
    plans = []
    for spec in benchmarks:
        bench = get_benchmark(spec.benchmark_id, spec.tasks)
        plans.append((spec, bench, plan_episodes(bench, episodes_per_task, seed)))
    total = sum(len(episodes) for _s, _b, episodes in plans)
    for spec, bench, episodes in plans:
        # state only: reference agents never look at images (see the module docstring)
        config = EnvConfig(max_steps=spec.max_steps, conditions=spec.conditions)
        envs: dict[str, TaskEnv] = {}
        try:
            policy: ReferencePolicy | None = None
            for episode in episodes:
                env = envs.get(episode.task) or envs.setdefault(
                    episode.task, make_env(bench, episode.task, config)
                )
                if policy is None:
                    policy = ReferencePolicy(agent, bench.provider, env.action_dim, seed)
                task = TaskInfo(episode.task, spec.benchmark_id, spec.max_steps)
                run = run_episode(
                    env, policy, episode, task, max_steps=spec.max_steps, step_log_interval=0
                )
                if run.result.failure_cause is not None:
                    raise EvaluatorError(
                        f"{agent} baseline, {episode.task}: {run.result.failure_detail}"
                    )
                results.append(run.result)
                on_episode(Progress(agent, len(results), total))
        finally:
            for env in envs.values():
                env.close()
    stats = compute_metrics(results, tuple(dict.fromkeys(r.task for r in results)))
    return BaselineScore(
        **stats.overall.to_dict(),
        steps=sum(r.steps for r in results),
        seconds=time.process_time() - started,
        per_task={task: s.success_rate for task, s in stats.per_task.items()},
    )


def compute_baselines(
    benchmarks: Sequence[BenchmarkSpec],
    *,
    episodes_per_task: int = 10,
    seed: int = 0,
    agents: Sequence[ReferenceAgent] = REFERENCE_AGENTS,
    on_episode: Callable[[Progress], None] = lambda _p: None,
) -> Baselines:
    """Every reference agent in ``agents`` on ``benchmarks``, ready to store."""
    scores = {
        agent: score_agent(
            benchmarks,
            agent,
            episodes_per_task=episodes_per_task,
            seed=seed,
            on_episode=on_episode,
        )
        for agent in agents
    }
    return Baselines(
        fingerprint=baseline_fingerprint(benchmarks),
        seed=seed,
        episodes_per_task=episodes_per_task,
        computed_at=datetime.now(UTC),
        kinitro_version=__version__,
        agents=scores,
    )
