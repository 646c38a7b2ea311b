"""One evaluation, end to end: plan episodes, play them, compute metrics.

Shared by ``kinitro evaluator run`` (jobs from the validator queue), ``kinitro evaluator
local`` / ``kinitro miner eval`` (a local bundle) and the throughput benchmark, so all of
them take the same path: sandboxed agent, Ray rollout workers, the same metrics.

:func:`evaluate` is a coroutine: results are awaited on the caller's event loop as the
actors finish them and handed to ``on_result`` one by one (it runs on the loop between
two results, so it must not block: the orchestrator queues them for its telemetry
writer). Cancel the task to stop the evaluation; the rollouts are closed either way.
Ray must be running (:func:`~kinitro.evaluator.rollout.pool.ensure_ray`).
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from kinitro.evaluator.envs import BenchmarkDef, EnvConfig, derive_episode_seed, get_benchmark
from kinitro.evaluator.metrics import EvalStats, compute_metrics
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout.agent import AgentLauncher
from kinitro.evaluator.rollout.pool import JobTimeline, RolloutPool
from kinitro.evaluator.rollout.port import RolloutOptions, RolloutsFactory
from kinitro.evaluator.rollout.worker import WorkerConfig
from kinitro.protocol.compute import DEFAULT_STEP_ALLOWANCE_MS, ComputeReport, job_budget_s
from kinitro.protocol.conditions import Conditions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """What to evaluate (the parts of an ``eval_job`` the rollout needs)."""

    job_id: str
    benchmark_id: str
    episodes_per_task: int
    seed: int
    tasks: tuple[str, ...] = ()
    max_steps: int = 500
    observation_mode: str = "state"
    camera: str | None = None
    resolution: tuple[int, int] | None = None
    step_log_interval: int = 10
    reveal_task_name: bool = True
    conditions: Conditions = field(default_factory=Conditions)
    run_id: str = ""
    """This run's media folder under the job's (the ``eval_job`` id: one per validator and
    attempt, so validators sharing a media store never overwrite each other's logs)."""
    step_allowance_s: float = DEFAULT_STEP_ALLOWANCE_MS / 1000
    """Agent time per planned step on the reference host (the compute budget)."""

    @classmethod
    def from_job(cls, job: Any) -> EvalRequest:
        """From a wire ``EvalJob``."""
        return replace(cls.from_spec(job.job_id, job.benchmark, job.seed), run_id=job.id)

    @classmethod
    def from_spec(cls, job_id: str, spec: Any, seed: int) -> EvalRequest:
        """From a ``BenchmarkSpec`` (a job's, or a competition preset's)."""
        return cls(
            job_id=job_id,
            benchmark_id=spec.benchmark_id,
            episodes_per_task=spec.episodes_per_task,
            seed=seed,
            tasks=tuple(spec.tasks),
            max_steps=spec.max_steps,
            observation_mode=spec.observation_mode,
            camera=spec.camera,
            resolution=tuple(spec.resolution) if spec.resolution else None,
            step_log_interval=spec.step_log_interval,
            reveal_task_name=spec.reveal_task_name,
            conditions=spec.conditions,
            step_allowance_s=spec.agent_step_allowance_ms / 1000,
        )


@dataclass(slots=True)
class EvalOutcome:
    benchmark: BenchmarkDef
    results: list[EpisodeResult]
    metrics: EvalStats
    upload_failures: list[str] = field(default_factory=list)
    timeline: JobTimeline | None = None
    """Where the rollout's time went (Ray rollout pool only)."""
    compute: ComputeReport | None = None
    """The agent's compute budget and what it used (None: played without a budget)."""


def plan_episodes(
    bench: BenchmarkDef, episodes_per_task: int, base_seed: int, *, shuffle: bool = False
) -> list[EpisodeSpec]:
    """The job's episodes, indexed task by task; seeds derived, never sent to the agent.

    ``shuffle`` (used when task names are hidden from the agent) plays them in an order
    drawn from the base seed instead of task by task, so an agent cannot tell the task
    by counting its resets; indices, seeds and results are the same either way.
    """
    out: list[EpisodeSpec] = []
    for task in bench.tasks:
        for k in range(episodes_per_task):
            out.append(EpisodeSpec(len(out), task, k, derive_episode_seed(base_seed, task, k)))
    if shuffle:
        random.Random(f"kinitro-play-order:{int(base_seed)}").shuffle(out)
    return out


async def evaluate(
    request: EvalRequest,
    launcher: AgentLauncher,
    options: RolloutOptions = RolloutOptions(),
    *,
    on_result: Callable[[EpisodeResult], None] | None = None,
    rollouts: RolloutsFactory = RolloutPool,
) -> EvalOutcome:
    """Play ``request`` to the end; ``on_result`` sees each final result as it comes."""
    bench = get_benchmark(request.benchmark_id, request.tasks or None)
    episodes = plan_episodes(
        bench, request.episodes_per_task, request.seed, shuffle=not request.reveal_task_name
    )
    factor = options.host_factor
    allowance = None if factor is None else request.step_allowance_s * factor
    config = WorkerConfig(
        job_id=request.job_id,
        run_id=request.run_id,
        benchmark=bench,
        env=EnvConfig(
            max_steps=request.max_steps,
            observation_mode=request.observation_mode,  # type: ignore[arg-type]
            camera=request.camera,
            resolution=request.resolution,
            conditions=request.conditions,
        ),
        launcher=launcher,
        step_log_interval=request.step_log_interval,
        media_url=options.media_url,
        media_options=dict(options.media_options),
        frame_every=options.frame_every if "rgb" in request.observation_mode else 0,
        pin_core=options.pin_workers,
        env_slots=options.env_slots,
        reveal_task_name=request.reveal_task_name,
        agent_budget_s=None
        if allowance is None
        else job_budget_s(allowance, len(episodes), request.max_steps),
    )
    pool = rollouts(config, options)
    results: list[EpisodeResult] = []
    try:
        async with contextlib.aclosing(pool.play(episodes)) as played:
            async for result in played:
                results.append(result)
                if on_result is not None:
                    on_result(result)
        failures = await pool.flush()
        timeline = await pool.timeline() if isinstance(pool, RolloutPool) else None
    finally:
        await pool.close()
    if timeline is not None:
        steps = sum(r.steps for r in results)
        log.info(
            "job %s: %d episodes, %d steps in %s",
            request.job_id,
            len(results),
            steps,
            timeline.summary(),
        )
    results.sort(key=lambda r: r.index)
    compute = None
    if allowance is not None and factor is not None and config.agent_budget_s is not None:
        compute = ComputeReport(
            step_allowance_s=allowance,
            host_factor=factor,
            budget_s=config.agent_budget_s,
            used_s=sum(r.agent_s for r in results),
        )
    metrics = compute_metrics(results, bench.tasks)
    return EvalOutcome(bench, results, metrics, failures, timeline, compute)
