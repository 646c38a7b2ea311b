"""``kinitro watch``: a live terminal view of the backend's public realtime feed.

It subscribes to ``/ws/realtime`` (optionally filtered), renders the snapshot, then
applies every event to a small in-memory view: live jobs with progress, recent episodes,
the leaderboard, the latest weights, connected validators and a scrolling event log. It
reconnects with backoff when the backend goes away. ``--json`` prints one event per line
instead (for scripts); ``--max-events`` / ``--duration`` make it stop by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from kinitro.protocol import realtime as rt


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


@dataclass
class View:
    """What the screen shows, folded from the snapshot and the events."""

    jobs: OrderedDict[tuple[str, str], dict[str, Any]] = field(default_factory=OrderedDict)
    episodes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    leaderboard: dict[str, list[rt.LeaderboardEntry]] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)
    validators: dict[str, bool] = field(default_factory=dict)
    standing: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    stats: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    status: str = "connecting"

    def apply(self, event: rt.RealtimeEvent) -> None:
        self.events += 1
        stamp = event.at.strftime("%H:%M:%S")
        match event:
            case rt.JobCreatedEvent():
                key = (event.job_id, event.validator_hotkey or "-")
                self.jobs[key] = {
                    "miner": event.miner_hotkey,
                    "state": "queued",
                    "done": 0,
                    "total": 0,
                    "benchmark": event.benchmark_id,
                }
                self.log.append(f"{stamp} job {event.job_id[:8]} created ({event.benchmark_id})")
            case rt.JobStatusEvent():
                key = (event.job_id, event.validator_hotkey)
                self.jobs.pop((event.job_id, "-"), None)
                row = self.jobs.setdefault(key, {"miner": event.miner_hotkey, "benchmark": ""})
                row.update(
                    state=str(event.state), done=event.episodes_done, total=event.episodes_total
                )
                self.jobs.move_to_end(key)
                while len(self.jobs) > 12:
                    self.jobs.popitem(last=False)
            case rt.EpisodeCompletedEvent():
                self.episodes.appendleft(
                    {
                        "job": event.job_id[:8],
                        "task": event.task,
                        "success": event.success,
                        "reward": event.total_reward,
                        "steps": event.steps,
                        "cause": event.failure_cause,
                        "sealed_until": event.sealed_until,
                    }
                )
            case rt.EvaluationCompletedEvent():
                rate = "-" if event.success_rate is None else f"{event.success_rate:.0%}"
                self.log.append(f"{stamp} job {event.job_id[:8]} {event.state} success={rate}")
            case rt.LeaderboardUpdatedEvent():
                self.leaderboard[event.competition_id] = list(event.entries)
            case rt.WeightsUpdatedEvent():
                self.weights = dict(event.weights)
                who = f" by {event.validator_hotkey[:8]}" if event.validator_hotkey else ""
                self.log.append(f"{stamp} weights {event.weights_id[:8]}{who}")
            case rt.ValidatorConnectedEvent():
                self.validators[event.validator_hotkey] = True
                self.log.append(f"{stamp} validator {event.validator_hotkey[:8]} connected")
            case rt.ValidatorDisconnectedEvent():
                self.validators[event.validator_hotkey] = False
                self.log.append(f"{stamp} validator {event.validator_hotkey[:8]} disconnected")
            case rt.SubmissionReceivedEvent():
                self.log.append(f"{stamp} submission from {event.miner_hotkey[:8]}")
            case rt.SubmissionRejectedEvent():
                self.log.append(f"{stamp} rejected {event.miner_hotkey[:8]}: {event.reason}")
            case rt.StatsEvent():
                self.stats = event.model_dump(exclude={"event_type", "at"}, exclude_none=True)

    def apply_snapshot(self, data: dict[str, Any]) -> None:
        stats = data.get("stats")
        if isinstance(stats, dict):
            self.stats = stats
        for validator in data.get("validators", []) or []:
            if isinstance(validator, dict) and "hotkey" in validator:
                self.validators[str(validator["hotkey"])] = bool(validator.get("connected"))
                self.standing[str(validator["hotkey"])] = validator
        boards = data.get("leaderboards")
        if isinstance(boards, dict):
            for competition, rows in boards.items():
                self.leaderboard[str(competition)] = _entries(rows)
        weights = data.get("weights") or data.get("latest_weights")
        if isinstance(weights, dict) and isinstance(weights.get("weights"), dict):
            self.weights = {int(k): float(v) for k, v in weights["weights"].items()}

    def _standing_table(self) -> Table:
        table = Table(title="Validator standing (at connect)", expand=True)
        for col in ("validator", "state", "strikes", "audits passed", "disagreement"):
            table.add_column(col)
        for hotkey, v in sorted(self.standing.items()):
            table.add_row(*_standing_row(hotkey, v, self.validators.get(hotkey, False)))
        return table

    def render(self) -> Group:
        head = Table.grid(padding=(0, 2))
        connected = sum(self.validators.values())
        head.add_row(
            f"[bold]{self.status}[/bold]",
            f"events: {self.events}",
            f"validators connected: {connected}",
            " ".join(f"{k}={v}" for k, v in self.stats.items()),
        )
        jobs = Table(title="Jobs", expand=True)
        for col in ("job", "validator", "miner", "state", "progress"):
            jobs.add_column(col)
        for (job_id, validator), row in reversed(self.jobs.items()):
            total = row.get("total") or 0
            progress = f"{row.get('done', 0)}/{total}" if total else "-"
            jobs.add_row(
                job_id[:8],
                validator[:8],
                str(row.get("miner", ""))[:8],
                str(row.get("state", "")),
                progress,
            )
        episodes = Table(title="Recent episodes", expand=True)
        for col in ("job", "task", "success", "reward", "steps", "fault", "seed, log, detail"):
            episodes.add_column(col)
        for ep in self.episodes:
            episodes.add_row(
                ep["job"],
                ep["task"],
                "yes" if ep["success"] else "no",
                f"{ep['reward']:.1f}",
                str(ep["steps"]),
                str(ep["cause"] or ""),
                sealed_note(ep["sealed_until"]),
            )
        parts: list[Any] = [head, jobs, episodes]
        for competition, entries in self.leaderboard.items():
            board = Table(title=f"Leaderboard — {competition}", expand=True)
            for col in ("rank", "miner", "success", "95% CI", "leader"):
                board.add_column(col)
            for entry in entries[:10]:
                rate = "-" if entry.success_rate is None else f"{entry.success_rate:.0%}"
                if entry.quorum is not None and entry.quorum.awaiting:
                    rate = entry.quorum.describe()
                ci = (
                    "-"
                    if entry.ci_low is None or entry.ci_high is None
                    else f"{entry.ci_low:.0%}–{entry.ci_high:.0%}"
                )
                board.add_row(
                    str(entry.rank),
                    entry.miner_hotkey[:10],
                    rate,
                    ci,
                    "★" if entry.is_leader else "",
                )
            parts.append(board)
        if self.standing:
            parts.append(self._standing_table())
        if self.weights:
            weights = Table(title="Latest weights")
            weights.add_column("uid")
            weights.add_column("weight", justify="right")
            for uid, value in sorted(self.weights.items(), key=lambda kv: -kv[1]):
                weights.add_row(str(uid), f"{value:.3f}")
            parts.append(weights)
        parts.extend(f"[dim]{line}[/dim]" for line in self.log)
        return Group(*parts)


def sealed_note(until: datetime | None) -> str:
    """Where an episode's sealed data would be: until when it is sealed, or where it is."""
    if until is None:
        return "open (/api/v1/episodes)"
    return f"sealed until {until.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z"


