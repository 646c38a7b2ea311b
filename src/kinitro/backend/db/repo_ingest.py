"""Idempotent ingestion of what validators send: upsert by each message's natural key.

Every function returns True when the row is new and False for a duplicate (which the
caller acks all the same).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Text, bindparam, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import JSON, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend.db.common import page, rows, table
from kinitro.backend.db.models import (
    Episode,
    EpisodeStepBatch,
    EvalRound,
    Job,
    JobStatusEvent,
    Result,
)

H = table(JobStatusEvent)
RES = table(Result)
E = table(Episode)
ST = table(EpisodeStepBatch)
J = table(Job)
R = table(EvalRound)
# an episode with its round's timing: kinitro.backend.embargo seals it until the reveal;
# never its action fingerprint (only the backend compares them, to find behavioural copies)
EPISODE_VIEW = [
    *(c for c in E.c if c.name != "action_fingerprint"),
    J.c.submission_id,
    J.c.competition_id,
    J.c.round_id,
    R.c.ends_at.label("round_ends_at"),
    R.c.revealed_at.label("round_revealed_at"),
]


async def _insert_new(
    conn: AsyncConnection, table: Any, keys: list[Any], values: dict[str, Any]
) -> bool:
    stmt = insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
    return (await conn.execute(stmt.returning(table.c.id))).scalar() is not None


async def add_status(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    return await _insert_new(conn, H, [H.c.job_id, H.c.validator_hotkey, H.c.seq], values)


async def add_result(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    return await _insert_new(conn, RES, [RES.c.job_id, RES.c.validator_hotkey], values)


_EPISODE_CONTENT = (
    "seed",
    "success",
    "total_reward",
    "steps",
    "failure_cause",
    "actions_ref",
    "action_fingerprint",
)


async def put_episode(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Insert an episode summary, or replace the stored one when its content differs (a
    re-run of the job before its result was accepted: the caller checks). False for an
    identical duplicate."""
    stmt = insert(E).values(**values)
    stored = tuple_(*(E.c[name] for name in _EPISODE_CONTENT))
    sent = tuple_(*(stmt.excluded[name] for name in _EPISODE_CONTENT))
    stmt = stmt.on_conflict_do_update(
        index_elements=[E.c.job_id, E.c.validator_hotkey, E.c.episode_index],
        set_={k: stmt.excluded[k] for k in values if k not in ("job_id", "validator_hotkey")},
        where=stored.is_distinct_from(sent),
    )
    return (await conn.execute(stmt.returning(E.c.id))).scalar() is not None


async def has_result(conn: AsyncConnection, job_id: str, hotkey: str) -> bool:
    stmt = select(RES.c.id).where(RES.c.job_id == job_id, RES.c.validator_hotkey == hotkey)
    return (await conn.execute(stmt)).scalar() is not None


async def episode_summaries(
    conn: AsyncConnection, job_id: str, hotkey: str
) -> list[dict[str, Any]]:
    """What a validator reported of each episode of a job, by index (cross-checks)."""
    stmt = (
        select(
            E.c.episode_index,
            E.c.task,
            E.c.success,
            E.c.total_reward,
            E.c.steps_to_success,
            E.c.failure_cause,
        )
        .where(E.c.job_id == job_id, E.c.validator_hotkey == hotkey)
        .order_by(E.c.episode_index)
    )
    return rows(await conn.execute(stmt))


_STEP_KEY = [ST.c.job_id, ST.c.validator_hotkey, ST.c.episode_index, ST.c.batch_index]
_STEP_COLUMNS = (
    "job_id",
    "validator_hotkey",
    "episode_index",
    "batch_index",
    "first_step",
    "n_samples",
)
_STEP_VALUES: dict[str, Any] = {name: bindparam(name) for name in _STEP_COLUMNS}
# the samples: the ``samples`` member of the validated frame, stored verbatim by
# PostgreSQL (the backend never serialises them again) …
_FROM_FRAME = (
    insert(ST)
    .values(**_STEP_VALUES, samples=cast(bindparam("frame", type_=Text), JSON)["samples"])
    .on_conflict_do_nothing(index_elements=_STEP_KEY)
    .returning(ST.c.job_id, ST.c.episode_index, ST.c.batch_index)
)
# … or, when the frame has escapes PostgreSQL's JSON functions refuse, serialised again
_SERIALISED = (
    insert(ST)
    .values(**_STEP_VALUES, samples=cast(bindparam("samples_json", type_=Text), JSON))
    .on_conflict_do_nothing(index_elements=_STEP_KEY)
    .returning(ST.c.job_id, ST.c.episode_index, ST.c.batch_index)
)


