"""End-to-end browser tests of the dashboard: playwright-core (node) driving Debian's
Chromium against a real backend process seeded through the platform's real paths.

Screenshots land in ``artifacts/screenshots/`` (gitignored)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from kinitro.protocol.common import JobState

from .conftest import SCREENSHOTS, WEB_DIR
from .stack import STRONG, TASKS, Stack, wait_for

BROWSER_DIR = Path(__file__).parent / "browser"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def run_scenario(
    name: str, stack: Stack, handlers: dict[str, Handler] | None = None, within: float = 90
) -> dict[str, Any]:
    """Run ``browser/<name>.mjs``; answer its ``need`` requests with ``handlers``."""
    config = {
        "baseUrl": stack.url,
        "webDir": str(WEB_DIR),
        "screenshots": str(SCREENSHOTS),
        "ids": stack.ids,
        "timeoutMs": 15_000,
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(BROWSER_DIR / f"{name}.mjs"),
        json.dumps(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    outcome: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(within):
            while line := await proc.stdout.readline():
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue  # stray output
                if msg.get("event") == "need":
                    handler = (handlers or {})[msg["what"]]
                    answer = await handler(msg)
                    proc.stdin.write((json.dumps(answer) + "\n").encode())
                    await proc.stdin.drain()
                elif msg.get("event") in ("done", "error"):
                    outcome = msg
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    stderr = (await proc.stderr.read()).decode(errors="replace")
    if outcome is None or outcome["event"] != "done" or proc.returncode != 0:
        detail = json.dumps(outcome, indent=2) if outcome else "(no result)"
        raise AssertionError(
            f"browser scenario {name!r} failed (exit {proc.returncode}):\n{detail}\n"
            f"stderr:\n{stderr[-3000:]}\nbackend log:\n{stack.backend.log()[-3000:]}"
        )
    shots = outcome["screenshots"]
    sizes = await asyncio.to_thread(lambda: [Path(p).stat().st_size for p in shots])
    assert all(size > 5_000 for size in sizes), f"empty screenshot among {shots}"
    return outcome


async def check_served(stack: Stack) -> None:
    """The backend serves the app (deep links too), cached assets, and nothing external;
    API paths keep their own 404."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
        for path in ("/", "/jobs", f"/submissions/{stack.ids['submission_leader']}", "/validators"):
            resp = await http.get(path)
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
            assert '<div id="app">' in resp.text
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", resp.text)  # all local
        asset = resp.text.split('src="', 1)[1].split('"', 1)[0]
        resp = await http.get(asset)
        assert resp.status_code == 200 and "immutable" in resp.headers["cache-control"]
        # API paths keep their own behaviour: an unknown route is the API's 404, not the app
        resp = await http.get("/api/v1/no-such-thing")
        assert resp.status_code == 404 and resp.headers["content-type"] == "application/json"


async def test_pages_render_and_links_navigate(stack: Stack) -> None:
    await check_served(stack)
    outcome = await run_scenario("navigate", stack)
    print("first view timings (ms):", outcome["timings"])
    # 1 s is the target on an idle machine; a CI host running the devnet tests beside
    # this one took 1,095 ms (the snapshot 856 ms after the socket opened)
    assert 0 < outcome["firstViewMs"] < 3000


async def test_new_events_appear_live(stack: Stack) -> None:
    va, vb = stack.validators
    job_id = stack.ids["job_live"]
    total = len(TASKS) * 2

    async def new_submission(_: dict[str, Any]) -> dict[str, Any]:
        miner = await stack.commit("dave", b"dave-bundle-v1")
        return {"miner": miner.ss58_address}

    async def progress(msg: dict[str, Any]) -> dict[str, Any]:
        await va.status(job_id, JobState.RUNNING, int(msg["done"]), total)
        return {}

    async def finish_live_job(_: dict[str, Any]) -> dict[str, Any]:
        job = stack.jobs[job_id]
        await stack.evaluate(va, job, STRONG, media=False)
        await stack.evaluate(vb, job, STRONG, media=False)

        async def on_board() -> bool:
            board = await stack.get("/api/v1/competitions/mt3/leaderboard")
            return len(board["rows"]) == 3

        await wait_for(on_board, within=20, what="carol on the leaderboard")
        return {}

    async def validator_connect(_: dict[str, Any]) -> dict[str, Any]:
        v = await stack.add_validator()
        return {"hotkey": v.hotkey}

    async def backend_down(_: dict[str, Any]) -> dict[str, Any]:
        await asyncio.to_thread(stack.backend.stop)
        return {}

    async def backend_up(_: dict[str, Any]) -> dict[str, Any]:
        await asyncio.to_thread(stack.backend.start)
        return {}

    await run_scenario(
        "live",
        stack,
        {
            "new_submission": new_submission,
            "progress": progress,
            "finish_live_job": finish_live_job,
            "validator_connect": validator_connect,
            "backend_down": backend_down,
            "backend_up": backend_up,
        },
    )
