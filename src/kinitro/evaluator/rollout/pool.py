"""Ray rollout pool: episodes sharded over N worker actors, with bounded infra retries.

The production :class:`~kinitro.evaluator.rollout.port.Rollouts`: ``play`` is an async
generator that awaits the actors' results on the caller's event loop.

Scheduling is dynamic: each actor holds a small batch of episodes at a time and gets the
next as soon as it returns, so slow tasks do not stall a static shard. A batch is as large
as the actor can play in lockstep on one agent connection (its ``slots``: ``env_slots``
capped by what the agent granted, ``env_slots`` until the actor has said), at most an
equal share of what is left per actor, so the last batches shrink and no actor idles long
at the tail. A batch takes one task while it can (distinct tasks when the competition
hides the task's name from the agent, see :func:`_pick`): K episodes of one task stepped in turn
keep one model's data in cache where K tasks would cycle K models through it (the
simulator alone runs ~8 % faster on MT10 with K = 8), and its K environments are copies
of one compiled model (~15 ms each; a compile is ~170 ms). After the batch's task it
prefers tasks the actor has already built, then tasks no other actor has built (MT50 on
every actor would cost each of them 50 compiles). Results are deterministic anyway: every
episode is fully determined by its seed (the simulator is reseeded per episode).

Faults:
* an agent fault comes back inside the :class:`EpisodeResult` and is final (scored);
* an infrastructure fault (``sandbox_start``, ``simulator_error``, ``internal``) and a lost
  actor (``worker_lost``: the actor process died) are retried on a fresh or another actor,
  at most ``max_infra_retries`` times; the last attempt's result is kept, unscored;
* the job's agent compute budget (``WorkerConfig.agent_budget_s``): each batch is handed
  what is left of it, and once the episodes' agent time adds up to it the episodes not
  yet played fail as ``agent_timeout`` without being played.

Ray: :func:`ensure_ray` attaches to ``address`` or starts a small local Ray (no dashboard,
a modest object store) once per process and reuses it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sys
import time
from collections import Counter, deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.results import EpisodeResult, EpisodeSpec
from kinitro.evaluator.rollout import warm
from kinitro.evaluator.rollout.episode import BUDGET_EXHAUSTED
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.rollout.worker import RolloutWorker, WorkerConfig
from kinitro.protocol.common import FailureCause

log = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 96 * 1024 * 1024
REUSE_TIMEOUT_S = 10.0
"""How long an idle actor may take to accept the next job before another is started."""
ABANDONED_GRACE_S = 3.0
"""How long :meth:`RolloutPool.close` waits for a worker to close after a cancelled play
before killing it (it closes within a few steps once it is playing; a sandbox starting
under load can take far longer, and a killed worker's sandboxes die with it)."""


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Initialise Ray once per process: attach to ``address`` or start a local instance.

    Token authentication: a local instance gets its own random token in
    ``RAY_AUTH_TOKEN`` (inherited by Ray's processes and by child processes that attach
    with ``--ray-address``) instead of the shared ``~/.ray/auth_token``, so concurrent
    clusters on one host cannot clobber each other's token. To attach to an existing
    cluster, provide its token the usual Ray way (``RAY_AUTH_TOKEN`` or the token file).
    """

    if "ray" not in sys.modules:  # Ray reads its auth config when it is imported
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not address and "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
            if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
                os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
        return
    ray.init(
        num_cpus=num_cpus or os.cpu_count() or 1,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=True,
        configure_logging=False,
    )


@dataclass(frozen=True, slots=True)
class WorkerTimeline:
    """One actor's share of a job (seconds)."""

    boot_s: float
    """From the spawn request to the actor ready (process start, imports, media store)."""
    env_build_s: float
    envs_built: int
    agent_start_s: float
    """Starting its agent sandbox(es) and the agent's hello."""
    busy_s: float
    """Playing batches (includes the env builds and agent starts above)."""
    idle_tail_s: float
    """From its last result to the end of the job's play: imbalance at the tail."""


@dataclass(frozen=True, slots=True)
class JobTimeline:
    """Where the time of one job's play went, per actor (:meth:`RolloutPool.timeline`)."""

    play_s: float
    workers: tuple[WorkerTimeline, ...]

    def summary(self) -> str:
        n = max(1, len(self.workers))

        def mean(name: str) -> float:
            return float(sum(getattr(w, name) for w in self.workers)) / n

        return (
            f"{self.play_s:.1f} s on {len(self.workers)} workers; per worker: boot "
            f"{mean('boot_s'):.1f} s, {mean('envs_built'):.0f} env builds "
            f"{mean('env_build_s'):.1f} s, agent start "
            f"{mean('agent_start_s'):.1f} s, busy {mean('busy_s'):.1f} s, idle at the tail "
            f"{mean('idle_tail_s'):.1f} s"
        )


def _pick(
    pending: deque[tuple[EpisodeSpec, int]],
    slot: int,
    owned: dict[int, set[str]],
    taken: set[str] | frozenset[str] = frozenset(),
    *,
    group: bool = True,
) -> tuple[EpisodeSpec, int]:
    """Next episode for actor ``slot``, whose batch already holds tasks ``taken``.

    In order of preference: a task of the batch (K episodes of one task in lockstep share
    the cache, see the module docstring), a task the actor has environments for, a task no
    other actor has built, anything; among equals, the task with the most episodes left.

    ``group=False`` (a competition that hides the task's name from the agent) makes a task
    of the batch the last choice instead: episodes an agent plays side by side must not
    tell it that they share a task (it could pool what K episodes show to identify it), so
    such a batch takes distinct tasks while it can, as the job's shuffled plan intends.
    """
    mine = owned.get(slot, set())
    others: set[str] = set()
    for other, tasks in owned.items():
        if other != slot:
            others |= tasks
    first: dict[str, int] = {}
    left: Counter[str] = Counter()
    for i, (spec, _attempt) in enumerate(pending):
        first.setdefault(spec.task, i)
        left[spec.task] += 1

    def preference(task: str) -> tuple[int, int, int]:
        if task in taken:
            rank = 0 if group else 4
        elif task in mine:
            rank = 1
        else:
            rank = 2 if task not in others else 3
        return rank, -left[task], first[task]

    index = first[min(first, key=preference)]
    item = pending[index]
    del pending[index]
    return item


class RolloutPool:
    """N Ray actors running :class:`RolloutWorker` for one job (a :class:`Rollouts`).

    Results are awaited on the caller's event loop (Ray resolves an ``ObjectRef``'s
    future from its own I/O thread; no thread of ours waits), so the orchestrator consumes
    them as they come and can cancel the job at any await.
    """

    def __init__(self, config: WorkerConfig, options: RolloutOptions) -> None:
        import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

        if not ray.is_initialized():
            raise EvaluatorError("Ray is not initialised: call ensure_ray() at start-up")
        self._ray = ray
        self.config = config
        self.n_workers = max(1, options.workers)
        worker_cpus = options.worker_cpus
        cpus = float(ray.cluster_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]
        if cpus and worker_cpus > cpus:
            log.warning("worker_cpus %.2f > cluster CPUs %.2f: using %.2f", worker_cpus, cpus, cpus)
            worker_cpus = cpus
        if cpus and worker_cpus and self.n_workers * worker_cpus > cpus:
            fit = max(1, int(cpus // worker_cpus))
            log.warning("%d workers do not fit in %.0f CPUs: using %d", self.n_workers, cpus, fit)
            self.n_workers = fit
        self.worker_cpus = worker_cpus
        self.reuse_workers = options.reuse_workers
        self.max_infra_retries = options.max_infra_retries
        self._actor_cls = ray.remote(num_cpus=worker_cpus, max_restarts=0)(RolloutWorker)
        self._actors: list[Any] = []
        self.played_by: tuple[str, ...] = ()
        """Ids of the actors the play started with (diagnostics: warm actors reused)."""
        self._running: set[Any] = set()  # ObjectRefs of batches being played
        self._abandoned = False  # batches were cancelled mid-play: nobody reads them
        # time.time() stamps for timeline(): play start and end, per actor slot its spawn
        # and its last result
        self._started = self._ended = 0.0
        self._spawned: dict[int, float] = {}
        self._last_result: dict[int, float] = {}

    def _key(self, index: int) -> warm.Key:
        return (index, self.worker_cpus, self.config.pin_core)

    def _spawn(self, index: int) -> Any:
        self._spawned[index] = time.time()
        return self._actor_cls.remote(self.config, index)

    async def _start(self, index: int) -> Any:
        """A warm actor of an earlier job for slot ``index`` if one is idle and answers,
        else a new one."""
        while self.reuse_workers and (actor := warm.take(self._ray, self._key(index))):
            self._spawned[index] = time.time()
            try:
                ref = actor.reuse.remote(self.config)
                await asyncio.wait_for(asyncio.wrap_future(ref.future()), REUSE_TIMEOUT_S)
                return actor
            except Exception as exc:  # noqa: BLE001 - died while idle: try the next
                log.info("idle rollout worker %d unusable (%s): starting another", index, exc)
                self._kill(actor)
        # Idle actors hold their CPUs in Ray: none fits this job, so they make room for
        # the new one instead of leaving it waiting for resources
        warm.drop_all()
        return self._spawn(index)

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception as exc:  # noqa: BLE001
            log.debug("kill failed: %s", exc)

    @property
    def actors(self) -> list[Any]:
        """The actor handles (e.g. for a test that kills one)."""
        return list(self._actors)

    async def play(self, episodes: Sequence[EpisodeSpec]) -> AsyncGenerator[EpisodeResult, None]:
        """Run every episode; yield each final result as it completes.

        Uploads may still be in flight when the last result is out: :meth:`flush` before
        reporting the job's result. Cancelling the consumer cancels the batches in flight
        (each actor stops within a few steps); :meth:`close` frees the actors.
        """
        ray = self._ray
        self._started = time.time()
        pending: deque[tuple[EpisodeSpec, int]] = deque((spec, 1) for spec in episodes)
        if not self._actors:
            count = min(self.n_workers, len(episodes))
            self._actors = list(await asyncio.gather(*(self._start(i) for i in range(count))))
            self.played_by = tuple(actor._actor_id.hex() for actor in self._actors)
        idle = list(range(len(self._actors)))
        owned: dict[int, set[str]] = {}  # tasks whose env each actor has built
        in_flight: dict[asyncio.Future[Any], tuple[int, list[tuple[EpisodeSpec, int]], Any]] = {}
        # what each actor can play at once: optimistic (env_slots) until it has reported
        # what its agent granted; a worker plays one lockstep batch per call and hands
        # back what it did not start, so a first guess too high costs one more call
        slots = [max(1, self.config.env_slots)] * len(self._actors)
        # earlier attempts of re-queued episodes: their causes and sandbox starts, handed
        # to the final result (evaluator metrics count every attempt)
        carried: dict[int, tuple[list[FailureCause], int]] = {}
        budget = self.config.agent_budget_s  # agent time the job may use (None: no limit)
        spent = 0.0
        try:
            while pending or in_flight:
                if budget is not None and spent >= budget:
                    # the agent spent the job's compute budget: the rest is not played
                    while pending:
                        spec, attempt = pending.popleft()
                        result = EpisodeResult.failed(
                            spec, FailureCause.AGENT_TIMEOUT, BUDGET_EXHAUSTED
                        )
                        result.attempts = attempt
                        result.retried = carried.pop(spec.index, ([], 0))[0]
                        yield result
                    if not in_flight:
                        break
                while pending and idle:
                    slot = idle.pop()
                    # Share what is left fairly: a full batch each while there is plenty,
                    # then at most an equal share for every actor, busy ones included
                    # (they are back soon): the last batches shrink, and the tail with
                    # them (a batch of one task costs what its task does, up to 3x).
                    size = min(slots[slot], -(-len(pending) // len(self._actors)))
                    batch = []
                    taken: set[str] = set()
                    for _ in range(size):
                        spec, attempt = _pick(
                            pending, slot, owned, taken, group=self.config.reveal_task_name
                        )
                        owned.setdefault(slot, set()).add(spec.task)
                        taken.add(spec.task)
                        batch.append((spec, attempt))
                    left = None if budget is None else budget - spent
                    ref = self._actors[slot].run_episodes.remote([spec for spec, _ in batch], left)
                    self._running.add(ref)
                    in_flight[asyncio.wrap_future(ref.future())] = (slot, batch, ref)
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    slot, batch, ref = in_flight.pop(fut)
                    self._running.discard(ref)
                    self._last_result[slot] = time.time()
                    try:
                        results, slots[slot] = fut.result()
                    except ray.exceptions.RayActorError as exc:
                        log.warning("rollout worker %d lost: %s", slot, exc)
                        self._actors[slot] = self._spawn(slot)
                        owned.pop(slot, None)
                        slots[slot] = max(1, self.config.env_slots)
                        results = [
                            EpisodeResult.failed(spec, FailureCause.WORKER_LOST, str(exc)[:500])
                            for spec, _ in batch
                        ]
                    except ray.exceptions.RayTaskError as exc:
                        results = [
                            EpisodeResult.failed(spec, FailureCause.INTERNAL, str(exc)[:2000])
                            for spec, _ in batch
                        ]
                    idle.append(slot)
                    played = {result.index: result for result in results}
                    # episodes the actor did not start (it plays fewer at once): again
                    pending.extendleft(reversed([b for b in batch if b[0].index not in played]))
                    for spec, attempt in batch:
                        if spec.index not in played:
                            continue
                        result = played[spec.index]
                        result.attempts = attempt
                        spent += result.agent_s
                        causes, starts = carried.pop(spec.index, ([], 0))
                        result.sandbox_starts += starts
                        if result.infra_fault and attempt <= self.max_infra_retries:
                            assert result.failure_cause is not None
                            carried[spec.index] = (
                                [*causes, result.failure_cause],
                                result.sandbox_starts,
                            )
                            log.warning(
                                "episode %d: %s (%s), retry %d",
                                spec.index,
                                result.failure_cause,
                                result.failure_detail,
                                attempt,
                            )
                            pending.appendleft((spec, attempt + 1))
                        else:
                            result.retried = causes
                            yield result
        finally:
            self._ended = time.time()
            for fut in in_flight:  # unhooks Ray's completion callback from this loop
                fut.cancel()
            self._cancel_running()

    async def timeline(self, timeout_s: float = 10.0) -> JobTimeline:
        """Where the last :meth:`play`'s time went, per actor (call before :meth:`close`)."""
        refs = [actor.times.remote() for actor in self._actors]
        workers = []
        for slot, ref in enumerate(refs):
            try:
                times = await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
            except Exception as exc:  # noqa: BLE001 - a summary, never fatal
                log.debug("no times from worker %d: %s", slot, exc)
                continue
            workers.append(
                WorkerTimeline(
                    boot_s=max(0.0, times.ready_at - self._spawned.get(slot, self._started)),
                    env_build_s=times.env_build_s,
                    envs_built=times.envs_built,
                    agent_start_s=times.agent_start_s,
                    busy_s=times.busy_s,
                    idle_tail_s=max(0.0, self._ended - self._last_result.get(slot, self._ended)),
                )
            )
        return JobTimeline(play_s=self._ended - self._started, workers=tuple(workers))

    def _cancel_running(self) -> None:
        """Ask the actors to stop the batches they are playing (within a few steps)."""
        running, self._running = self._running, set()
        self._abandoned |= bool(running)
        for ref in running:
            try:
                self._ray.cancel(ref)
            except Exception as exc:  # noqa: BLE001 - already finished, actor gone, …
                log.debug("cancel failed: %s", exc)

    async def flush(self, timeout_s: float = 300.0) -> list[str]:
        """Wait until every worker's uploads are stored; return upload failures."""
        failures: list[str] = []
        for ref in [a.flush.remote() for a in self._actors]:
            try:
                failures += await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout_s)
            except Exception as exc:  # noqa: BLE001 - reported, never fatal
                failures.append(str(exc) or type(exc).__name__)
        return failures

    async def _park(self, actors: list[Any], grace_s: float) -> list[Any]:
        """Release ``actors`` and keep those that can take another job; returns the rest
        (to close and kill)."""
        releasing = [asyncio.wrap_future(a.release.remote().future()) for a in actors]
        await asyncio.wait(releasing, timeout=grace_s)
        rest = []
        for slot, (actor, fut) in enumerate(zip(actors, releasing, strict=True)):
            ok = fut.done() and not fut.cancelled() and fut.exception() is None and fut.result()
            if not fut.done():
                fut.cancel()
            if not (ok and warm.park(self._ray, self._key(slot), actor)):
                rest.append(actor)
        return rest

    async def close(self, grace_s: float = 20.0) -> None:
        """Close every worker (agent sandboxes, envs) then kill the actors. Idempotent.

        Batches still running are cancelled first; an actor that has not closed within
        ``grace_s`` is killed (its bubblewrap sandboxes die with it). After a cancelled
        play (deadline, the backend's cancel, shutdown) the grace is
        ``ABANDONED_GRACE_S``: an actor still starting its agent or building an
        environment cannot look at the cancellation until that is done, and nobody
        waits for what it would finish."""
        ray = self._ray
        self._cancel_running()
        if self._abandoned:
            grace_s = min(grace_s, ABANDONED_GRACE_S)
        actors, self._actors = self._actors, []
        if self.reuse_workers and not self._abandoned:
            actors = await self._park(actors, grace_s)
        closing = []
        for actor in actors:
            try:
                closing.append(asyncio.wrap_future(actor.close.remote().future()))
            except Exception as exc:  # noqa: BLE001
                log.debug("close request failed: %s", exc)
        if closing:
            await asyncio.wait(closing, timeout=grace_s)
            for fut in closing:
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled() and fut.exception() is not None:
                    log.debug("closing a worker failed: %s", fut.exception())
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as exc:  # noqa: BLE001
                log.debug("kill failed: %s", exc)
