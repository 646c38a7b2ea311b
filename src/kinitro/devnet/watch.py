"""``kinitro watch``: a live terminal view of the backend's public realtime feed.

It subscribes to ``/ws/realtime`` (optionally filtered), starts the view from the
snapshot, then applies every event to it (``watch_view``: live jobs with progress, recent
episodes, leaderboards, weights, validators and the newest events, fitted to the
terminal's height and width). It
reconnects with backoff when the backend goes away. ``--json`` prints one event per line
instead (for scripts); ``--max-events`` / ``--duration`` make it stop by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field

import websockets
from rich.console import Console
from rich.live import Live

from kinitro.devnet.watch_view import View, sealed_note
from kinitro.protocol import realtime as rt

__all__ = ["View", "WatchOptions", "realtime_url", "sealed_note", "watch"]


@dataclass
class WatchOptions:
    url: str
    event_types: list[str] = field(default_factory=list)
    competition_id: str | None = None
    miner_hotkey: str | None = None
    job_id: str | None = None
    validator_hotkey: str | None = None
    json_lines: bool = False
    max_events: int | None = None
    duration_s: float | None = None


def realtime_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return base if base.endswith("/ws/realtime") else base + "/ws/realtime"


async def watch(opts: WatchOptions, console: Console) -> int:
    view = View()
    subscribe = rt.Subscribe(
        id=uuid.uuid4().hex,
        event_types=[rt.EventType(t) for t in opts.event_types],
        filters=rt.EventFilter(
            competition_id=opts.competition_id,
            miner_hotkey=opts.miner_hotkey,
            job_id=opts.job_id,
            validator_hotkey=opts.validator_hotkey,
        ),
    )
    deadline = time.monotonic() + opts.duration_s if opts.duration_s else None
    delay = 0.5
    url = realtime_url(opts.url)
    live = (
        None
        if opts.json_lines
        else Live(
            console=console,
            refresh_per_second=4,
            # re-fitted at every refresh: a resized terminal gets a screen of its size
            get_renderable=lambda: view.screen(console, console.size.height - 1),
        )
    )
    with live if live is not None else contextlib.nullcontext():
        while True:
            try:
                async with websockets.connect(url, open_timeout=10, max_size=8 * 2**20) as ws:
                    delay = 0.5
                    view.status = f"connected to {url}"
                    await ws.send(rt.dump_message(subscribe))
                    while True:
                        timeout = (
                            None if deadline is None else max(0.0, deadline - time.monotonic())
                        )
                        raw = await asyncio.wait_for(ws.recv(), timeout)
                        done = _handle(raw, view, opts, console)
                        if live is not None:
                            live.refresh()
                        if done:
                            return 0
            except TimeoutError:
                return 0
            except (OSError, websockets.WebSocketException) as exc:
                view.status = f"disconnected ({type(exc).__name__}); retrying in {delay:.0f}s"
                if live is not None:
                    live.refresh()
                elif opts.json_lines:
                    console.print(f"[yellow]{view.status}", highlight=False)
                if deadline is not None and time.monotonic() + delay > deadline:
                    return 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def _handle(raw: str | bytes, view: View, opts: WatchOptions, console: Console) -> bool:
    try:
        message = rt.parse_server_message(raw)
    except Exception as exc:  # noqa: BLE001 - a bad frame is reported, never fatal
        view.log.append(f"bad frame from server: {exc}")
        return False
    match message:
        case rt.Snapshot():
            view.apply_snapshot(message.data)
            if opts.json_lines:
                print(rt.dump_message(message), flush=True)
        case rt.Events():
            for event in message.events:
                view.apply(event)
                if opts.json_lines:
                    print(rt.dump_event(event), flush=True)
                if opts.max_events is not None and view.events >= opts.max_events:
                    return True
        case rt.ErrorMessage():
            view.log.append(f"server error: {message.code} {message.message}")
        case _:
            pass
    return False
