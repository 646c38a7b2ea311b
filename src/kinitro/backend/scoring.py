"""Scoring rules, pure (no I/O): aggregation across validators, copies, leader, weights.

* **Quorum** — a job counts only once the completed results of ``quorum`` distinct
  validators are in (``min_validators``); until every job of a submission is there, the
  submission is *awaiting quorum* (``have``/``need``: the fewest results any of its jobs
  has) and can be neither eligible, nor leader, nor weighted. One validator alone can
  never move the leaderboard's top or the weights.
* **Aggregation** — per job at quorum, the results are combined by the median success
  rate; a spread (max − min) beyond ``band`` is flagged as disagreement. A submission's
  score sums the per-job medians (successes and scored episodes) and carries a Wilson
  95 % interval.
* **Copies** — among submissions with the same artifact sha256, only the earliest
  commitment (lowest block, then lowest id) is credited; later copies get nothing. The
  same holds for *behavioural* copies (:mod:`.copies`: the same actions on the same
  seeds, whatever the hash), passed in as ``behaviour``; ``copy_kind`` says which.
* **Crowning** — only a submission that *qualifies* can be leader: eligible, at least
  ``min_episodes`` scored episodes and a Wilson lower bound above ``min_leader_score``
  (:class:`Crowning`). A leader that stops qualifying loses the crown; while nobody
  qualifies the competition has no leader and its share goes to ``owner_uid``.
* **Leader** — the best qualifying submission becomes leader; afterwards a qualified
  challenger replaces it only when the paired test over the episodes both played in the
  recent rounds (:mod:`.paired`: same validator, round, task and episode index) says it
  is better at ``confidence``; the best-ranked challenger that passes wins. Nobody
  committed after a submission still in its first evaluation takes the crown until that
  evaluation ends (it could be the original of a behavioural copy).
* **Weights** — each active competition's points share goes to its leader's uid; the
  owner share and the share of competitions without a leader go to ``owner_uid``; the
  result sums to one.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kinitro.backend.paired import EpisodeRecord, Key, PairedTest, paired_test
from kinitro.protocol.common import wilson_interval


@dataclass(frozen=True, slots=True)
class ValidatorResult:
    validator: str
    successes: int
    episodes: int  # scored episodes (infrastructure failures excluded)

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0


@dataclass(frozen=True, slots=True)
class JobAggregate:
    job_id: str
    validators: int
    successes: float
    episodes: float
    rate: float
    spread: float
    disagreement: bool


def aggregate_job(
    job_id: str, results: Sequence[ValidatorResult], *, quorum: int, band: float
) -> JobAggregate | None:
    """Median of the validators' results, or None below quorum."""
    usable = [r for r in results if r.episodes > 0]
    if len(usable) < max(1, quorum):
        return None
    rates = [r.rate for r in usable]
    spread = max(rates) - min(rates)
    return JobAggregate(
        job_id=job_id,
        validators=len(usable),
        successes=statistics.median(r.successes for r in usable),
        episodes=statistics.median(r.episodes for r in usable),
        rate=statistics.median(rates),
        spread=spread,
        disagreement=spread > band,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A submission to score: its artifact identity and results per job."""

    submission_id: int
    miner_hotkey: str
    miner_uid: int | None
    commitment_block: int
    sha256: str
    jobs: Mapping[str, Sequence[ValidatorResult]]  # job_id → results
    expected_jobs: int


@dataclass(frozen=True, slots=True)
class Scored:
    submission_id: int
    miner_hotkey: str
    miner_uid: int | None
    commitment_block: int
    success_rate: float
    ci_low: float
    ci_high: float
    successes: int
    episodes: int
    validators: int
    disagreement: bool
    complete: bool
    eligible: bool
    copy_of: int | None
    jobs: tuple[JobAggregate, ...] = field(default=())
    copy_kind: str | None = None  # "artifact" (same sha256) | "behaviour" (same actions)
    quorum_have: int = 0  # results of the job with the fewest (0 while a job has none)
    quorum_need: int = 1

    @property
    def awaiting_quorum(self) -> bool:
        return self.quorum_have < self.quorum_need

    @property
    def sort_key(self) -> tuple[float, int, int]:
        return (-self.success_rate, self.commitment_block, self.submission_id)


def originals(
    candidates: Iterable[Candidate], earlier: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, tuple[int, int]]:
    """sha256 → (commitment_block, submission_id) of the earliest commitment."""
    first: dict[str, tuple[int, int]] = dict(earlier or {})
    for c in candidates:
        key = (c.commitment_block, c.submission_id)
        if c.sha256 not in first or key < first[c.sha256]:
            first[c.sha256] = key
    return first


def score(
    candidates: Sequence[Candidate],
    *,
    quorum: int,
    band: float,
    min_success_rate: float,
    earlier: Mapping[str, tuple[int, int]] | None = None,
    behaviour: Mapping[int, int] | None = None,
) -> list[Scored]:
    """Score every candidate; copies and incomplete evaluations are not eligible.
    ``behaviour``: submission → the earlier submission it behaves the same as."""
    first = originals(candidates, earlier)
    out: list[Scored] = []
    for c in candidates:
        aggs = [aggregate_job(j, rs, quorum=quorum, band=band) for j, rs in c.jobs.items()]
        done = [a for a in aggs if a is not None]
        successes = round(sum(a.successes for a in done))
        episodes = round(sum(a.episodes for a in done))
        successes = min(successes, episodes)
        low, high = wilson_interval(successes, episodes)
        original = first[c.sha256][1]
        copy_of = None if original == c.submission_id else original
        kind = "artifact" if copy_of is not None else None
        if copy_of is None and behaviour and c.submission_id in behaviour:
            copy_of, kind = behaviour[c.submission_id], "behaviour"
        complete = len(done) >= c.expected_jobs and episodes > 0
        counts = [sum(1 for r in rs if r.episodes > 0) for rs in c.jobs.values()]
        have = min(counts) if counts and len(counts) >= c.expected_jobs else 0
        rate = successes / episodes if episodes else 0.0
        out.append(
            Scored(
                submission_id=c.submission_id,
                miner_hotkey=c.miner_hotkey,
                miner_uid=c.miner_uid,
                commitment_block=c.commitment_block,
                success_rate=rate,
                ci_low=low,
                ci_high=high,
                successes=successes,
                episodes=episodes,
                validators=min((a.validators for a in done), default=0),
                disagreement=any(a.disagreement for a in done),
                complete=complete,
                eligible=complete and copy_of is None and rate >= min_success_rate,
                copy_of=copy_of,
                copy_kind=kind,
                jobs=tuple(done),
                quorum_have=have,
                quorum_need=max(1, quorum),
            )
        )
    out.sort(key=lambda s: s.sort_key)
    return out


@dataclass(frozen=True, slots=True)
class LeaderDecision:
    leader: int | None  # submission id of the leader after this decision
    challenger: int | None  # the best qualified non-leader
    changed: bool
    reason: str
    tests: Mapping[int, PairedTest] = field(default_factory=dict)  # challenger → vs leader


@dataclass(frozen=True, slots=True)
class Crowning:
    """What a submission needs to hold the crown: at least ``min_episodes`` scored
    episodes and a Wilson lower bound above ``min_leader_score``; to take it from a
    leader, a paired test (:func:`kinitro.backend.paired.paired_test`) at ``confidence``
    over at least ``min_shared`` shared episodes."""

    min_episodes: int = 30
    min_leader_score: float = 0.0
    confidence: float = 0.95
    min_shared: int = 50

    def qualifies(self, s: Scored) -> bool:
        return s.eligible and s.episodes >= self.min_episodes and s.ci_low > self.min_leader_score


def decide_leader(
    scored: Sequence[Scored],
    current_leader: int | None,
    *,
    crowning: Crowning,
    episodes: Mapping[int, Mapping[Key, EpisodeRecord]],
    held: Collection[int] = (),
) -> LeaderDecision:
    """``episodes``: submission → its scored episodes of the recent rounds, by pairing key.
    ``held``: submissions that may not take the crown yet (an earlier commitment is still
    in its first evaluation: they may turn out to be its copies)."""
    qualified = sorted((s for s in scored if crowning.qualifies(s)), key=lambda s: s.sort_key)
    leader = next((s for s in qualified if s.submission_id == current_leader), None)
    challengers = [
        s for s in qualified if s.submission_id != current_leader and s.submission_id not in held
    ]
    best = challengers[0] if challengers else None
    if leader is None:
        if best is None:
            return LeaderDecision(None, None, current_leader is not None, "no_qualified")
        return LeaderDecision(best.submission_id, None, True, "first_leader")
    mine = episodes.get(leader.submission_id, {})
    tests = {
        c.submission_id: paired_test(
            mine,
            episodes.get(c.submission_id, {}),
            confidence=crowning.confidence,
            min_shared=crowning.min_shared,
        )
        for c in challengers
    }
    winner = next((c for c in challengers if tests[c.submission_id].better), None)
    if winner is not None:
        return LeaderDecision(winner.submission_id, None, True, "beat_leader", tests)
    return LeaderDecision(
        leader.submission_id,
        best.submission_id if best else None,
        False,
        "leader_holds",
        tests,
    )


@dataclass(frozen=True, slots=True)
class CompetitionShare:
    competition_id: str
    points: float
    leader_uid: int | None


def compute_weights(
    shares: Sequence[CompetitionShare], *, owner_uid: int, owner_share: float
) -> dict[int, float]:
    """uid → weight, summing to 1. Unclaimed shares go to ``owner_uid``."""
    owner_share = min(max(owner_share, 0.0), 1.0)
    total_points = sum(max(s.points, 0.0) for s in shares)
    weights: dict[int, float] = {}
    if total_points <= 0:
        return {owner_uid: 1.0}
    for s in shares:
        part = (1.0 - owner_share) * max(s.points, 0.0) / total_points
        uid = s.leader_uid if s.leader_uid is not None else owner_uid
        weights[uid] = weights.get(uid, 0.0) + part
    weights[owner_uid] = weights.get(owner_uid, 0.0) + owner_share
    total = sum(weights.values())
    return {uid: w / total for uid, w in sorted(weights.items()) if w > 0}