def _standing_row(hotkey: str, v: dict[str, Any], connected: bool) -> list[str]:
    rate, disagreement = v.get("audit_pass_rate"), v.get("disagreement")
    audited = int(v.get("audits_passed") or 0) + int(v.get("audits_failed") or 0)
    state = "suspended" if v.get("suspended") else ("up" if connected else "down")
    return [
        hotkey[:10],
        state,
        str(v.get("strikes", 0)),
        "-" if rate is None else f"{rate:.0%} of {audited}",
        "-" if disagreement is None else f"{disagreement:.0%}",
    ]


def _entries(rows: Any) -> list[rt.LeaderboardEntry]:
    """Snapshot leaderboard rows (score rows of the REST API) as event entries."""
    out: list[rt.LeaderboardEntry] = []
    for rank, row in enumerate(rows if isinstance(rows, list) else [], start=1):
        try:
            out.append(
                rt.LeaderboardEntry(
                    rank=rank,
                    submission_id=str(row["submission_id"]),
                    miner_hotkey=row["miner_hotkey"],
                    miner_uid=row.get("miner_uid"),
                    success_rate=row.get("success_rate"),
                    ci_low=row.get("ci_low"),
                    ci_high=row.get("ci_high"),
                    episodes=row.get("episodes"),
                    validators=row.get("validators"),
                    eligible=row.get("eligible"),
                    quorum=row.get("quorum"),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a row this version cannot read: leave it out, keep watching
    return out


def realtime_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    elif base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    return base if base.endswith("/ws/realtime") else base + "/ws/realtime"


async def watch(opts: WatchOptions, console: Console) -> int:
    import websockets

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
    live = None if opts.json_lines else Live(view.render(), console=console, refresh_per_second=4)
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
                            live.update(view.render())
                        if done:
                            return 0
            except TimeoutError:
                return 0
            except (OSError, websockets.WebSocketException) as exc:
                view.status = f"disconnected ({type(exc).__name__}); retrying in {delay:.0f}s"
                if live is not None:
                    live.update(view.render())
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
