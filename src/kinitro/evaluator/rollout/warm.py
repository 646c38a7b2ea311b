"""Rollout actors kept warm between the jobs of one evaluator process.

An actor that played a job to its end is parked here (its agent sandbox closed, its
uploads stored) with what it built: its process, imports, pinned core, compiled models
and environments. The next job's :class:`~kinitro.evaluator.rollout.pool.RolloutPool`
takes the idle actor of each of its slots (:func:`take`) and hands it its config
(``RolloutWorker.reuse``), so a job starts without paying for any of that again. Actors
are keyed by (slot, CPUs, pinned): a slot is the core an actor pinned itself to.
Handles of a Ray that was restarted are forgotten, never used.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[int, float, bool]
"""(slot, CPUs per actor, pinned to its core)."""

MAX_IDLE = 16
"""Idle actors a process keeps, all keys together (each holds its imports, compiled
models and up to ``worker.MAX_ENVS`` environments, ~0.5 GB on MT10)."""

_idle: dict[Key, list[Any]] = {}
_session: str | None = None
"""The Ray connection the idle actors belong to (:func:`_ray_session`)."""


def _ray_session(ray: Any) -> str:
    """This driver's connection to Ray: a restarted Ray has another node id (random)."""
    context = ray.get_runtime_context()
    return f"{context.get_node_id()}/{context.get_job_id()}"


def _current(ray: Any) -> dict[Key, list[Any]]:
    global _session
    session = _ray_session(ray)
    if session != _session:  # Ray was restarted: the old handles are dead
        _idle.clear()
        _session = session
    return _idle


def take(ray: Any, key: Key) -> Any | None:
    """An idle actor for ``key`` (now the caller's), or None."""
    idle = _current(ray).get(key)
    return idle.pop() if idle else None


def park(ray: Any, key: Key, actor: Any) -> bool:
    """Keep ``actor`` for a next job; False when the process keeps enough already."""
    idle = _current(ray)
    if sum(len(v) for v in idle.values()) >= MAX_IDLE:
        return False
    idle.setdefault(key, []).append(actor)
    return True


def drop_all() -> int:
    """Kill every idle actor (evaluator shutdown, or to free their Ray CPUs for actors
    of another key); returns how many there were."""
    import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

    actors = [actor for idle in _idle.values() for actor in idle]
    _idle.clear()
    if ray.is_initialized():
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # noqa: BLE001 - already gone
                log.debug("kill failed: %s", exc)
    return len(actors)
