"""Replay audits: results due for one, the sampled episodes, verdicts and pass counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table, utcnow
from kinitro.backend.db.models import Audit, Episode, EvalRound, Job, Result

AU = table(Audit)
RES = table(Result)
J = table(Job)
R = table(EvalRound)
E = table(Episode)


async def due_results(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Completed results of revealed rounds that no audit covers yet, oldest first."""
    audited = (
        select(AU.c.id)
        .where(AU.c.job_id == RES.c.job_id, AU.c.validator_hotkey == RES.c.validator_hotkey)
        .exists()
    )
    stmt = (
        select(RES.c.job_id, RES.c.validator_hotkey, RES.c.runtime_key)
        .join(J, J.c.id == RES.c.job_id)
        .join(R, R.c.id == J.c.round_id)
        .where(RES.c.state == "completed", R.c.revealed_at.is_not(None), ~audited)
        .order_by(RES.c.received_at)
        .limit(limit)
    )
    return rows(await conn.execute(stmt))


async def episodes_of(conn: AsyncConnection, job_id: str, hotkey: str) -> list[dict[str, Any]]:
    """What the validator reported of each episode of the job (the audit's ``reported``)."""
    stmt = (
        select(
            E.c.episode_index,
            E.c.task,
            E.c.task_episode,
            E.c.seed,
            E.c.success,
            E.c.total_reward,
            E.c.steps,
            E.c.failure_cause,
            E.c.actions_ref,
        )
        .where(E.c.job_id == job_id, E.c.validator_hotkey == hotkey)
        .order_by(E.c.episode_index)
    )
    return rows(await conn.execute(stmt))


async def plan(conn: AsyncConnection, audits: list[dict[str, Any]]) -> None:
    """Record sampled audits (``state`` pending, or already settled as skipped)."""
    if audits:
        await conn.execute(
            insert(AU)
            .values(audits)
            .on_conflict_do_nothing(
                index_elements=[AU.c.job_id, AU.c.validator_hotkey, AU.c.episode_index, AU.c.kind]
            )
        )


async def pending(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Pending replay audits with their job (spec, round, submission), oldest first."""
    stmt = (
        select(
            AU,
            J.c.benchmark,
            J.c.round_id,
            J.c.submission_id,
            J.c.audit_of_job,
            J.c.audit_of_validator,
        )
        .join(J, J.c.id == AU.c.job_id)
        .where(AU.c.state == "pending", AU.c.kind == "replay")
        .order_by(AU.c.id)
        .limit(limit)
    )
    return rows(await conn.execute(stmt))


async def pending_reruns(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """Pending agent re-run audits with their re-run job (id, state, spec)."""
    RJ = J.alias("rerun")
    stmt = (
        select(AU, RJ.c.id.label("rerun_job_id"), RJ.c.state.label("rerun_state"))
        .join(
            RJ,
            (RJ.c.audit_of_job == AU.c.job_id)
            & (RJ.c.audit_of_validator == AU.c.validator_hotkey)
            & (RJ.c.audit_of_episode == AU.c.episode_index),
        )
        .where(AU.c.state == "pending", AU.c.kind == "agent_rerun")
        .order_by(AU.c.id)
        .limit(limit)
    )
    return rows(await conn.execute(stmt))


async def has_rerun(conn: AsyncConnection, job_id: str, hotkey: str) -> bool:
    stmt = select(AU.c.id).where(
        AU.c.job_id == job_id, AU.c.validator_hotkey == hotkey, AU.c.kind == "agent_rerun"
    )
    return (await conn.execute(stmt)).first() is not None


async def rerun_logs(
    conn: AsyncConnection, job_id: str, episode_index: int
) -> list[dict[str, Any]]:
    """The re-run job's completed runs of the episode: validator and action log."""
    stmt = (
        select(E.c.validator_hotkey, E.c.actions_ref)
        .join(
            RES,
            (RES.c.job_id == E.c.job_id) & (RES.c.validator_hotkey == E.c.validator_hotkey),
        )
        .where(E.c.job_id == job_id, E.c.episode_index == episode_index, RES.c.state == "completed")
        .order_by(RES.c.received_at)
    )
    return rows(await conn.execute(stmt))


async def has_result(conn: AsyncConnection, job_id: str, hotkey: str) -> bool:
    stmt = select(RES.c.id).where(
        RES.c.job_id == job_id, RES.c.validator_hotkey == hotkey, RES.c.state == "completed"
    )
    return (await conn.execute(stmt)).first() is not None


async def settle(
    conn: AsyncConnection,
    audit_id: int,
    state: str,
    detail: str | None,
    replayed: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        update(AU)
        .where(AU.c.id == audit_id, AU.c.state == "pending")
        .values(
            state=state,
            detail=detail[:4000] if detail else None,
            replayed=replayed,
            attempts=AU.c.attempts + 1,
            finished_at=utcnow(),
        )
    )


async def retry_later(conn: AsyncConnection, audit_id: int, detail: str, max_attempts: int) -> None:
    """The audit could not run (media store or worker trouble, not the validator's):
    pending again, or skipped once ``max_attempts`` tries are spent."""
    await conn.execute(
        update(AU)
        .where(AU.c.id == audit_id, AU.c.state == "pending")
        .values(attempts=AU.c.attempts + 1, detail=detail[:4000])
    )
    await conn.execute(
        update(AU)
        .where(AU.c.id == audit_id, AU.c.state == "pending", AU.c.attempts >= max_attempts)
        .values(state="skipped", finished_at=utcnow())
    )


async def skip_pending(conn: AsyncConnection, job_id: str, hotkey: str, detail: str) -> None:
    """The rest of a (job, validator)'s pending audits: moot (its result is gone)."""
    await conn.execute(
        update(AU)
        .where(AU.c.job_id == job_id, AU.c.validator_hotkey == hotkey, AU.c.state == "pending")
        .values(state="skipped", detail=detail, finished_at=utcnow())
    )


async def pass_counts(conn: AsyncConnection) -> dict[str, tuple[int, int]]:
    """Per validator: (audits passed, audits failed)."""
    stmt = (
        select(
            AU.c.validator_hotkey,
            func.count().filter(AU.c.state == "passed"),
            func.count().filter(AU.c.state == "failed"),
        )
        .where(AU.c.state.in_(("passed", "failed")))
        .group_by(AU.c.validator_hotkey)
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in (await conn.execute(stmt)).all()}


async def list_audits(
    conn: AsyncConnection,
    *,
    hotkey: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    q = select(AU)
    if hotkey is not None:
        q = q.where(AU.c.validator_hotkey == hotkey)
    if state is not None:
        q = q.where(AU.c.state == state)
    return await page(conn, q, limit=limit, offset=offset, order=[AU.c.id.desc()])
