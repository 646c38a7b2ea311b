"""``kinitro watch``'s screen, rendered into an 80-column buffer: the header in words, the
state of the snapshot on start, the newest events kept when the terminal is short."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from kinitro.devnet.watch_view import View, describe_stats
from kinitro.protocol import realtime as rt

AT = datetime(2026, 12, 6, 13, 45, 2, tzinfo=UTC)
VALIDATOR_A = "5CvaLA" + "a" * 42
VALIDATOR_B = "5CvaLB" + "b" * 42
MINER_A = "5FminA" + "a" * 42
MINER_B = "5FminB" + "b" * 42
JOB = "0123456789abcdef" * 2

SNAPSHOT = {
    "stats": {
        "submissions": {"evaluated": 2, "rejected": 1, "superseded": 1},
        "jobs": {"completed": 10, "running": 1, "queued": 2},
        "validators_connected": 1,
        "episodes": 1200,
        "step_samples": 30000,
        "results": 20,
    },
    "competitions": [{"id": "mt10", "name": "MetaWorld MT10"}],
    "live_jobs": [
        {"id": JOB, "miner_hotkey": MINER_A, "benchmark_id": "mt10-v1", "state": "running"}
    ],
    "validators": [
        {
            "hotkey": VALIDATOR_A,
            "connected": True,
            "strikes": 0,
            "audits_passed": 3,
            "audits_failed": 0,
            "audit_pass_rate": 1.0,
            "disagreement": 0.02,
        },
        {"hotkey": VALIDATOR_B, "connected": False, "strikes": 1},
    ],
    "leaderboards": {
        "mt10": [
            {
                "submission_id": 7,
                "miner_hotkey": MINER_A,
                "artifact_repo": "alice/reach-policy-with-a-long-name",
                "success_rate": 0.62,
                "ci_low": 0.55,
                "ci_high": 0.69,
                "is_leader": True,
            },
            {
                "submission_id": 9,
                "miner_hotkey": MINER_B,
                "artifact_repo": "bob/pick",
                "success_rate": 0.4,
                "ci_low": 0.3,
                "ci_high": 0.5,
                "quorum": {"have": 1, "need": 3},
            },
        ]
    },
    "latest_weights": {"weights": {"1": 0.9, "2": 0.1}},
}


def _text(view: View, height: int) -> list[str]:
    console = Console(width=80, height=height, record=True, file=io.StringIO())
    console.print(view.screen(console))
    return [line.rstrip() for line in console.export_text().splitlines()]


def _view() -> View:
    view = View(status="connected to ws://127.0.0.1:8000/ws/realtime")
    view.apply_snapshot(SNAPSHOT)
    view.apply(rt.ValidatorConnectedEvent(validator_hotkey=VALIDATOR_A, at=AT))
    view.apply(
        rt.EpisodeCompletedEvent(
            job_id=JOB,
            validator_hotkey=VALIDATOR_A,
            competition_id="mt10",
            miner_hotkey=MINER_A,
            episode_index=0,
            task="reach-v3",
            success=False,
            failure_cause="agent_timeout",
            total_reward=412.3,
            steps=150,
            sealed_until=AT,
            at=AT,
        )
    )
    view.apply(
        rt.JobStatusEvent(
            job_id=JOB,
            validator_hotkey=VALIDATOR_A,
            competition_id="mt10",
            miner_hotkey=MINER_A,
            state="running",
            episodes_done=3,
            episodes_total=50,
            at=AT,
        )
    )
    return view


EXPECTED = """\
kinitro watch · connected to ws://127.0.0.1:8000/ws/realtime
events 3 · validators 1/2 up
submissions 4: 2 evaluated, 1 rejected, 1 superseded
jobs 13: 10 completed, 2 queued, 1 running
episodes 1,200 · step samples 30,000 · results 20
Latest events (newest first)
13:45:02 validator 5CvaLAaa connected
Jobs
job      validator miner    benchmark state   progress
──────────────────────────────────────────────────────
01234567 5CvaLAaa  5FminAaa mt10-v1   running 3/50
Recent episodes
job      task     result        reward seed, log, detail
────────────────────────────────────────────────────────────────────────
01234567 reach-v3 agent_timeout 412.3  sealed until 2026-12-06 13:45:02Z
Leaderboard: MetaWorld MT10 (mt10)
# miner    repository               success               95% CI
───────────────────────────────────────────────────────────────────
1 5FminAaa alice/reach-policy-with… 62%                   55%–69% ★
2 5FminBbb bob/pick                 awaiting quorum (1/3) 30%–50%
Validator standing (at connect)
validator  state strikes audits passed disagreement
───────────────────────────────────────────────────
5CvaLAaaaa up    0       100% of 3     2%
5CvaLBbbbb down  1       -             -
Latest weights
uid   weight
──────────────
1     0.900
2     0.100"""


def test_the_whole_screen_at_80_columns() -> None:
    lines = _text(_view(), height=60)
    assert "\n".join(lines) == EXPECTED
    assert max(len(line) for line in lines) <= 80


def test_the_snapshot_is_on_screen_before_any_event() -> None:
    view = View()
    view.apply_snapshot(SNAPSHOT)
    text = "\n".join(_text(view, height=60))
    assert "01234567 -         5FminAaa mt10-v1   running -" in text
    assert "1 5FminAaa alice/reach-policy-with… 62%" in text
    assert "validators 1/2 up" in text
    assert "Latest weights" in text


def test_the_newest_events_stay_on_a_short_terminal() -> None:
    view = _view()
    for n in range(30):
        view.apply(
            rt.SubmissionReceivedEvent(
                submission_id=str(n),
                competition_id="mt10",
                miner_hotkey=MINER_B,
                commitment_block=n,
                at=AT + timedelta(seconds=n),
            )
        )
    lines = _text(view, height=12)
    assert len(lines) == 12
    assert lines[5:] == [
        "Latest events (newest first)",
        "13:45:31 submission from 5FminBbb",
        "13:45:30 submission from 5FminBbb",
        "13:45:29 submission from 5FminBbb",
        "13:45:28 submission from 5FminBbb",
        "13:45:27 submission from 5FminBbb",
        "… 5 more section(s): enlarge the terminal",
    ]


def test_counters_read_as_words_not_dicts() -> None:
    view = View()
    view.apply(rt.StatsEvent(stats={"jobs": {"queued": 1}, "results": 2}, at=AT))
    assert describe_stats(view.stats) == ["jobs 1: 1 queued", "results 2"]
    assert "{" not in "\n".join(_text(view, height=24))
