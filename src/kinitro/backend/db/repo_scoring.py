"""Scores, leader decisions, weight sets and the validator outbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table, utcnow
from kinitro.backend.db.models import (
    Episode,
    EvalRound,
    Job,
    LeaderDecision,
    Result,
    Score,
    Submission,
    Validator,
    ValidatorMessage,
    WeightSet,
)
from kinitro.backend.db.repo_validators import in_good_standing

SC = table(Score)
L = table(LeaderDecision)
W = table(WeightSet)
O = table(ValidatorMessage)  # noqa: E741
J = table(Job)
RES = table(Result)
S = table(Submission)
V = table(Validator)
E = table(Episode)
R = table(EvalRound)


async def results_for_scoring(conn: AsyncConnection, competition_id: str) -> list[dict[str, Any]]:
    """Per job of scorable submissions: completed results (job_id, validator, counts,
    evaluator runtime) of validators in good standing (a suspended one's are left out)."""
    stmt = (
        select(
            J.c.submission_id,
            J.c.id.label("job_id"),
            J.c.round_id,
            RES.c.validator_hotkey,
            RES.c.successes,
            RES.c.episodes,
            RES.c.runtime,
            RES.c.runtime_key,
        )
        .join(RES, RES.c.job_id == J.c.id)
        .join(V, V.c.hotkey == RES.c.validator_hotkey)
        .where(
            in_good_standing(),
            J.c.competition_id == competition_id,
            J.c.state != "cancelled",
            J.c.audit_of_job.is_(None),  # agent re-run audits are never scored
            RES.c.state == "completed",
            RES.c.episodes.is_not(None),
        )
    )
    return rows(await conn.execute(stmt))


async def job_counts(conn: AsyncConnection, competition_id: str) -> list[dict[str, Any]]:
    """Per (submission, round): its live or finished jobs and when the round starts."""

    stmt = (
        select(J.c.submission_id, J.c.round_id, R.c.starts_at, func.count().label("jobs"))
        .join(R, R.c.id == J.c.round_id)
        .where(
            J.c.competition_id == competition_id,
            J.c.state != "cancelled",
            J.c.audit_of_job.is_(None),
        )
        .group_by(J.c.submission_id, J.c.round_id, R.c.starts_at)
    )
    return rows(await conn.execute(stmt))


async def episodes_of_jobs(conn: AsyncConnection, job_ids: list[str]) -> list[dict[str, Any]]:
    """Episode summaries of these jobs, with their submission and round (for pairing)."""
    if not job_ids:
        return []
    stmt = (
        select(
            J.c.submission_id,
            J.c.round_id,
            E.c.job_id,
            E.c.validator_hotkey,
            E.c.task,
            E.c.task_episode,
            E.c.success,
            E.c.failure_cause,
            E.c.action_fingerprint,
        )
        .join(J, J.c.id == E.c.job_id)
        .where(E.c.job_id.in_(job_ids))
    )
    return rows(await conn.execute(stmt))


async def with_live_jobs(conn: AsyncConnection, competition_id: str) -> set[int]:
    """Submissions of the competition with a queued or running job."""
    stmt = (
        select(J.c.submission_id)
        .where(J.c.competition_id == competition_id, J.c.state.in_(("queued", "running")))
        .distinct()
    )
    return {int(x) for x in (await conn.execute(stmt)).scalars()}


async def behavioural_copies(conn: AsyncConnection, competition_id: str) -> dict[int, int]:
    """submission → original of the behavioural copies already found (they stay copies)."""
    stmt = select(SC.c.submission_id, SC.c.copy_of).where(
        SC.c.competition_id == competition_id,
        SC.c.copy_of.is_not(None),
        SC.c.detail["copy_kind"].astext == "behaviour",
    )
    return {int(r[0]): int(r[1]) for r in (await conn.execute(stmt)).all()}


async def top_eligible(
    conn: AsyncConnection, competition_id: str, *, limit: int, exclude: int | None
) -> list[int]:
    """The best eligible, non-copy, live submissions by score (challengers of a round)."""
    stmt = (
        select(SC.c.submission_id)
        .join(S, S.c.id == SC.c.submission_id)
        .where(
            SC.c.competition_id == competition_id,
            SC.c.eligible.is_(True),
            SC.c.copy_of.is_(None),
            S.c.status.in_(("scheduled", "evaluated")),
        )
        .order_by(SC.c.success_rate.desc(), S.c.commitment_block, S.c.id)
        .limit(limit)
    )
    if exclude is not None:
        stmt = stmt.where(SC.c.submission_id != exclude)
    return [int(x) for x in (await conn.execute(stmt)).scalars()]


async def save_score(conn: AsyncConnection, values: dict[str, Any]) -> None:
    stmt = insert(SC).values(**values, computed_at=utcnow())
    update_cols = {k: stmt.excluded[k] for k in values if k != "submission_id"}
    update_cols["computed_at"] = stmt.excluded.computed_at
    await conn.execute(
        stmt.on_conflict_do_update(index_elements=[SC.c.submission_id], set_=update_cols)
    )


async def drop_scores(conn: AsyncConnection, submission_ids: list[int]) -> None:
    """Delete the scores of these submissions (none of their results stands any more)."""
    if submission_ids:
        await conn.execute(delete(SC).where(SC.c.submission_id.in_(submission_ids)))


async def leaderboard(conn: AsyncConnection, competition_id: str) -> list[dict[str, Any]]:
    stmt = (
        select(
            SC,
            S.c.miner_hotkey,
            S.c.miner_uid,
            S.c.commitment_block,
            S.c.artifact_sha256,
            S.c.artifact_repo,
            S.c.artifact_revision,
            S.c.status,
        )
        .join(S, S.c.id == SC.c.submission_id)
        .where(SC.c.competition_id == competition_id, S.c.status.in_(("scheduled", "evaluated")))
        .order_by(SC.c.eligible.desc(), SC.c.success_rate.desc(), S.c.commitment_block, S.c.id)
    )
    return rows(await conn.execute(stmt))


async def score_of(conn: AsyncConnection, submission_id: int) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(SC).where(SC.c.submission_id == submission_id)))
        .mappings()
        .first()
    )
    return dict(row) if row else None


