"""Scheduler: jobs for new submissions, assignment to validators, leases, rounds.

* :func:`schedule_submission` creates one job per (submission, benchmark) in the
  competition's open round (:mod:`.rounds`) and wakes the scheduler.
* :func:`schedule_round` gives the leader and the top ``leader_challengers`` eligible
  submissions a job per benchmark in the current round (their paired re-evaluation).
* :class:`Scheduler` (one replica at a time, advisory lock) repeatedly: writes the
  commitment of new rounds on chain, schedules the current round of each active
  competition, expires leases (``lease_s`` without an ack or progress), assigns jobs
  whose round is committed and that have fewer than ``replication`` live or finished
  assignments to connected non-lite validators (the validators of the round's other jobs
  of the same benchmark first, so episodes pair up on their seeds, then least loaded
  first, at most ``max_jobs_per_validator`` unfinished each; a validator whose lease
  expired may be offered the job again, as a new attempt, when nobody else can take it),
  reveals the secrets of ended (and committed) rounds, and wakes the sockets of the
  validators concerned
  (NOTIFY, any replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend import events, renders, rounds
from kinitro.backend.db import (
    repo_admin,
    repo_competitions,
    repo_jobs,
    repo_scheduling,
    repo_scoring,
    repo_submissions,
    repo_validators,
)
from kinitro.backend.db.common import table, utcnow
from kinitro.backend.db.models import JobAssignment
from kinitro.backend.locks import SCHEDULER, LeaderLock
from kinitro.backend.quorum import replication_of
from kinitro.core.db import dsn
from kinitro.protocol.realtime import JobCreatedEvent, ValidatorDisconnectedEvent

if TYPE_CHECKING:
    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)


async def schedule_submission(
    conn: AsyncConnection,
    settings: Settings,
    *,
    submission: dict[str, Any],
    competition: dict[str, Any],
) -> list[str]:
    """Create the submission's jobs (idempotent); returns the new job ids."""
    rnd = await rounds.current_round(conn, settings, competition, utcnow())
    replication = replication_of(competition, settings)
    created = []
    for bench in competition["benchmarks"]:
        job_id = await repo_scheduling.create_job(
            conn,
            dict(
                id=uuid.uuid4().hex,
                submission_id=submission["id"],
                competition_id=competition["id"],
                benchmark_id=bench["benchmark_id"],
                benchmark=bench,
                round_id=rnd["id"],
                replication=replication,
                deadline_s=settings.job_deadline_s,
            ),
        )
        if job_id is not None:
            created.append(job_id)
            await events.emit(
                conn,
                JobCreatedEvent(
                    at=utcnow(),
                    job_id=job_id,
                    submission_id=str(submission["id"]),
                    competition_id=competition["id"],
                    miner_hotkey=submission["miner_hotkey"],
                    benchmark_id=bench["benchmark_id"],
                ),
            )
    return created


async def schedule_round(
    conn: AsyncConnection, settings: Settings, competition: dict[str, Any]
) -> list[str]:
    """Jobs of the current round for the leader and the ``leader_challengers`` best
    eligible submissions (idempotent: one job per submission, benchmark and round), so the
    leader re-earns its place on every round's seeds, paired with its challengers."""
    leader = await repo_scoring.current_leader(conn, competition["id"])
    leader_id = leader["submission_id"] if leader else None
    challengers = await repo_scoring.top_eligible(
        conn, competition["id"], limit=settings.leader_challengers, exclude=leader_id
    )
    created: list[str] = []
    for sid in ([leader_id] if leader_id is not None else []) + challengers:
        sub = await repo_submissions.get_submission(conn, sid)
        if sub is None or sub["status"] not in ("scheduled", "evaluated"):
            continue
        created += await schedule_submission(
            conn, settings, submission=sub, competition=competition
        )
    return created


