"""Paired comparison of two submissions on the episodes they share, pure (no I/O).

Every round the leader and the top challengers are evaluated on that round's seeds by the
same validators (:func:`kinitro.backend.scheduler.schedule_round`). Two episodes are
*paired* when they share validator, round, task and task episode index: the validator
derives the episode's seed from exactly these, so both submissions met the same simulator
start (today every validator of a round derives the same seeds; with per-validator seeds
only the validator's own episodes pair).

**The test** (:func:`paired_test`) is a one-sided exact sign test (McNemar) on the shared
episodes of the recent rounds: of the *discordant* pairs (one succeeded, the other did
not), ``wins`` went to the challenger and ``losses`` to the leader. If the challenger were
no better, every discordant pair would be a fair coin, so::

    p = P[Binomial(wins + losses, 1/2) >= wins]

The challenger is better at confidence ``c`` when ``p <= 1 - c``, when that holds also with
any single shared round left out (no lucky or unlucky round decides alone; this needs at
least two shared rounds) and when at least ``min_shared`` episodes are shared. Concordant
pairs (both succeed, both fail) say nothing about which is better and do not enter ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

Key = tuple[str, str, str, int]
"""(validator, round_id, task, task_episode): what makes two episodes the same start."""


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One scored episode of a submission (infrastructure faults are never records)."""

    submission_id: int
    validator: str
    round_id: str
    task: str
    task_episode: int
    success: bool
    fingerprint: str | None = None  # kinitro.protocol.fingerprint text, None before it

    @property
    def key(self) -> Key:
        return (self.validator, self.round_id, self.task, self.task_episode)


def by_key(records: Iterable[EpisodeRecord]) -> dict[Key, EpisodeRecord]:
    """One record per key (the first seen; a key is unique per submission anyway)."""
    out: dict[Key, EpisodeRecord] = {}
    for r in records:
        out.setdefault(r.key, r)
    return out


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact p-value of ``wins`` out of ``wins + losses`` fair coin flips."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail: int = sum(math.comb(n, k) for k in range(wins, n + 1))
    return min(1.0, tail / (1 << n))  # exact big-int division, fine for any n


@dataclass(frozen=True, slots=True)
class PairedTest:
    """The challenger against the leader over their shared episodes."""

    shared: int  # shared episodes
    rounds: int  # shared rounds
    wins: int  # challenger succeeded, leader failed
    losses: int  # leader succeeded, challenger failed
    p_value: float  # over every shared round
    worst_p_value: float  # the largest p with any one shared round left out (1 if < 2 rounds)
    better: bool

    def as_json(self) -> dict[str, float | int | bool]:
        return {
            "shared_episodes": self.shared,
            "shared_rounds": self.rounds,
            "wins": self.wins,
            "losses": self.losses,
            "p_value": self.p_value,
            "worst_p_value": self.worst_p_value,
            "better": self.better,
        }


def paired_test(
    leader: Mapping[Key, EpisodeRecord],
    challenger: Mapping[Key, EpisodeRecord],
    *,
    confidence: float,
    min_shared: int,
) -> PairedTest:
    """Is ``challenger`` better than ``leader`` on the episodes both played?"""
    per_round: dict[str, list[int]] = {}  # round → [wins, losses]
    shared = 0
    for key, c in challenger.items():
        lead = leader.get(key)
        if lead is None:
            continue
        shared += 1
        tally = per_round.setdefault(key[1], [0, 0])
        if c.success and not lead.success:
            tally[0] += 1
        elif lead.success and not c.success:
            tally[1] += 1
    wins = sum(w for w, _ in per_round.values())
    losses = sum(lo for _, lo in per_round.values())
    p = sign_test_p(wins, losses)
    worst = 1.0
    if len(per_round) >= 2:
        worst = max(sign_test_p(wins - w, losses - lo) for w, lo in per_round.values())
    alpha = 1.0 - confidence
    better = shared >= min_shared and p <= alpha and worst <= alpha
    return PairedTest(shared, len(per_round), wins, losses, p, worst, better)