# ------------------------------------------------------------------ leaders


async def current_leader(conn: AsyncConnection, competition_id: str) -> dict[str, Any] | None:
    stmt = (
        select(L, S.c.miner_hotkey, S.c.miner_uid)
        .join(S, S.c.id == L.c.submission_id)
        .where(L.c.competition_id == competition_id, L.c.status == "leader")
        .order_by(L.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def decisions_for(
    conn: AsyncConnection, competition_id: str, submission_id: int
) -> list[str]:
    stmt = select(L.c.status).where(
        L.c.competition_id == competition_id, L.c.submission_id == submission_id
    )
    return list((await conn.execute(stmt)).scalars())


async def add_decision(conn: AsyncConnection, values: dict[str, Any]) -> int:
    stmt = L.insert().values(**values).returning(L.c.id)
    return int((await conn.execute(stmt)).scalar_one())


async def dethrone(conn: AsyncConnection, competition_id: str, *, by: str | None) -> None:
    await conn.execute(
        update(L)
        .where(L.c.competition_id == competition_id, L.c.status == "leader")
        .values(status="dethroned", decided_at=utcnow(), decided_by=by)
    )


async def candidates(
    conn: AsyncConnection, *, competition_id: str | None = None, status: str = "candidate"
) -> list[dict[str, Any]]:
    stmt = (
        select(L, S.c.miner_hotkey, S.c.miner_uid)
        .join(S, S.c.id == L.c.submission_id)
        .where(L.c.status == status)
    )
    if competition_id is not None:
        stmt = stmt.where(L.c.competition_id == competition_id)
    return rows(await conn.execute(stmt.order_by(L.c.id)))


async def get_decision(conn: AsyncConnection, decision_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(L).where(L.c.id == decision_id))).mappings().first()
    return dict(row) if row else None


async def set_decision(
    conn: AsyncConnection,
    decision_id: int,
    status: str,
    *,
    by: str | None,
    reason: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "decided_at": utcnow(), "decided_by": by}
    if reason is not None:
        values["reason"] = reason
    await conn.execute(update(L).where(L.c.id == decision_id).values(**values))


async def withdraw_candidates(conn: AsyncConnection, competition_id: str) -> None:
    await conn.execute(
        update(L)
        .where(L.c.competition_id == competition_id, L.c.status == "candidate")
        .values(status="withdrawn", decided_at=utcnow())
    )


# ------------------------------------------------------------------ weights


async def latest_weights(conn: AsyncConnection) -> dict[str, Any] | None:
    row = (await conn.execute(select(W).order_by(W.c.id.desc()).limit(1))).mappings().first()
    return dict(row) if row else None


async def add_weights(conn: AsyncConnection, values: dict[str, Any]) -> dict[str, Any]:
    return dict((await conn.execute(W.insert().values(**values).returning(W))).mappings().one())


async def weights_history(
    conn: AsyncConnection, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    return await page(conn, select(W), limit=limit, offset=offset, order=[W.c.id.desc()])


# ------------------------------------------------------------------ outbox


async def enqueue(
    conn: AsyncConnection,
    *,
    hotkey: str,
    message_id: str,
    type_: str,
    payload: dict[str, Any],
    reset: bool = False,
) -> None:
    """Queue a message for a validator; ``reset`` makes an acked one pending again."""
    stmt = insert(O).values(
        validator_hotkey=hotkey, message_id=message_id, type=type_, payload=payload
    )
    keys = [O.c.validator_hotkey, O.c.message_id]
    if reset:
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=keys, set_={"acked_at": None, "sent_at": None}
            )
        )
    else:
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=keys))


async def pending_messages(conn: AsyncConnection, hotkey: str) -> list[dict[str, Any]]:
    stmt = select(O).where(O.c.validator_hotkey == hotkey, O.c.acked_at.is_(None)).order_by(O.c.id)
    return rows(await conn.execute(stmt))


async def ack_message(conn: AsyncConnection, hotkey: str, message_id: str) -> bool:
    stmt = (
        update(O)
        .where(O.c.validator_hotkey == hotkey, O.c.message_id == message_id)
        .values(acked_at=func_now())
        .returning(O.c.id)
    )
    return (await conn.execute(stmt)).scalar() is not None


async def supersede_messages(conn: AsyncConnection, type_: str, keep_message_id: str) -> None:
    """Older unacked messages of a type (e.g. set_weights) are no longer worth sending."""
    await conn.execute(
        update(O)
        .where(O.c.type == type_, O.c.acked_at.is_(None), O.c.message_id != keep_message_id)
        .values(acked_at=func_now())
    )


def func_now() -> Any:
    return func.now()
