"""Typed realtime events through NOTIFY (kinitro.backend.events.encode_event, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

from kinitro.backend.events import NOTIFY_LIMIT, encode_event
from kinitro.protocol.common import JobState
from kinitro.protocol.realtime import (
    JobStatusEvent,
    LeaderboardEntry,
    LeaderboardUpdatedEvent,
    StatsEvent,
    parse_event,
)

AT = datetime(2026, 1, 1, tzinfo=UTC)
HOTKEY = "5" + "F" * 47


def test_an_event_is_sent_as_built() -> None:
    event = JobStatusEvent(
        at=AT,
        job_id="j1",
        validator_hotkey=HOTKEY,
        competition_id="mt1",
        miner_hotkey=HOTKEY,
        state=JobState.RUNNING,
        episodes_done=3,
        episodes_total=10,
    )
    text = encode_event(event)
    assert text is not None and parse_event(text) == event


def test_too_big_for_notify_a_leaderboard_goes_without_entries_else_nothing_goes() -> None:
    entries = [
        LeaderboardEntry(rank=i, submission_id=str(i), miner_hotkey=HOTKEY, success_rate=0.5)
        for i in range(1, 200)
    ]
    board = LeaderboardUpdatedEvent(at=AT, competition_id="mt1", entries=entries)
    text = encode_event(board)
    assert text is not None and len(text.encode()) <= NOTIFY_LIMIT
    assert parse_event(text) == board.model_copy(update={"entries": []})
    assert encode_event(StatsEvent(at=AT, stats={"pad": "x" * NOTIFY_LIMIT})) is None
