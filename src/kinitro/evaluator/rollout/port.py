"""The work-distribution port: who plays a job's episodes, and how results come back.

:class:`Rollouts` is what :func:`kinitro.evaluator.runner.evaluate` drives: hand it the
planned episodes and it yields each *final* result as soon as it exists (infrastructure
retries are its business), then stores the uploads it owes (``flush``) and releases
everything (``close``). :class:`~kinitro.evaluator.rollout.pool.RolloutPool` (Ray actors,
one sandboxed agent each) is the production implementation; the factory is a parameter of
``evaluate`` and of the orchestrator, so a different distribution (or an in-process one in
tests) plugs in without touching the job lifecycle.

Cancelling the task that iterates ``play`` (deadline, shutdown, cancellation) must stop
the work within seconds; ``close`` then frees actors and sandboxes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
    from kinitro.evaluator.rollout.worker import WorkerConfig


@dataclass(frozen=True, slots=True)
class RolloutOptions:
    """How a job's episodes are played (the evaluator settings' share of a rollout)."""

    workers: int = 1
    """Rollout actors per job, each with its own agent sandbox."""
    worker_cpus: float = 1.0
    max_infra_retries: int = 2
    """Re-runs of an episode after an infrastructure fault (never scored)."""
    pin_workers: bool = True
    env_slots: int = 8
    """Episodes an actor plays at once on one agent connection (capped by the agent)."""
    media_url: str | None = None
    media_options: Mapping[str, Any] = field(default_factory=dict)
    frame_every: int = 0
    """A PNG frame every N steps in ``state+rgb`` mode (0: none)."""
    reuse_workers: bool = True
    """Keep the actors warm for the next job of this process (imports, compiled models,
    environments; never the agent sandbox): a job then starts in a fraction of a second."""
    host_factor: float | None = 1.0
    """This host's calibration (:mod:`kinitro.evaluator.calibration`): the benchmark's
    per-step agent allowance is multiplied by it. None: no compute budget at all."""


class Rollouts(Protocol):
    """Plays one job's episodes somewhere and streams their results back."""

    def play(self, episodes: Sequence[EpisodeSpec]) -> AsyncGenerator[EpisodeResult, None]:
        """Each episode's final result, in completion order."""
        ...

    async def flush(self) -> list[str]:
        """Wait until every upload (action logs, frames) is stored; return the failures."""
        ...

    async def close(self) -> None:
        """Release workers, agents and sandboxes (idempotent)."""
        ...


RolloutsFactory = Callable[["WorkerConfig", RolloutOptions], Rollouts]
"""Builds the :class:`Rollouts` of one job (``RolloutPool`` in production)."""
