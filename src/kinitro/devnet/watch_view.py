"""What ``kinitro watch`` shows: a view folded from the realtime snapshot and events, and
its screen.

The screen is laid out for a terminal, not printed once: :meth:`View.screen` renders the
sections in order of importance — the header (connection, counters in words), the newest
events (newest first), live jobs, recent episodes, leaderboards, validator standing,
weights — and stops at the terminal's height, so what does not fit is the least important
part and never the newest events (a taller-than-the-terminal frame used to lose its
bottom lines, where the newest events were). Every column has a fixed budget and cells are
cut with an ellipsis instead of wrapping, so the screen reads at 80 columns.

The view starts from the snapshot (live jobs, leaderboards with the miners' repositories,
validators, weights, counters) so a fresh ``watch`` shows the network as it is, then
applies every event.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from kinitro.protocol import realtime as rt

LOG_LINES = 10
"""Events kept for the log (the screen shows as many as fit, newest first)."""


@dataclass
class View:
    """What the screen shows, folded from the snapshot and the events."""

    jobs: OrderedDict[tuple[str, str], dict[str, Any]] = field(default_factory=OrderedDict)
    episodes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=8))
    leaderboard: dict[str, list[rt.LeaderboardEntry]] = field(default_factory=dict)
    competitions: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    weights: dict[int, float] = field(default_factory=dict)
    validators: dict[str, bool] = field(default_factory=dict)
    standing: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    stats: dict[str, Any] = field(default_factory=dict)
    events: int = 0
    status: str = "connecting"

    def apply(self, event: rt.RealtimeEvent) -> None:
        self.events += 1
        stamp = event.at.strftime("%H:%M:%S")
        match event:
            case rt.JobCreatedEvent():
                key = (event.job_id, event.validator_hotkey or "-")
                self._job(key, event.miner_hotkey, event.benchmark_id).update(state="queued")
                self.log.append(f"{stamp} job {event.job_id[:8]} created ({event.benchmark_id})")
            case rt.JobStatusEvent():
                key = (event.job_id, event.validator_hotkey)
                unassigned = self.jobs.pop((event.job_id, "-"), {})
                row = self._job(key, event.miner_hotkey, str(unassigned.get("benchmark", "")))
                row.update(
                    state=str(event.state), done=event.episodes_done, total=event.episodes_total
                )
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
                self.log.append(f"{stamp} job {event.job_id[:8]} {event.state}, success {rate}")
            case rt.LeaderboardUpdatedEvent():
                self.leaderboard[event.competition_id] = list(event.entries)
                self.log.append(f"{stamp} leaderboard of {event.competition_id} updated")
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
                self.stats = dict(event.stats)

    def _job(self, key: tuple[str, str], miner: str, benchmark: str) -> dict[str, Any]:
        row = self.jobs.setdefault(key, {"miner": miner, "benchmark": benchmark})
        row["benchmark"] = row.get("benchmark") or benchmark
        self.jobs.move_to_end(key)
        while len(self.jobs) > 12:
            self.jobs.popitem(last=False)
        return row

    def apply_snapshot(self, data: Mapping[str, Any]) -> None:
        """Start from the backend's current state (the ``snapshot`` frame's data)."""
        stats = data.get("stats")
        if isinstance(stats, dict):
            self.stats = stats
        for competition in _dicts(data.get("competitions")):
            if "id" in competition:
                self.competitions[str(competition["id"])] = str(competition.get("name") or "")
        for job in reversed(list(_dicts(data.get("live_jobs")))):
            if "id" in job:
                row = self._job(
                    (str(job["id"]), "-"),
                    str(job.get("miner_hotkey") or ""),
                    str(job.get("benchmark_id") or ""),
                )
                row.setdefault("state", str(job.get("state") or ""))
        for validator in _dicts(data.get("validators")):
            if "hotkey" in validator:
                self.validators[str(validator["hotkey"])] = bool(validator.get("connected"))
                self.standing[str(validator["hotkey"])] = validator
        boards = data.get("leaderboards")
        if isinstance(boards, dict):
            for competition, rows in boards.items():
                self.leaderboard[str(competition)] = _entries(rows)
                for row in _dicts(rows):
                    if row.get("artifact_repo") and "submission_id" in row:
                        self.names[str(row["submission_id"])] = str(row["artifact_repo"])
        weights = data.get("weights") or data.get("latest_weights")
        if isinstance(weights, dict) and isinstance(weights.get("weights"), dict):
            self.weights = {int(k): float(v) for k, v in weights["weights"].items()}

    # ------------------------------------------------------------------ rendering

    def header(self) -> Text:
        connected = sum(self.validators.values())
        lines = [
            _line(f"kinitro watch · {self.status}", "bold"),
            _line(f"events {self.events} · validators {connected}/{len(self.validators)} up"),
            *(_line(line) for line in describe_stats(self.stats)),
        ]
        return Text("\n").join(lines)

    def sections(self) -> Iterator[tuple[RenderableType, int]]:
        """(section, rows that may be dropped from its end) in order of importance."""
        yield self.header(), 0
        if self.log:
            log = Text("\n").join(_line(line, "dim") for line in reversed(self.log))
            yield Group(Text("Latest events (newest first)", style="bold"), log), len(self.log)
        yield self._jobs_table(), 0
        if self.episodes:
            yield self._episodes_table(), 0
        for competition, entries in self.leaderboard.items():
            yield self._board(competition, entries), 0
        if self.standing:
            yield self._standing_table(), 0
        if self.weights:
            yield self._weights_table(), 0

    def render(self) -> Group:
        """Everything, however tall (printing; the terminal view uses :meth:`screen`)."""
        return Group(*(section for section, _ in self.sections()))

    def screen(self, console: Console, height: int | None = None) -> Screen:
        """The sections that fit ``height`` lines (the console's height by default) at the
        console's width, in order; a partly fitting event log keeps its newest lines."""
        budget = height if height is not None else console.size.height
        options = console.options.update(width=console.width, height=None)
        out: list[list[Segment]] = []
        left_out = 0
        for section, droppable in self.sections():
            lines = console.render_lines(section, options, pad=False)
            room = budget - len(out)
            if len(lines) <= room:
                out.extend(lines)
            elif droppable and len(lines) - droppable < room:
                out.extend(lines[:room])  # the log: title, then its newest lines
            else:
                left_out += 1
        if left_out and len(out) < budget:
            out.append([Segment(f"… {left_out} more section(s): enlarge the terminal", _DIM)])
        elif left_out and out:
            out[-1] = [Segment(f"… {left_out} more section(s): enlarge the terminal", _DIM)]
        return Screen(out)

    def _jobs_table(self) -> Table:
        table = _table("Jobs" if self.jobs else "Jobs: none live")
        _columns(table, ("job", 8), ("validator", 9), ("miner", 8), ("benchmark", 18))
        _columns(table, ("state", 10), ("progress", 8))
        for (job_id, validator), row in reversed(self.jobs.items()):
            total = row.get("total") or 0
            table.add_row(
                job_id[:8],
                validator[:8],
                str(row.get("miner", ""))[:8],
                str(row.get("benchmark") or "-"),
                str(row.get("state", "")),
                f"{row.get('done', 0)}/{total}" if total else "-",
            )
        return table

    def _episodes_table(self) -> Table:
        table = _table("Recent episodes")
        _columns(table, ("job", 8), ("task", 12), ("result", 14), ("reward", 7))
        _columns(table, ("seed, log, detail", 33))
        for ep in self.episodes:
            table.add_row(
                ep["job"],
                ep["task"],
                "success" if ep["success"] else str(ep["cause"] or "failed"),
                f"{ep['reward']:.1f}",
                sealed_note(ep["sealed_until"]),
            )
        return table

    def _board(self, competition: str, entries: list[rt.LeaderboardEntry]) -> Table:
        name = self.competitions.get(competition)
        title = f"Leaderboard: {name} ({competition})" if name else f"Leaderboard: {competition}"
        table = _table(title)
        _columns(table, ("#", 2), ("miner", 8), ("repository", 24), ("success", 22))
        _columns(table, ("95% CI", 9), ("", 1))
        for entry in entries[:10]:
            rate = "-" if entry.success_rate is None else f"{entry.success_rate:.0%}"
            if entry.quorum is not None and entry.quorum.awaiting:
                rate = entry.quorum.describe()
            ci = (
                "-"
                if entry.ci_low is None or entry.ci_high is None
                else f"{entry.ci_low:.0%}–{entry.ci_high:.0%}"
            )
            table.add_row(
                str(entry.rank),
                entry.miner_hotkey[:8],
                self.names.get(entry.submission_id, ""),
                rate,
                ci,
                "★" if entry.is_leader else "",
            )
        return table

    def _standing_table(self) -> Table:
        table = _table("Validator standing (at connect)")
        _columns(table, ("validator", 10), ("state", 9), ("strikes", 7))
        _columns(table, ("audits passed", 14), ("disagreement", 12))
        for hotkey, v in sorted(self.standing.items()):
            table.add_row(*_standing_row(hotkey, v, self.validators.get(hotkey, False)))
        return table

    def _weights_table(self) -> Table:
        table = _table("Latest weights")
        _columns(table, ("uid", 5), ("weight", 7))
        for uid, value in sorted(self.weights.items(), key=lambda kv: -kv[1])[:8]:
            table.add_row(str(uid), f"{value:.3f}")
        return table


class Screen:
    """Lines already rendered for one width (what :meth:`View.screen` fitted)."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


_DIM = Style(dim=True)


def _line(text: str, style: str = "") -> Text:
    """One screen line: cut with an ellipsis, never wrapped (the layout counts lines)."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        min_width=len(title),
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        show_edge=False,
    )


