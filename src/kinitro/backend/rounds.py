"""Sealed rounds in the backend: open, commit on chain, send per-validator seeds, reveal.

The derivation and the commitment codec are :mod:`kinitro.protocol.rounds`; this module
applies them (``docs/protocol.md``, "Sealed rounds"):

* A competition's round opens with the first job that needs one and lasts the
  competition's ``round_seconds`` (default: the backend's ``round_duration_s``); rounds
  follow each other, never overlap, and are named ``<competition>-<unix start>``, so a
  round id, and thus its secret, never comes back.
* :func:`commit_pending` writes each new round's ``kr1`` commitment on chain with the
  backend's round hotkey. The scheduler sends no job of a round before that commitment
  is in a block (:func:`kinitro.backend.db.repo_scheduling.jobs_short_of_validators`). A backend
  without a round hotkey (allowed on a devnet only) records the commitment but sends
  jobs uncommitted: ``kinitro round verify`` then fails such rounds.
* A validator is sent ``validator_seed(round_secret, its hotkey)`` (:func:`job_seed`): the
  same for every miner it evaluates in the round, different for every other validator,
  and never the round secret.
* :func:`reveal_ended` publishes each ended round's secret (once it is committed: on the
  first scheduler tick after the round's end, or after the late commitment); until then
  everything that derives from it is sealed (:mod:`.embargo`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kinitro.backend.db import repo_rounds
from kinitro.backend.db.common import utcnow
from kinitro.chain.errors import ChainError
from kinitro.protocol import rounds as protocol_rounds

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)


def secret_of(settings: Settings, round_id: str) -> bytes:
    return protocol_rounds.round_secret(settings.seed_secret.get_secret_value().encode(), round_id)


def job_seed(settings: Settings, round_id: str, validator_hotkey: str) -> int:
    """The ``EvalJob.seed`` of every job of ``round_id`` sent to ``validator_hotkey``."""
    return protocol_rounds.validator_seed(secret_of(settings, round_id), validator_hotkey)


def round_seconds(competition: dict[str, Any], settings: Settings) -> int:
    return int(competition.get("round_seconds") or settings.round_duration_s)


async def current_round(
    conn: AsyncConnection, settings: Settings, competition: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The competition's open round, opened now if it has none."""
    found = await repo_rounds.open_round(conn, competition["id"], now)
    if found is not None:
        return found
    previous_end = await repo_rounds.latest_end(conn, competition["id"])
    starts = now.replace(microsecond=0)
    if previous_end is not None and previous_end > starts:
        starts = previous_end  # rounds never overlap (a replica whose clock runs ahead)
    round_id = protocol_rounds.check_round_id(f"{competition['id']}-{int(starts.timestamp())}")
    return await repo_rounds.add_round(
        conn,
        dict(
            id=round_id,
            competition_id=competition["id"],
            starts_at=starts,
            ends_at=starts + timedelta(seconds=round_seconds(competition, settings)),
            commitment=protocol_rounds.encode_round_commitment(
                round_id, secret_of(settings, round_id)
            ),
        ),
    )


async def commit_pending(state: BackendState) -> int:
    """Write the commitment of rounds not on chain yet; returns how many were written.

    One per block: a hotkey holds one commitment per block, and each must stay readable
    "as of its block" for ``round verify``. A commitment found on chain already (a crash
    between writing it and recording it) is recorded, not written again.
    """
    key = state.round_key
    if key is None:
        return 0
    async with state.engine.connect() as conn:
        pending = await repo_rounds.to_commit(conn)
    if not pending:
        return 0
    rnd = pending[0]
    text = rnd["commitment"] or protocol_rounds.encode_round_commitment(
        rnd["id"], secret_of(state.settings, rnd["id"])
    )
    try:
        latest = await state.chain.commitment(key.ss58_address)
        if latest is not None and latest.data == text:
            record = latest
        elif latest is not None and latest.block >= await state.chain.block():
            return 0  # this block holds a commitment already: the next tick writes it
        else:
            record = await state.chain.commit(key, text)
    except ChainError as exc:
        state.metrics.task_errors.labels("round_commit").inc()
        log.warning("round %s: commitment not written yet (%s); retrying", rnd["id"], exc)
        return 0
    async with state.engine.begin() as conn:
        await repo_rounds.set_committed(
            conn,
            rnd["id"],
            commitment=text,
            hotkey=key.ss58_address,
            block=record.block,
            at=utcnow(),
        )
    log.info("round %s committed on chain at block %d", rnd["id"], record.block)
    return 1


async def reveal_ended(
    conn: AsyncConnection, settings: Settings, now: datetime, *, committed_only: bool
) -> list[str]:
    """Publish the secret of every round that ended; returns their ids. With
    ``committed_only`` (a backend with a round hotkey) a round whose commitment is not on
    chain yet (the hotkey's commitment space ran out, the chain was down) stays sealed
    until it is: revealed uncommitted, it could never be committed, its jobs never sent
    and ``round verify`` would fail it. Its jobs go out once it is committed, late."""
    ended = await repo_rounds.to_reveal(conn, now, committed_only=committed_only)
    for round_id in ended:
        await repo_rounds.set_revealed(conn, round_id, secret_of(settings, round_id).hex(), now)
    return ended
