"""Progress for people: episodes, steps/s and time left from the results so far."""

from __future__ import annotations

import time

from kinitro.evaluator.progress import EvalProgress
from kinitro.evaluator.results import EpisodeResult


def _result(i: int, steps: int) -> EpisodeResult:
    return EpisodeResult(index=i, task="reach-v3", task_episode=i, seed=i, steps=steps)


def test_rate_and_time_left_follow_the_pace_so_far() -> None:
    progress = EvalProgress(total=4)
    assert progress.eta_s is None and "? left" in progress.line()
    progress.started -= 2.0  # two seconds in
    progress.add(_result(0, 500))
    event = progress.event()
    assert event["event"] == "progress" and (event["done"], event["total"]) == (1, 4)
    assert event["steps"] == 500 and 240 <= event["steps_per_s"] <= 250
    assert 5.9 <= event["eta_s"] <= 6.1  # 3 episodes left at 2 s each
    assert progress.line().startswith("1/4 episodes, 500 steps, ")


def test_the_log_is_due_every_interval_and_at_the_end() -> None:
    progress = EvalProgress(total=2, log_every_s=60.0)
    progress.add(_result(0, 10))
    assert not progress.log_due()
    progress._logged = time.monotonic() - 61
    assert progress.log_due() and not progress.log_due()
    progress.add(_result(1, 10))
    assert progress.log_due()  # the last episode always logs
