"""Reconnect delays: capped exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """``next()`` returns a delay uniformly drawn from [0, min(max, base * 2**n)].

    Full jitter spreads the reconnects of many validators after a backend restart.
    ``reset()`` after a session that got as far as authentication.
    """

    base_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.max_s, self.base_s * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return max(self.base_s / 4, self.rng.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempts = 0
