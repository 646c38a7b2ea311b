"""Behavioural copies: submissions that act the same on the same seeds, pure (no I/O).

A copy with one comment changed is a new artifact (another sha256), so copies are found by
what the agent *does*: on paired episodes (same validator, round, task and episode index,
:mod:`.paired`) two submissions' action fingerprints (:mod:`kinitro.protocol.fingerprint`)
are compared. Submission B is a behavioural copy of an earlier commitment A when they
share at least ``min_episodes`` fingerprinted episodes and at least ``share`` of those
match within ``tolerance``. The later commitment (block, then id) is the copy and earns
nothing, whatever its hash; it is credited to the earliest submission it matches. The
score engine keeps a copy once found (``scores.detail.copy_kind``), even after the rounds
that showed it left the scoring window.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from kinitro.backend.paired import EpisodeRecord, Key
from kinitro.protocol import fingerprint


@dataclass(frozen=True, slots=True)
class CopyRules:
    tolerance: float = 0.01
    min_episodes: int = 10
    share: float = 0.9


def behavioural_copies(
    episodes: Mapping[int, Mapping[Key, EpisodeRecord]],
    order: Mapping[int, tuple[int, int]],
    rules: CopyRules,
) -> dict[int, int]:
    """submission → the earliest submission it copies (only copies are keys).

    ``order``: submission → (commitment_block, submission_id), the commitment order.
    """
    by_key: dict[Key, list[tuple[int, fingerprint.Fingerprint]]] = defaultdict(list)
    for sid, records in episodes.items():
        for key, r in records.items():
            fp = fingerprint.decode(r.fingerprint) if r.fingerprint else None
            if fp is not None:
                by_key[key].append((sid, fp))
    shared: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])  # [shared, same]
    for played in by_key.values():
        for i, (a, fa) in enumerate(played):
            for b, fb in played[i + 1 :]:
                pair = (a, b) if order[a] < order[b] else (b, a)
                tally = shared[pair]
                tally[0] += 1
                tally[1] += fingerprint.matches(fa, fb, rules.tolerance)
    copies: dict[int, int] = {}
    for (first, later), (n, same) in sorted(shared.items(), key=lambda kv: order[kv[0][0]]):
        if n >= rules.min_episodes and same >= rules.share * n:
            copies.setdefault(later, copies.get(first, first))
    return copies
