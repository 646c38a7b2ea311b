"""Progress of one evaluation for people: episodes done, steps/s, time left.

Fed one final episode result at a time (the runner's ``on_result``); read by the local
evaluation's JSON-lines stream (``kinitro miner eval`` draws its bar from it) and by the
evaluator's log, at most every ``log_every_s``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from kinitro.evaluator.results import EpisodeResult


@dataclass(slots=True)
class EvalProgress:
    total: int
    log_every_s: float = 10.0
    done: int = 0
    steps: int = 0
    started: float = field(default_factory=time.monotonic)
    _logged: float = field(default_factory=time.monotonic)

    def add(self, result: EpisodeResult) -> None:
        self.done += 1
        self.steps += result.steps

    @property
    def elapsed_s(self) -> float:
        return max(1e-9, time.monotonic() - self.started)

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (None before the first episode)."""
        if not self.done:
            return None
        return self.elapsed_s / self.done * max(0, self.total - self.done)

    def event(self) -> dict[str, Any]:
        eta = self.eta_s
        return {
            "event": "progress",
            "done": self.done,
            "total": self.total,
            "steps": self.steps,
            "steps_per_s": round(self.steps_per_s, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }

    def line(self) -> str:
        eta = self.eta_s
        left = "?" if eta is None else f"{eta:.0f} s"
        return (
            f"{self.done}/{self.total} episodes, {self.steps:,} steps, "
            f"{self.steps_per_s:,.0f} steps/s, {left} left"
        )

    def log_due(self) -> bool:
        """True at most every ``log_every_s``, and for the last episode."""
        now = time.monotonic()
        if self.done >= self.total or now - self._logged >= self.log_every_s:
            self._logged = now
            return True
        return False
