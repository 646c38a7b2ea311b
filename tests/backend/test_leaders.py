"""Leaders and challengers on synthetic per-episode records: the paired test, the round
window, crowning, behavioural copies; no database (the wire: test_rounds_over_the_wire)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kinitro.backend.copies import CopyRules, behavioural_copies
from kinitro.backend.paired import EpisodeRecord, Key, by_key, paired_test, sign_test_p
from kinitro.backend.scoring import Candidate, Crowning, ValidatorResult, decide_leader, score
from kinitro.backend.window import RoundJobs, recent_rounds
from kinitro.protocol.fingerprint import encode as fp_encode

RULES = Crowning(min_episodes=30, min_leader_score=0.0, confidence=0.95, min_shared=50)
VALIDATORS = ("v0", "v1")


def records(
    sid: int, rounds: int, per_round: int, fails: Callable[[int, int], bool]
) -> dict[Key, EpisodeRecord]:
    """``per_round`` episodes per round split over two validators; ``fails(round, i)``."""
    out = []
    for r in range(rounds):
        for i in range(per_round):
            out.append(
                EpisodeRecord(
                    submission_id=sid,
                    validator=VALIDATORS[i % 2],
                    round_id=f"c-r{r}",
                    task="reach-v3",
                    task_episode=i // 2,
                    success=not fails(r, i),
                )
            )
    return by_key(out)


def scored_of(recs: dict[int, dict[Key, EpisodeRecord]]) -> list:
    cands = [
        Candidate(
            submission_id=sid,
            miner_hotkey=f"hk{sid}",
            miner_uid=sid,
            commitment_block=sid,
            sha256=f"sha{sid}",
            jobs={
                "j": [
                    ValidatorResult("v", sum(e.success for e in rs.values()), len(rs)),
                ]
            },
            expected_jobs=1,
        )
        for sid, rs in recs.items()
    ]
    return score(cands, quorum=1, band=1, min_success_rate=0)


def every(n: int, offset: int = 0) -> Callable[[int, int], bool]:
    return lambda r, i: (r * 7 + i) % n == offset


def test_sign_test_p_values() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(8, 1) == pytest.approx(10 / 512)
    assert sign_test_p(3, 3) == pytest.approx(42 / 64)


def test_a_095_leader_is_dethroned_by_099_given_enough_shared_episodes() -> None:
    leader = records(1, 5, 100, every(20, 0))  # 95 %
    better = records(2, 5, 100, every(100, 50))  # 99 %, failing elsewhere
    test = paired_test(leader, better, confidence=0.95, min_shared=50)
    assert (test.shared, test.rounds, test.wins, test.losses) == (500, 5, 25, 5)
    assert test.p_value < 0.001 and test.worst_p_value < 0.05 and test.better
    recs = {1: leader, 2: better}
    decision = decide_leader(scored_of(recs), 1, crowning=RULES, episodes=recs)
    assert (decision.leader, decision.changed, decision.reason) == (2, True, "beat_leader")


def test_one_round_of_099_is_not_enough_shared_evidence() -> None:
    leader = records(1, 1, 100, every(20, 0))
    better = records(2, 1, 100, every(100, 50))
    test = paired_test(leader, better, confidence=0.95, min_shared=50)
    assert (test.wins, test.losses, test.rounds) == (5, 1, 1)
    assert not test.better  # p = 7/64 and a single round never decides alone
    recs = {1: leader, 2: better}
    decision = decide_leader(scored_of(recs), 1, crowning=RULES, episodes=recs)
    assert (decision.leader, decision.changed, decision.challenger) == (1, False, 2)


def test_an_equal_challenger_does_not_dethrone() -> None:
    leader = records(1, 5, 100, every(20, 0))
    same = records(2, 5, 100, every(20, 10))  # 95 % too, failing on other episodes
    test = paired_test(leader, same, confidence=0.95, min_shared=50)
    assert (test.wins, test.losses) == (25, 25) and not test.better
    recs = {1: leader, 2: same}
    decision = decide_leader(scored_of(recs), 1, crowning=RULES, episodes=recs)
    assert (decision.leader, decision.reason) == (1, "leader_holds")
    assert decision.tests[2].p_value > 0.5


def test_one_unlucky_round_of_the_leader_does_not_dethrone() -> None:
    # equal at 95 % for four rounds; in the fifth the leader fails half its episodes
    leader = records(1, 5, 100, lambda r, i: i % 2 == 0 if r == 4 else every(20, 0)(r, i))
    rival = records(2, 5, 100, every(20, 10))
    test = paired_test(leader, rival, confidence=0.95, min_shared=50)
    assert test.p_value < 1e-6  # pooled, the bad round looks decisive …
    assert test.worst_p_value > 0.5 and not test.better  # … but without it nothing is left
    recs = {1: leader, 2: rival}
    decision = decide_leader(scored_of(recs), 1, crowning=RULES, episodes=recs)
    assert decision.leader == 1 and not decision.changed


def test_a_3_episode_submission_is_never_crowned_nor_dethrones() -> None:
    leader = records(1, 5, 100, every(2, 0))  # a weak leader at 50 %
    newcomer = records(2, 1, 3, lambda r, i: False)  # 3/3
    recs = {1: leader, 2: newcomer}
    scored = scored_of(recs)
    assert decide_leader(scored, None, crowning=RULES, episodes=recs).leader == 1
    decision = decide_leader(scored, 1, crowning=RULES, episodes=recs)
    assert decision.leader == 1 and 2 not in decision.tests  # not qualified: never tested
    alone = decide_leader(scored_of({2: newcomer}), None, crowning=RULES, episodes={})
    assert alone.leader is None and alone.reason == "no_qualified"


def test_only_episodes_of_the_same_validator_round_task_and_index_pair() -> None:
    a = records(1, 2, 40, every(4, 0))
    b = {(k[0] + "-other", *k[1:]): v for k, v in records(2, 2, 40, lambda r, i: False).items()}
    assert paired_test(a, b, confidence=0.95, min_shared=1).shared == 0


@pytest.mark.parametrize(
    ("challenger_rate", "low", "high"),
    [(0.99, 0.9, 1.0), (0.95, 0.0, 0.05)],
)
def test_power_and_false_dethronings_over_random_rounds(
    challenger_rate: float, low: float, high: float
) -> None:
    """Binomial episodes, 5 rounds × 200 shared episodes, leader at 0.95: a 0.99
    challenger wins almost always, an equal one almost never."""
    rng = np.random.default_rng(17)
    trials, dethroned = 200, 0
    for _ in range(trials):
        lead = rng.random((5, 200)) < 0.95
        chal = rng.random((5, 200)) < challenger_rate
        a = records(1, 5, 200, lambda r, i, x=lead: not x[r, i])
        b = records(2, 5, 200, lambda r, i, x=chal: not x[r, i])
        dethroned += paired_test(a, b, confidence=0.95, min_shared=50).better
    assert low <= dethroned / trials <= high, dethroned


def test_window_counts_the_last_complete_rounds() -> None:
    t0 = datetime(2026, 12, 6, tzinfo=UTC)
    rounds = {
        f"r{i}": RoundJobs(t0 + timedelta(hours=i), expected=2, results={"a": 2, "b": 2})
        for i in range(6)
    }
    rounds["r6"] = RoundJobs(t0 + timedelta(hours=6), expected=2, results={"a": 2})  # running
    assert recent_rounds(rounds, quorum=2, window=3) == ["r3", "r4", "r5"]
    assert recent_rounds(rounds, quorum=3, window=3) == ["r0"]  # none complete: the first
    assert recent_rounds({"x": RoundJobs(t0, expected=1)}, quorum=1, window=5) == ["x"]


def fingerprinted(sid: int, policy: int, *, rounds: int = 1, per_round: int = 20) -> dict:
    """Episodes whose actions depend on the episode start and on ``policy`` only."""
    out = []
    for r in range(rounds):
        for i in range(per_round):
            rng = np.random.default_rng([policy, r, i])
            acts = rng.uniform(-1, 1, (60, 4)).tolist()
            out.append(
                EpisodeRecord(
                    sid,
                    VALIDATORS[i % 2],
                    f"c-r{r}",
                    "reach-v3",
                    i // 2,
                    True,
                    fingerprint=fp_encode(acts, 60),
                )
            )
    return by_key(out)


def test_a_later_submission_acting_the_same_is_a_copy_of_the_earliest() -> None:
    recs = {
        1: fingerprinted(1, policy=7),  # the author
        2: fingerprinted(2, policy=8),  # someone else
        3: fingerprinted(3, policy=7),  # same behaviour, another hash, committed later
        4: fingerprinted(4, policy=7),  # and a copy of the copy
    }
    order = {1: (10, 1), 2: (11, 2), 3: (12, 3), 4: (13, 4)}
    assert behavioural_copies(recs, order, CopyRules()) == {3: 1, 4: 1}
    # the author committed later than the copier: then the copier holds the original
    assert behavioural_copies(recs, {**order, 1: (20, 1)}, CopyRules()) == {1: 3, 4: 3}


def test_copies_need_enough_shared_fingerprinted_episodes() -> None:
    recs = {1: fingerprinted(1, 7, per_round=6), 2: fingerprinted(2, 7, per_round=6)}
    assert behavioural_copies(recs, {1: (1, 1), 2: (2, 2)}, CopyRules(min_episodes=10)) == {}
    assert behavioural_copies(recs, {1: (1, 1), 2: (2, 2)}, CopyRules(min_episodes=6)) == {2: 1}
    # episodes of different rounds never pair, however alike
    later = {(k[0], "c-r9", *k[2:]): v for k, v in recs[2].items()}
    assert behavioural_copies({1: recs[1], 2: later}, {1: (1, 1), 2: (2, 2)}, CopyRules(1)) == {}


def test_a_behavioural_copy_is_scored_as_a_copy_and_cannot_lead() -> None:
    cands = [
        Candidate(sid, f"hk{sid}", sid, sid, f"sha{sid}", {"j": [ValidatorResult("v", 30, 30)]}, 1)
        for sid in (1, 2)
    ]
    by = {
        s.submission_id: s
        for s in score(cands, quorum=1, band=1, min_success_rate=0, behaviour={2: 1})
    }
    assert (by[2].copy_of, by[2].copy_kind, by[2].eligible) == (1, "behaviour", False)
    assert (by[1].copy_of, by[1].eligible) == (None, True)


def test_nobody_committed_after_a_submission_in_its_first_evaluation_is_crowned() -> None:
    """A copy evaluated before its original must not take the crown meanwhile."""
    recs = {1: records(1, 1, 40, every(10, 0)), 2: records(2, 1, 40, every(10, 0))}
    scored = scored_of(recs)
    held = decide_leader(scored, None, crowning=RULES, episodes=recs, held={2})
    assert (held.leader, held.reason) == (1, "first_leader")
    nobody = decide_leader(scored_of({2: recs[2]}), None, crowning=RULES, episodes={}, held={2})
    assert nobody.leader is None
    sitting = decide_leader(scored, 1, crowning=RULES, episodes=recs, held={1, 2})
    assert sitting.leader == 1 and not sitting.changed  # a sitting leader is never held
