"""``/media/{key}``: episode media from ``media_dir``, under the embargo of
:mod:`kinitro.backend.embargo` (403 ``sealed`` until the episode's round is revealed)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from kinitro.backend.api.schemas import SEALED_RESPONSE, error_responses
from kinitro.backend.deps import ConnDep
from kinitro.backend.embargo import media_file


def media_router(media_dir: Path) -> APIRouter:
    router = APIRouter(tags=["media"])

    @router.get(
        "/media/{key:path}",
        response_class=FileResponse,
        responses={**error_responses(404), **SEALED_RESPONSE},
    )
    async def media(key: str, conn: ConnDep) -> FileResponse:
        """An action log or frame of an episode (links: ``actions_url``, ``media_urls``)."""
        return FileResponse(await media_file(conn, media_dir, key))

    return router
