"""Scoring rules, table-driven: quorum/median, copies, thresholds, leader margin, weights."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from kinitro.backend.scoring import (
    Candidate,
    CompetitionShare,
    Crowning,
    ValidatorResult,
    aggregate_job,
    compute_weights,
    decide_leader,
    score,
)

V = ValidatorResult
ANY = Crowning(min_episodes=1, min_leader_score=0.0)  # crowning rules out of the way


def cand(sid: int, block: int, sha: str, *results: tuple[int, int], jobs: int = 1) -> Candidate:
    return Candidate(
        submission_id=sid,
        miner_hotkey=f"hk{sid}",
        miner_uid=sid,
        commitment_block=block,
        sha256=sha,
        jobs={"j": [V(f"v{i}", s, n) for i, (s, n) in enumerate(results)]} if results else {},
        expected_jobs=jobs,
    )


@pytest.mark.parametrize(
    ("results", "quorum", "band", "rate", "disagree"),
    [
        ([V("a", 5, 10)], 1, 0.2, 0.5, False),
        ([V("a", 5, 10)], 2, 0.2, None, False),  # below quorum: no score
        ([V("a", 2, 10), V("b", 5, 10), V("c", 6, 10)], 2, 0.2, 0.5, True),  # median, spread .4
        ([V("a", 5, 10), V("b", 6, 10), V("c", 5, 10)], 3, 0.2, 0.5, False),
        ([V("a", 0, 0), V("b", 7, 10)], 2, 0.2, None, False),  # no scored episodes ≠ a result
        ([V("a", 4, 10), V("b", 6, 10)], 2, 0.5, 0.5, False),  # even count: mean of middles
    ],
)
def test_aggregate_job(
    results: list[ValidatorResult], quorum: int, band: float, rate: float | None, disagree: bool
) -> None:
    agg = aggregate_job("j", results, quorum=quorum, band=band)
    if rate is None:
        assert agg is None
    else:
        assert agg is not None and math.isclose(agg.rate, rate) and agg.disagreement is disagree


def test_duplicate_results_do_not_change_the_median() -> None:
    once = aggregate_job("j", [V("a", 3, 10), V("b", 5, 10)], quorum=1, band=1)
    assert once is not None and once.validators == 2


def test_copy_gets_nothing_and_original_is_credited() -> None:
    scored = score(
        [cand(2, 20, "s1", (9, 10)), cand(1, 10, "s1", (5, 10)), cand(3, 5, "s3", (4, 10))],
        quorum=1,
        band=0.2,
        min_success_rate=0.0,
    )
    by = {s.submission_id: s for s in scored}
    assert by[2].copy_of == 1 and not by[2].eligible  # later copy: nothing, whatever its score
    assert by[1].copy_of is None and by[1].eligible
    decision = decide_leader(scored, None, episodes={}, crowning=ANY)
    assert decision.leader == 1


def test_earlier_commitment_outside_the_scored_set_still_wins() -> None:
    scored = score(
        [cand(5, 50, "s1", (9, 10))],
        quorum=1,
        band=0.2,
        min_success_rate=0,
        earlier={"s1": (10, 1)},
    )
    assert scored[0].copy_of == 1 and not scored[0].eligible


@pytest.mark.parametrize(
    ("threshold", "jobs", "eligible"),
    [(0.5, 1, True), (0.6, 1, False), (0.0, 2, False)],  # below threshold; incomplete
)
def test_eligibility(threshold: float, jobs: int, eligible: bool) -> None:
    [s] = score([cand(1, 1, "a", (5, 10), jobs=jobs)], quorum=1, band=1, min_success_rate=threshold)
    assert s.eligible is eligible


def test_first_leader_is_best_eligible_ties_to_earliest() -> None:
    scored = score(
        [cand(1, 30, "a", (5, 10)), cand(2, 10, "b", (5, 10)), cand(3, 5, "c", (1, 10))],
        quorum=1,
        band=1,
        min_success_rate=0,
    )
    decision = decide_leader(scored, None, episodes={}, crowning=ANY)
    assert (decision.leader, decision.reason) == (2, "first_leader")


def test_no_eligible_means_no_leader() -> None:
    scored = score([cand(1, 1, "a", (1, 10))], quorum=1, band=1, min_success_rate=0.5)
    assert decide_leader(scored, None, episodes={}, crowning=ANY).leader is None


@pytest.mark.parametrize(
    ("record", "crowning", "crowned"),
    [
        ((3, 3), Crowning(), False),  # 3 perfect episodes: Wilson low .44, far too few
        ((29, 29), Crowning(), False),  # one episode short of the default 30
        ((30, 30), Crowning(), True),
        ((3, 30), Crowning(), True),  # low bound .035 > 0
        ((3, 30), Crowning(min_leader_score=0.2), False),  # low bound .035 < .2
        ((0, 100), Crowning(), False),  # never succeeds: low bound 0
        ((80, 100), Crowning(min_episodes=100, min_leader_score=0.7), True),  # low .71
    ],
)
def test_crowning_needs_enough_episodes_and_a_confident_lower_bound(
    record: tuple[int, int], crowning: Crowning, crowned: bool
) -> None:
    scored = score([cand(1, 1, "a", record)], quorum=1, band=1, min_success_rate=0)
    decision = decide_leader(scored, None, episodes={}, crowning=crowning)
    assert decision.leader == (1 if crowned else None)
    assert decision.reason == ("first_leader" if crowned else "no_qualified")


def test_a_3_episode_submission_is_never_crowned_even_alone_and_perfect() -> None:
    """The devnet used to crown on 3 episodes (Wilson lower bound 0.44); with the default
    crowning nobody leads and the competition's share goes to the owner uid."""
    scored = score([cand(1, 1, "a", (3, 3))], quorum=1, band=1, min_success_rate=0)
    for current in (None, 1):  # neither crowned nor kept (a leader must keep qualifying)
        decision = decide_leader(scored, current, episodes={}, crowning=Crowning())
        assert decision.leader is None
    share = CompetitionShare("a", 1, None)  # no leader → no leader uid
    assert compute_weights([share], owner_uid=0, owner_share=0.0) == {0: 1.0}


