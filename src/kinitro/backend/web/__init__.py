"""The web dashboard, served by the backend at ``/``.

The dashboard is a single-page app (Preact + uPlot, built with Vite) whose sources live
beside this module (``src/``, ``index.html``, ``vite.config.ts``); ``scripts/build-web``
builds them into ``static/``, which is committed so that a fresh clone serves the dashboard
without Node. The app talks only to this backend: REST under ``/api/v1`` and the public
realtime WebSocket ``/ws/realtime``; it loads nothing from any other host.

:func:`mount_dashboard` adds to a FastAPI app:

* ``/assets/…`` — the hashed build assets, cached as immutable;
* ``/`` and every client-side route of the app (:data:`PAGE_ROUTES`) — ``index.html``
  (never cached), so deep links and reloads work;
* any other path — ``index.html`` with status 404, where the app shows its "Page not
  found" page (not a raw JSON error). Paths of the server's own (``/api``, ``/ws``,
  ``/media`` … :data:`SERVER_PREFIXES`) are left alone: an unknown API path still gets
  the API's JSON 404.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["PAGE_ROUTES", "STATIC_DIR", "DashboardAssets", "mount_dashboard"]

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Where ``scripts/build-web`` writes the built dashboard."""

PAGE_ROUTES = (
    "/",
    "/competitions/{competition_id}",
    "/jobs",
    "/jobs/{job_id}",
    "/submissions",
    "/submissions/{submission_id}",
    "/episodes/{episode_id}",
    "/validators",
)
"""Client-side routes of the dashboard (kept in sync with ``src/main.tsx``)."""

SERVER_PREFIXES = (
    "api",
    "ws",
    "media",
    "assets",
    "docs",
    "redoc",
    "openapi.json",
    "health",
    "metrics",
)
"""First path segments that belong to the server: their unknown paths get a JSON 404."""

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kinitro dashboard</title></head>
<body><main><h1>Dashboard not built</h1>
<p>The dashboard assets are missing. Run <code>scripts/build-web</code> and reload.
The REST API is available at <a href="/docs">/docs</a>.</p></main></body></html>
"""


class DashboardAssets(StaticFiles):
    """Static files with long-lived caching: every asset name carries a content hash."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def mount_dashboard(app: FastAPI, static_dir: Path | None = None) -> None:
    """Serve the dashboard from ``static_dir`` (default :data:`STATIC_DIR`) on ``app``."""
    root = static_dir or STATIC_DIR
    index_file = root / "index.html"
    if index_file.is_file():
        index_html = index_file.read_text(encoding="utf-8")
        status = 200
    else:
        log.warning("dashboard assets missing in %s: run scripts/build-web", root)
        index_html, status = _NOT_BUILT, 503

    assets = root / "assets"
    if assets.is_dir():
        app.mount("/assets", DashboardAssets(directory=assets), name="dashboard-assets")

    async def dashboard_page() -> HTMLResponse:
        return HTMLResponse(
            index_html,
            status_code=status,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    for path in PAGE_ROUTES:
        app.add_api_route(
            path,
            dashboard_page,
            methods=["GET"],
            include_in_schema=False,
            response_class=HTMLResponse,
            name=f"dashboard:{path}",
        )

    async def not_found_page(rest: str) -> HTMLResponse:
        if rest.split("/", 1)[0] in SERVER_PREFIXES:
            raise HTTPException(status_code=404)
        return HTMLResponse(
            index_html,
            status_code=404 if status == 200 else status,
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    # last: every route above, and the server's own, match first
    app.add_api_route(
        "/{rest:path}",
        not_found_page,
        methods=["GET"],
        include_in_schema=False,
        response_class=HTMLResponse,
        name="dashboard:not-found",
    )