def _columns(table: Table, *columns: tuple[str, int]) -> None:
    """Columns of at most ``width`` characters; longer cells end in an ellipsis."""
    for name, width in columns:
        table.add_column(name, max_width=width, no_wrap=True, overflow="ellipsis")


def describe_stats(stats: Mapping[str, Any]) -> list[str]:
    """The backend's counters in words, one line per kind (never a raw dict):
    ``submissions 4: 2 evaluated, 1 rejected, 1 scheduled``."""
    lines: list[str] = []
    scalars: list[str] = []
    for key, value in stats.items():
        label = key.replace("_", " ")
        if key == "validators_connected":
            continue  # the header's "validators n/m up" says it
        if isinstance(value, Mapping):
            counts = {str(k): v for k, v in value.items() if isinstance(v, int | float)}
            total = sum(counts.values())
            parts = ", ".join(
                f"{_count(n)} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
            )
            lines.append(f"{label} {_count(total)}" + (f": {parts}" if parts else ""))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            scalars.append(f"{label} {_count(value)}")
    if scalars:
        lines.append(" · ".join(scalars))
    return lines


def _count(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


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


def _dicts(value: Any) -> Iterable[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _entries(rows: Any) -> list[rt.LeaderboardEntry]:
    """Snapshot leaderboard rows (score rows of the REST API) as event entries."""
    out: list[rt.LeaderboardEntry] = []
    for rank, row in enumerate(_dicts(rows), start=1):
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
                    is_leader=bool(row.get("is_leader")),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue  # a row this version cannot read: leave it out, keep watching
    return out