def test_a_qualified_challenger_is_crowned_when_the_leader_stops_qualifying() -> None:
    scored = score(
        [cand(1, 1, "a", (5, 10)), cand(2, 2, "b", (20, 40))],
        quorum=1,
        band=1,
        min_success_rate=0,
    )
    decision = decide_leader(scored, 1, episodes={}, crowning=Crowning(min_episodes=40))
    assert (decision.leader, decision.changed, decision.reason) == (2, True, "first_leader")


@pytest.mark.parametrize(
    ("shares", "owner_share", "expected"),
    [
        ([CompetitionShare("a", 1, 7)], 0.0, {7: 1.0}),
        ([CompetitionShare("a", 1, 7)], 0.2, {0: 0.2, 7: 0.8}),
        ([CompetitionShare("a", 3, 7), CompetitionShare("b", 1, 8)], 0.0, {7: 0.75, 8: 0.25}),
        ([CompetitionShare("a", 1, 7), CompetitionShare("b", 1, None)], 0.0, {0: 0.5, 7: 0.5}),
        ([CompetitionShare("a", 1, 7), CompetitionShare("b", 1, 7)], 0.0, {7: 1.0}),
        ([], 0.0, {0: 1.0}),
    ],
)
def test_weights_sum_to_one(
    shares: list[CompetitionShare], owner_share: float, expected: dict[int, float]
) -> None:
    weights = compute_weights(shares, owner_uid=0, owner_share=owner_share)
    assert weights == pytest.approx(expected)
    assert sum(weights.values()) == pytest.approx(1.0)


def test_leader_that_became_ineligible_is_dethroned() -> None:
    scored = score([cand(1, 1, "a", (1, 10))], quorum=1, band=1, min_success_rate=0.5)
    decision = decide_leader(scored, 1, episodes={}, crowning=ANY)
    assert decision.changed and decision.leader is None


def test_one_validator_alone_never_counts_below_quorum() -> None:
    """A single (even perfect) result leaves a submission awaiting quorum: neither
    eligible nor leader, so it cannot take the weights."""
    leader = cand(1, 10, "s1", (8, 10), (9, 10), (8, 10))
    liar = cand(2, 20, "s2", (10, 10))
    scored = score([leader, liar], quorum=3, band=0.2, min_success_rate=0.0)
    by = {s.submission_id: s for s in scored}
    assert (by[2].quorum_have, by[2].quorum_need, by[2].awaiting_quorum) == (1, 3, True)
    assert not by[2].eligible and by[2].episodes == 0
    assert not by[1].awaiting_quorum and by[1].eligible
    decision = decide_leader(scored, 1, episodes={}, crowning=ANY)
    assert decision.leader == 1 and not decision.changed


def test_quorum_counts_the_job_with_fewest_results() -> None:
    c = Candidate(
        submission_id=1,
        miner_hotkey="hk",
        miner_uid=1,
        commitment_block=1,
        sha256="s",
        jobs={"a": [V("x", 5, 10), V("y", 5, 10)], "b": [V("x", 5, 10)]},
        expected_jobs=3,
    )
    (s,) = score([c], quorum=2, band=0.2, min_success_rate=0.0)
    assert (s.quorum_have, s.awaiting_quorum, s.eligible) == (0, True, False)  # job 3: none
    (s,) = score([replace(c, expected_jobs=2)], quorum=2, band=0.2, min_success_rate=0.0)
    assert (s.quorum_have, s.awaiting_quorum, s.eligible) == (1, True, False)
