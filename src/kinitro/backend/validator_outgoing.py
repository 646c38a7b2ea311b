"""What the backend sends a validator, and what the validator's acks settle.

Two durable sources feed a validator's socket: its job assignments (``eval_job``, one
per unacknowledged assignment) and its outbox (``set_weights`` and ``cancel_job``,
:mod:`.cancellation`, :mod:`.score_engine`). :func:`pending` reads both and builds the
frames; the socket (:mod:`.validator_ws`) sends each once per session and marks the
assignments sent. An ``ack`` names the message it settles (:func:`acknowledge`); nothing
is forgotten before it, so a reconnecting validator receives it all again (replay).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from kinitro.backend import rounds
from kinitro.backend.db import repo_jobs, repo_scoring
from kinitro.backend.db.common import artifact_ref
from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.validator_ws import Ack, CancelJob, EvalJob, SetWeights

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.settings import Settings

log = logging.getLogger(__name__)

Outgoing = EvalJob | SetWeights | CancelJob
"""Messages the backend sends a validator (each kept until the validator acks it)."""


@dataclass(frozen=True, slots=True)
class Pending:
    """One message waiting for a validator's ack."""

    key: str
    """Unique among a validator's pending messages (sent once per session)."""
    message: Outgoing
    assignment: str | None = None
    """The assignment's message id, for an ``eval_job`` (marked sent once sent)."""


def eval_job(row: dict[str, Any], seed: int) -> EvalJob:
    """The eval_job frame of a pending assignment; ``seed``: the validator's round seed."""
    return EvalJob(
        id=row["message_id"],
        job_id=row["job_id"],
        submission_id=str(row["submission_id"]),
        competition_id=row["competition_id"],
        miner_hotkey=row["miner_hotkey"],
        miner_uid=row["miner_uid"],
        artifact=artifact_ref(row),
        benchmark=BenchmarkSpec.model_validate(row["benchmark"]),
        round_id=row["round_id"],
        seed=seed,
        deadline_s=row["deadline_s"],
        attempt=row["attempt"],
        created_at=row["created_at"],
    )


def outbox_message(row: dict[str, Any]) -> SetWeights | CancelJob | None:
    """The frame of an outbox row (None: a type this backend no longer sends)."""
    if row["type"] == "set_weights":
        return SetWeights.model_validate(row["payload"])
    if row["type"] == "cancel_job":
        return CancelJob.model_validate(row["payload"])
    return None


async def pending(conn: AsyncConnection, settings: Settings, hotkey: str) -> list[Pending]:
    """Every message waiting for ``hotkey``'s ack: its assignments, then its outbox."""
    out: list[Pending] = []
    for row in await repo_jobs.pending_for_validator(conn, hotkey):
        try:
            seed = rounds.job_seed(  # an agent re-run audit: the audited one's seed
                settings, row["round_id"], row["audit_of_validator"] or hotkey
            )
            job = eval_job(row, seed)
        except ValidationError as exc:  # cannot happen for verified submissions
            log.error("job %s cannot be expressed as eval_job: %s", row["job_id"], exc)
            continue
        out.append(Pending(row["message_id"], job, assignment=row["message_id"]))
    for row in await repo_scoring.pending_messages(conn, hotkey):
        message = outbox_message(row)
        if message is not None:
            out.append(Pending(f"outbox:{row['message_id']}", message))
    return out


async def mark_sent(conn: AsyncConnection, assignments: list[str]) -> None:
    """These assignments' ``eval_job`` went out (their lease starts counting)."""
    await repo_jobs.mark_sent(conn, assignments)


async def replay_weights(conn: AsyncConnection, hotkey: str) -> None:
    """Queue the latest weights for a validator that (re)connects, whatever it had."""
    latest = await repo_scoring.latest_weights(conn)
    if latest is not None:
        await repo_scoring.enqueue(
            conn,
            hotkey=hotkey,
            message_id=latest["weights_id"],
            type_="set_weights",
            payload=set_weights_payload(latest),
            reset=True,
        )


def set_weights_payload(weights: dict[str, Any]) -> dict[str, Any]:
    """The ``set_weights`` message (as JSON data) of a stored weight set."""
    return SetWeights(
        id=weights["weights_id"],
        weights_id=weights["weights_id"],
        netuid=weights["netuid"],
        weights={int(k): float(v) for k, v in weights["weights"].items()},
        computed_at=weights["computed_at"],
        competition_summary=weights["summary"] or None,
    ).model_dump(mode="json")


async def acknowledge(conn: AsyncConnection, hotkey: str, ack: Ack, lease_s: float) -> bool:
    """Settle what ``ack`` answers: an assignment (taken, or refused — the scheduler then
    places the job elsewhere) or an outbox message. False when it names nothing known."""
    if ack.ok:
        job_id = await repo_jobs.ack_assignment(conn, ack.ack_id, hotkey, lease_s)
    else:
        job_id = await repo_jobs.refuse_assignment(conn, ack.ack_id, hotkey)
    return job_id is not None or await repo_scoring.ack_message(conn, hotkey, ack.ack_id)
