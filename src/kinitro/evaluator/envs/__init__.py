"""Benchmark providers and task environments.

``get_benchmark("metaworld/MT10-v3")`` resolves a versioned benchmark id through the
provider registry; ``make_env(benchmark, task, config)`` builds one task's environment.
New simulator families register a :class:`BenchmarkProvider` in :data:`PROVIDERS`.
"""

from __future__ import annotations

from kinitro.evaluator.envs.base import (
    BenchmarkDef,
    BenchmarkProvider,
    EnvConfig,
    Observation,
    StepOutcome,
    TaskEnv,
    derive_episode_seed,
)
from kinitro.evaluator.envs.metaworld import MetaWorldProvider
from kinitro.evaluator.errors import UnknownBenchmarkError

PROVIDERS: dict[str, BenchmarkProvider] = {"metaworld": MetaWorldProvider()}


def get_benchmark(
    benchmark_id: str, tasks: list[str] | tuple[str, ...] | None = None
) -> BenchmarkDef:
    """Resolve ``benchmark_id``; optionally restrict it to ``tasks`` (must be a subset)."""
    provider_name = benchmark_id.split("/", 1)[0]
    provider = PROVIDERS.get(provider_name)
    bench = provider.resolve(benchmark_id) if provider else None
    if bench is None:
        raise UnknownBenchmarkError(f"unknown benchmark {benchmark_id!r}")
    if tasks:
        unknown = [t for t in tasks if t not in bench.tasks]
        if unknown:
            raise UnknownBenchmarkError(
                f"tasks {unknown} are not part of benchmark {benchmark_id!r}"
            )
        bench = BenchmarkDef(
            bench.benchmark_id,
            bench.provider,
            tuple(tasks),
            bench.description,
            bench.goal_observable,
        )
    return bench


def make_env(benchmark: BenchmarkDef, task: str, config: EnvConfig) -> TaskEnv:
    """Build the environment of one ``task`` of ``benchmark``."""
    return PROVIDERS[benchmark.provider].make_env(benchmark, task, config)


__all__ = [
    "PROVIDERS",
    "BenchmarkDef",
    "BenchmarkProvider",
    "EnvConfig",
    "Observation",
    "StepOutcome",
    "TaskEnv",
    "derive_episode_seed",
    "get_benchmark",
    "make_env",
]
