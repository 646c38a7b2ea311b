"""``/media/{key}``: episode media from the configured media store (``media_url``: a
directory, or the S3/R2 bucket the evaluators upload to, read by this backend), under the
embargo of :mod:`kinitro.backend.embargo` (403 ``sealed`` until the episode's round is
revealed). The public never reads the store itself: this route is the embargo."""

from __future__ import annotations

import asyncio
import mimetypes

from fastapi import APIRouter, Request, Response

from kinitro.backend.api.schemas import SEALED_RESPONSE, error_responses
from kinitro.backend.deps import ConnDep
from kinitro.backend.embargo import media_key
from kinitro.backend.errors import NotFoundError, UnavailableError
from kinitro.storage.media import MediaNotFound, MediaStore, MediaStoreError, MediaTooLarge

MEDIA_MAX_BYTES = 64 * 1024 * 1024
"""Largest object served (action logs are KiBs, frames less): the validators write the
store, so one of them must not make this backend read a giant object into memory."""


def media_router(store: MediaStore) -> APIRouter:
    router = APIRouter(tags=["media"])

    @router.get(
        "/media/{key:path}",
        response_class=Response,
        responses={**error_responses(404, 503), **SEALED_RESPONSE},
    )
    async def media(key: str, conn: ConnDep, request: Request) -> Response:
        """An action log or frame of an episode (links: ``actions_url``, ``media_urls``)."""
        key = await media_key(conn, key)
        try:
            data = await asyncio.to_thread(store.get, key, max_bytes=MEDIA_MAX_BYTES)
        except MediaNotFound:
            raise NotFoundError(f"no media {key!r}") from None
        except MediaTooLarge:
            raise NotFoundError(f"media {key!r} is over {MEDIA_MAX_BYTES} bytes") from None
        except MediaStoreError as exc:
            raise UnavailableError(f"the media store cannot be read: {exc}") from exc
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        # revealed media never change: caches may keep them; videos seek by range
        headers = {"Cache-Control": "public, max-age=3600", "Accept-Ranges": "bytes"}
        wanted = byte_range(request.headers.get("range"), len(data))
        if wanted is None:
            return Response(data, media_type=kind, headers=headers)
        if wanted == UNSATISFIABLE:
            headers["Content-Range"] = f"bytes */{len(data)}"
            return Response(status_code=416, headers=headers)
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Response(data[start : end + 1], 206, media_type=kind, headers=headers)

    return router


UNSATISFIABLE = (-1, -1)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one ``bytes=`` range of a Range header as (first, last) inclusive; None: the
    whole object (no header, or one this route does not serve: several ranges, other
    units); :data:`UNSATISFIABLE` when it lies past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].strip().partition("-")
    try:
        if not first:  # the last N bytes
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(int(last), size - 1) if last else size - 1
    except ValueError:
        return None
    if start < 0 or start >= size or end < start:
        return UNSATISFIABLE
    return start, end