async def active_load(conn: AsyncConnection) -> Counter[str]:
    A = table(JobAssignment)
    stmt = (
        select(A.c.validator_hotkey, func.count())
        .where(A.c.state.in_(repo_jobs.ACTIVE))
        .group_by(A.c.validator_hotkey)
    )
    return Counter({r[0]: int(r[1]) for r in (await conn.execute(stmt)).all()})


async def assign_pending(
    conn: AsyncConnection, lease_s: float, max_in_flight: int, *, committed_only: bool = True
) -> set[str]:
    """One assignment pass; returns the hotkeys that got new work. A validator holding
    ``max_in_flight`` unfinished assignments gets no more until one finishes (a job of a
    round whose panel member is full waits for it, so the round's episodes still pair). With
    ``committed_only``, jobs wait until their round's commitment is on chain."""
    validators = await repo_validators.evaluators(conn)
    if not validators:
        return set()
    load = await active_load(conn)
    woken: set[str] = set()
    for job in await repo_scheduling.jobs_short_of_validators(conn, committed_only=committed_only):
        need = job["replication"] - job["assigned"]
        have = await repo_scheduling.assignment_hotkeys(conn, job["id"])
        free = [v for v in validators if load[v] < max_in_flight]
        if not free:
            break
        panel = await repo_scheduling.round_panel(conn, job["round_id"], job["benchmark_id"])
        fresh = sorted(
            (v for v in free if v not in have and v != job["audit_of_validator"]),
            key=lambda v: (v not in panel, load[v], v),
        )
        pairs = job["audit_of_validator"] is None  # an agent re-run audit pairs with nothing
        if pairs and any(v in panel and v not in have and v not in free for v in validators):
            # a panel member is at its cap: the job waits for it rather than lose its pair
            fresh = [v for v in fresh if v in panel]
        again = sorted((v for v in free if have.get(v) == "expired"), key=lambda v: (load[v], v))
        for hotkey in (fresh + again)[:need]:
            await repo_scheduling.assign(conn, job["id"], hotkey, lease_s)
            load[hotkey] += 1
            woken.add(hotkey)
    return woken


class Scheduler:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        self.lock = LeaderLock(dsn(state.settings.database_url), SCHEDULER)

    async def tick(self) -> None:
        s = self.state.settings
        if not await self.lock.held():
            return
        await rounds.commit_pending(self.state)
        now = utcnow()
        committed_only = self.state.round_key is not None  # a devnet may run without one
        async with self.state.engine.begin() as conn:
            expired = await repo_scheduling.expire_leases(conn, now)
            if expired:
                self.state.metrics.leases_expired.inc(len(expired))
                log.info("%d assignment leases expired", len(expired))
            stale = await repo_validators.drop_stale(
                conn, now - timedelta(seconds=max(s.heartbeat_timeout_s * 2, 30))
            )
            for hotkey in stale:
                await events.emit(
                    conn,
                    ValidatorDisconnectedEvent(
                        at=now, validator_hotkey=hotkey, reason="heartbeat lost (replica gone)"
                    ),
                )
            for comp in await repo_competitions.list_competitions(conn, active=True):
                if created := await schedule_round(conn, s, comp):
                    log.info("round jobs for competition %s: %d", comp["id"], len(created))
            woken = await assign_pending(
                conn,
                s.lease_s,
                s.max_jobs_per_validator,
                committed_only=committed_only,
            )
            if woken:
                self.state.metrics.jobs_assigned.inc(len(woken))
                await events.wake_validators(conn, woken)
            await repo_admin.purge_nonces(conn, now - timedelta(seconds=3600))
            for round_id in await rounds.reveal_ended(conn, s, now, committed_only=committed_only):
                filmed = await renders.film_revealed_round(conn, self.state, round_id)
                log.info("round %s revealed (%d episode videos queued)", round_id, filmed)

    async def run(self) -> None:
        interval = self.state.settings.scheduler_interval_s
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    self.state.metrics.task_errors.labels("scheduler").inc()
                    log.exception("scheduler tick failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.state.scheduler_wake.wait(), timeout=interval)
                self.state.scheduler_wake.clear()
        finally:
            await self.lock.release()
