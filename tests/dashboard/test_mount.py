"""``mount_dashboard`` on a bare FastAPI app (no browser, no database)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from kinitro.backend.web import PAGE_ROUTES, STATIC_DIR, mount_dashboard

WEB = Path(__file__).resolve().parents[2] / "src" / "kinitro" / "backend" / "web"


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_server_routes_match_the_client_router() -> None:
    source = (WEB / "src" / "main.tsx").read_text()
    client = {re.sub(r":\w+", "{}", p) for p in re.findall(r'pattern: "([^"]+)"', source)}
    server = {re.sub(r"\{\w+\}", "{}", p) for p in PAGE_ROUTES}
    assert client == server


async def test_pages_assets_and_untouched_api() -> None:
    app = FastAPI()

    @app.get("/api/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    mount_dashboard(app)
    async with _client(app) as http:
        for path in ("/", "/competitions/mt10", "/episodes/42", "/validators"):
            resp = await http.get(path)
            assert resp.status_code == 200, path
            assert resp.headers["cache-control"] == "no-cache"
            assert '<div id="app">' in resp.text
        # every asset the page references is there (and cached for good)
        page = (STATIC_DIR / "index.html").read_text()
        referenced = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page)
        assert any(a.endswith(".js") for a in referenced) and any(
            a.endswith(".css") for a in referenced
        )
        for asset in referenced:
            resp = await http.get(asset)
            assert resp.status_code == 200, asset
            assert "immutable" in resp.headers["cache-control"]
        assert (await http.get("/assets/nope.js")).status_code == 404
        assert (await http.get("/api/v1/ping")).json() == {"pong": "yes"}
        api = await http.get("/api/v1/nope")
        assert api.status_code == 404 and api.headers["content-type"] == "application/json"
        for path in ("/media/x", "/ws/nope", "/healthz/no"):
            server = await http.get(path)
            assert server.status_code == 404, path
        # an unknown page: the app's own "Page not found", with a 404 status
        page = await http.get("/no/such/page")
        assert page.status_code == 404 and '<div id="app">' in page.text
        assert page.headers["content-type"].startswith("text/html")
        assert (await http.get("/media/x")).headers["content-type"] == "application/json"


async def test_missing_build_is_explained(tmp_path: Path) -> None:
    app = FastAPI()
    mount_dashboard(app, static_dir=tmp_path)
    async with _client(app) as http:
        resp = await http.get("/")
        assert resp.status_code == 503 and "scripts/build-web" in resp.text