async def add_step_batches(
    conn: AsyncConnection, rows: list[dict[str, Any]]
) -> set[tuple[str, int, int]]:
    """Insert step batches (one multi-row statement per kind). Each row has either
    ``frame``, the validated JSON frame whose ``samples`` member is stored, or
    ``samples_json``. Returns the (job_id, episode_index, batch_index) of the new ones."""
    new: set[tuple[str, int, int]] = set()
    for stmt, kind in ((_FROM_FRAME, "frame"), (_SERIALISED, "samples_json")):
        params = [row for row in rows if kind in row]
        if params:
            result = await conn.execute(stmt, params)
            new.update((r[0], r[1], r[2]) for r in result)
    return new


# ------------------------------------------------------------------ reads


async def list_results(
    conn: AsyncConnection,
    *,
    job_id: str | None = None,
    submission_id: int | None = None,
    validator_hotkey: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    q = select(RES, J.c.submission_id, J.c.benchmark_id, J.c.competition_id).join(
        J, J.c.id == RES.c.job_id
    )
    if job_id is not None:
        q = q.where(RES.c.job_id == job_id)
    if submission_id is not None:
        q = q.where(J.c.submission_id == submission_id)
    if validator_hotkey is not None:
        q = q.where(RES.c.validator_hotkey == validator_hotkey)
    return await page(conn, q, limit=limit, offset=offset, order=[RES.c.id.desc()])


async def results_of_jobs(conn: AsyncConnection, job_ids: list[str]) -> list[dict[str, Any]]:
    if not job_ids:
        return []
    return rows(await conn.execute(select(RES).where(RES.c.job_id.in_(job_ids))))


async def list_episodes(
    conn: AsyncConnection,
    *,
    job_id: str | None = None,
    submission_id: int | None = None,
    validator_hotkey: str | None = None,
    task: str | None = None,
    success: bool | None = None,
    round_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    q = select(*EPISODE_VIEW).join(J, J.c.id == E.c.job_id).join(R, R.c.id == J.c.round_id)
    if round_id is not None:
        q = q.where(J.c.round_id == round_id)
    if job_id is not None:
        q = q.where(E.c.job_id == job_id)
    if submission_id is not None:
        q = q.where(J.c.submission_id == submission_id)
    if validator_hotkey is not None:
        q = q.where(E.c.validator_hotkey == validator_hotkey)
    if task is not None:
        q = q.where(E.c.task == task)
    if success is not None:
        q = q.where(E.c.success.is_(success))
    return await page(
        conn,
        q,
        limit=limit,
        offset=offset,
        order=[E.c.job_id, E.c.validator_hotkey, E.c.episode_index],
    )


async def get_episode(conn: AsyncConnection, episode_id: int) -> dict[str, Any] | None:
    q = select(*EPISODE_VIEW).join(J, J.c.id == E.c.job_id).join(R, R.c.id == J.c.round_id)
    row = (await conn.execute(q.where(E.c.id == episode_id))).mappings().first()
    return dict(row) if row else None


async def step_batches(
    conn: AsyncConnection,
    *,
    job_id: str,
    validator_hotkey: str,
    episode_index: int,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    q = select(ST).where(
        ST.c.job_id == job_id,
        ST.c.validator_hotkey == validator_hotkey,
        ST.c.episode_index == episode_index,
    )
    return await page(conn, q, limit=limit, offset=offset, order=[ST.c.batch_index])


async def counts(conn: AsyncConnection) -> dict[str, int]:
    episodes = await conn.scalar(select(func.count()).select_from(E))
    steps = await conn.scalar(select(func.coalesce(func.sum(ST.c.n_samples), 0)))
    results = await conn.scalar(select(func.count()).select_from(RES))
    return {
        "episodes": int(episodes or 0),
        "step_samples": int(steps or 0),
        "results": int(results or 0),
    }
