"""One evaluation, end to end: plan episodes, run them on the Ray pool, compute metrics.

Shared by ``kinitro evaluator run`` (jobs from the validator queue), ``kinitro evaluator
local`` / ``kinitro miner eval`` (a local bundle) and the throughput benchmark, so all of
them take the same path: sandboxed agent, Ray rollout workers, the same metrics.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kinitro.evaluator.envs import BenchmarkDef, EnvConfig, derive_episode_seed, get_benchmark
from kinitro.evaluator.metrics import EvalStats, compute_metrics
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout.agent import AgentLauncher
from kinitro.evaluator.rollout.pool import RolloutPool, ensure_ray
from kinitro.evaluator.rollout.worker import WorkerConfig


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

    @classmethod
    def from_job(cls, job: Any) -> EvalRequest:
        """From a wire ``EvalJob``."""
        spec = job.benchmark
        return cls(
            job_id=job.job_id,
            benchmark_id=spec.benchmark_id,
            episodes_per_task=spec.episodes_per_task,
            seed=job.seed,
            tasks=tuple(spec.tasks),
            max_steps=spec.max_steps,
            observation_mode=spec.observation_mode,
            camera=spec.camera,
            resolution=tuple(spec.resolution) if spec.resolution else None,
            step_log_interval=spec.step_log_interval,
            reveal_task_name=spec.reveal_task_name,
        )


@dataclass(slots=True)
class EvalOutcome:
    benchmark: BenchmarkDef
    results: list[EpisodeResult]
    metrics: EvalStats
    upload_failures: list[str] = field(default_factory=list)


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


def evaluate(
    request: EvalRequest,
    launcher: AgentLauncher,
    *,
    workers: int = 1,
    worker_cpus: float = 1.0,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
    media_url: str | None = None,
    media_options: dict[str, Any] | None = None,
    frame_every: int = 0,
    max_infra_retries: int = 2,
    pin_workers: bool = True,
    env_slots: int = 8,
    on_result: Callable[[EpisodeResult], None] = lambda _r: None,
    should_stop: Callable[[], bool] = lambda: False,
    pool_hook: Callable[[RolloutPool], None] = lambda _p: None,
) -> EvalOutcome:
    """Run ``request`` to the end (blocking). Raises ``Cancelled`` if ``should_stop()``."""
    bench = get_benchmark(request.benchmark_id, request.tasks or None)
    episodes = plan_episodes(
        bench, request.episodes_per_task, request.seed, shuffle=not request.reveal_task_name
    )
    config = WorkerConfig(
        job_id=request.job_id,
        benchmark=bench,
        env=EnvConfig(
            max_steps=request.max_steps,
            observation_mode=request.observation_mode,  # type: ignore[arg-type]
            camera=request.camera,
            resolution=request.resolution,
        ),
        launcher=launcher,
        step_log_interval=request.step_log_interval,
        media_url=media_url,
        media_options=dict(media_options or {}),
        frame_every=frame_every if request.observation_mode == "state+rgb" else 0,
        pin_core=pin_workers,
        env_slots=env_slots,
        reveal_task_name=request.reveal_task_name,
    )
    ensure_ray(ray_address, num_cpus=ray_num_cpus)
    pool = RolloutPool(
        config, workers, worker_cpus=worker_cpus, max_infra_retries=max_infra_retries
    )
    pool_hook(pool)
    try:
        results = pool.run(episodes, on_result=on_result, should_stop=should_stop)
        failures = pool.flush()
    finally:
        pool.close()
    return EvalOutcome(bench, results, compute_metrics(results, bench.tasks), failures)
