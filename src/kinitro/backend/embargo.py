"""The embargo: nothing that derives from a round's secret is public before its reveal.

Until a round is revealed, a miner who submits anything could otherwise read the seeds
its validators were sent from what they report, rebuild the environment offline and
learn what the observation hides (docs/protocol.md, "Sealed rounds"). So, before the
reveal, the public sees of an episode only its aggregates (success, return, steps, steps
to success, failure cause, duration) and:

* no ``seed`` (nor anything to derive it: the round ``secret``),
* no free text a hostile agent can write into: an episode's ``failure_detail``, a job
  status's ``detail`` and a result's ``error`` (an exception message, the tail of the
  agent's stderr, which can quote what it observed) read as the cause only, e.g.
  ``agent_crash (details sealed until 2026-12-06T12:00:00Z)``,
* no step samples (``/api/v1/episodes/{id}/steps``: states, actions, rewards) and no
  media (``/media/episodes/<job>/…``: action logs, whose header names the seed, and
  frames): those answer ``403 {"code": "sealed", "sealed_until": …}``.

The links stay what they will be (``actions_url``, ``media_urls``): after the reveal the
same URLs answer, and the free text opens whole. Realtime events never carry a seed, a
step sample or a media byte (see :mod:`kinitro.protocol.realtime`); the one free-text
field they have, ``job_status.detail``, is sealed the same way when it is emitted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kinitro.backend.db import repo_rounds
from kinitro.backend.errors import NotFoundError, SealedError
from kinitro.storage.media import InvalidMediaKey, check_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

SEALED_EPISODE_FIELDS = ("seed",)
MEDIA_PREFIX = "episodes"
MEDIA_ROUTE = "/media"


def round_view(row: dict[str, Any]) -> dict[str, Any]:
    """A round as the public sees it: the commitment from the start, the secret after."""
    revealed = row["revealed_at"] is not None
    return {
        "id": row["id"],
        "competition_id": row["competition_id"],
        "starts_at": row["starts_at"],
        "ends_at": row["ends_at"],
        "commitment": row["commitment"],
        "committer_hotkey": row["committer_hotkey"],
        "commit_block": row["commit_block"],
        "committed_at": row["committed_at"],
        "sealed_until": None if revealed else row["ends_at"],
        "revealed_at": row["revealed_at"],
        "secret": row["secret"] if revealed else None,
    }


def sealed_until(episode: dict[str, Any]) -> datetime | None:
    """When the episode's round opens (None: revealed) from an episode view row."""
    return None if episode["round_revealed_at"] is not None else episode["round_ends_at"]


def sealed_text(text: str | None, cause: str | None, until: datetime | None) -> str | None:
    """Free text that may quote the agent, as the public reads it: whole once revealed
    (``until`` None), before that only its ``cause`` and until when the rest is sealed."""
    if text is None or until is None or text == cause:
        return text
    note = f"details sealed until {until.astimezone(UTC).isoformat().replace('+00:00', 'Z')}"
    return f"{cause} ({note})" if cause else f"({note})"


def episode_view(row: dict[str, Any]) -> dict[str, Any]:
    """An episode as the public sees it (a row of ``repo_ingest.EPISODE_VIEW``), with the
    links of its action log and media (this backend's ``/media`` route, the embargo)."""
    until = sealed_until(row)
    out = {k: v for k, v in row.items() if k not in ("round_ends_at", "round_revealed_at")}
    if until is not None:
        out.update(dict.fromkeys(SEALED_EPISODE_FIELDS))
    out["failure_detail"] = sealed_text(row["failure_detail"], row["failure_cause"], until)
    out["sealed_until"] = until
    out["actions_url"] = f"{MEDIA_ROUTE}/{row['actions_ref']}" if row["actions_ref"] else None
    out["media_urls"] = [f"{MEDIA_ROUTE}/{key}" for key in row["media_refs"]]
    return out


def result_view(row: dict[str, Any], until: datetime | None) -> dict[str, Any]:
    """A validator's result of a job sealed until ``until``: its ``error`` reads as its
    ``failure_cause`` only until then."""
    error = sealed_text(row["error"], row["failure_cause"], until)
    return {**row, "error": error, "sealed_until": until}


def status_view(row: dict[str, Any], until: datetime | None) -> dict[str, Any]:
    """A job status change of a job sealed until ``until`` (its ``detail`` is the job's
    error, as free as a result's)."""
    return {**row, "detail": sealed_text(row["detail"], None, until)}


async def results_view(conn: AsyncConnection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`result_view` of result rows of any jobs."""
    seals = await repo_rounds.seals_of_jobs(conn, (r["job_id"] for r in found))
    return [result_view(r, seals.get(r["job_id"])) for r in found]


async def statuses_view(conn: AsyncConnection, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`status_view` of status rows of any jobs."""
    seals = await repo_rounds.seals_of_jobs(conn, (r["job_id"] for r in found))
    return [status_view(r, seals.get(r["job_id"])) for r in found]


def require_open(episode: dict[str, Any], what: str) -> None:
    """Raise :class:`SealedError` while the episode's round is not revealed."""
    until = sealed_until(episode)
    if until is not None:
        raise SealedError(what, until)


async def media_key(conn: AsyncConnection, key: str) -> str:
    """``key`` if the public may read it now: episode media (``episodes/<job_id>/…``) of a
    revealed round. Anything else is not found, or sealed."""
    try:
        check_key(key)
    except InvalidMediaKey:
        raise NotFoundError(f"no media {key!r}") from None
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != MEDIA_PREFIX:
        raise NotFoundError(f"no media {key!r}")
    exists, until = await repo_rounds.seal_of_job(conn, parts[1])
    if not exists:
        raise NotFoundError(f"no media {key!r}")
    if until is not None:
        raise SealedError(f"media of job {parts[1]}", until)
    return key
