"""The embargo: nothing that derives from a round's secret is public before its reveal.

Until a round is revealed, a miner who submits anything could otherwise read the seeds
its validators were sent from what they report, rebuild the environment offline and
learn what the observation hides (docs/protocol.md, "Sealed rounds"). So, before the
reveal, the public sees of an episode only its aggregates (success, return, steps, steps
to success, failure cause, duration) and:

* no ``seed`` (nor anything to derive it: the round ``secret``),
* no ``failure_detail`` (free text, often the agent's own output, which can quote what
  it observed),
* no step samples (``/api/v1/episodes/{id}/steps``: states, actions, rewards) and no
  media (``/media/episodes/<job>/…``: action logs, whose header names the seed, and
  frames): those answer ``403 {"code": "sealed", "sealed_until": …}``.

The links stay what they will be (``actions_url``, ``media_urls``): after the reveal the
same URLs answer. Realtime events never carry any of it (see
:mod:`kinitro.protocol.realtime`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kinitro.backend.db import repo_rounds
from kinitro.backend.errors import NotFoundError, SealedError
from kinitro.storage.media import InvalidMediaKey, check_key

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

SEALED_EPISODE_FIELDS = ("seed", "failure_detail")
MEDIA_PREFIX = "episodes"


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


def episode_view(row: dict[str, Any], media_base: str | None = None) -> dict[str, Any]:
    """An episode as the public sees it (a row of ``repo_ingest.EPISODE_VIEW``); with
    ``media_base``, also the links to its action log and media."""
    until = sealed_until(row)
    out = {k: v for k, v in row.items() if k not in ("round_ends_at", "round_revealed_at")}
    if until is not None:
        out.update(dict.fromkeys(SEALED_EPISODE_FIELDS))
    out["sealed_until"] = until
    if media_base is not None:
        base = media_base.rstrip("/")
        out["actions_url"] = f"{base}/{row['actions_ref']}" if row["actions_ref"] else None
        out["media_urls"] = [f"{base}/{key}" for key in row["media_refs"]]
    return out


def require_open(episode: dict[str, Any], what: str) -> None:
    """Raise :class:`SealedError` while the episode's round is not revealed."""
    until = sealed_until(episode)
    if until is not None:
        raise SealedError(what, until)


async def media_file(conn: AsyncConnection, media_dir: Path, key: str) -> Path:
    """The file of a media key the public may read now: episode media
    (``episodes/<job_id>/…``) of a revealed round. Anything else is not found, or sealed."""
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
    path = media_dir / key
    if not path.is_file():
        raise NotFoundError(f"no media {key!r}")
    return path
