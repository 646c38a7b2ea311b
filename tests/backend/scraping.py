"""What a miner can read without a key: every public GET route of the backend with every
id it can learn, and the realtime feed (used by the sealed-round attack tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import websockets

from kinitro.protocol.realtime import Subscribe, dump_message

from .conftest import Backend


def leaks(
    bodies: list[tuple[str, str]], frames: list[str], needles: Collection[str]
) -> list[tuple[str, str]]:
    """``(where, needle)`` for every needle found in a scraped body or realtime frame."""
    return [
        (where, needle)
        for where, body in [*bodies, *(("realtime", f) for f in frames)]
        for needle in needles
        if needle in body
    ]


def public_urls(backend: Backend, values: dict[str, list[Any]]) -> list[str]:
    """Every public GET route of the OpenAPI schema (no admin, no /media; FastAPI keeps
    included routers out of ``app.routes``), each path parameter filled with every value
    of ``values`` under its name; parameterless routes also filtered by job, round and
    validator where they take those."""
    urls: list[str] = []
    for path, methods in backend.app.openapi()["paths"].items():
        if "get" not in methods or "/admin" in path or path.startswith("/media"):
            continue
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if not params:
            urls.append(path)
            accepted = {q["name"] for q in methods["get"].get("parameters", [])}
            for name in sorted(accepted & {"job_id", "round_id", "validator_hotkey"}):
                urls += [f"{path}?{name}={v}" for v in values.get(name, [])]
            continue
        assert all(p in values for p in params), f"scrape does not know {path}"
        for value in values[params[0]]:
            urls.append(path.replace("{" + params[0] + "}", str(value)))
    assert any(u.startswith("/api/v1/jobs/") for u in urls), "the API is not in the scrape"
    return urls


async def known_ids(backend: Backend, **known: list[Any]) -> dict[str, list[Any]]:
    """The ids the public lists give away (submissions, episodes, validators), with
    ``known`` ones added (job ids, round ids)."""
    async with backend.client(None) as http:
        subs = (await http.get("/api/v1/submissions")).json()["items"]
        episodes = (await http.get("/api/v1/episodes", params={"limit": 500})).json()["items"]
    hotkeys = sorted({e["validator_hotkey"] for e in episodes} | set(known.pop("hotkey", [])))
    return {
        "competition_id": ["mt1"],
        "submission_id": [s["id"] for s in subs],
        "episode_id": [e["id"] for e in episodes],
        "hotkey": hotkeys,
        "validator_hotkey": hotkeys,
        **known,
    }


class Feed:
    """A realtime subscriber keeping every frame it receives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: list[str] = []

    @classmethod
    async def open(cls, backend: Backend) -> Feed:
        ws = await websockets.connect(f"{backend.ws_url}/ws/realtime", max_size=None)
        await ws.send(dump_message(Subscribe()))
        feed = cls(ws)
        feed.frames.append(str(await asyncio.wait_for(ws.recv(), 10)))  # the snapshot
        return feed

    async def drain(self, quiet_s: float = 1.0) -> list[str]:
        """Read until the feed is quiet for ``quiet_s``; returns every frame so far."""
        while True:
            try:
                self.frames.append(str(await asyncio.wait_for(self.ws.recv(), quiet_s)))
            except TimeoutError:
                return self.frames

    async def close(self) -> None:
        await self.ws.close()
