"""Every leaderboard row but the leader's says why it is not eligible or not leading, and
what it would take (``kinitro.backend.explain``), in the order the rules apply."""

from __future__ import annotations

from typing import Any

import pytest

from kinitro.backend.explain import Rules, explain_board

RULES = Rules(
    min_success_rate=0.1, min_episodes=30, min_leader_score=0.0, confidence=0.95, min_shared=50
)
GOOD = {
    "eligible": True,
    "copy_of": None,
    "quorum": {"have": 2, "need": 2},
    "detail": {"complete": True},
    "success_rate": 0.8,
    "ci_low": 0.62,
    "episodes": 30,
}
LEADER = {"submission_id": 1, "success_rate": 0.9}


def _test(shared: int, wins: int, losses: int, p: float, worst: float, better: bool) -> Any:
    return {
        "shared_episodes": shared,
        "wins": wins,
        "losses": losses,
        "p_value": p,
        "worst_p_value": worst,
        "better": better,
    }


CASES: dict[str, tuple[dict[str, Any], Any, str, str | None]] = {
    "copy": (
        {"eligible": False, "copy_of": 4},
        LEADER,
        "copy of submission 4 (the same artifact, committed earlier): only the first "
        "commitment is credited",
        None,
    ),
    "behavioural-copy": (
        {"eligible": False, "copy_of": 4, "detail": {"copy_kind": "behaviour"}},
        LEADER,
        "behavioural copy of submission 4 (committed earlier): it takes the same actions on "
        "the same seeds, whatever its hash, and earns nothing",
        None,
    ),
    "quorum": (
        {"eligible": False, "quorum": {"have": 1, "need": 2}},
        LEADER,
        "awaiting quorum: 1 of 2 validators have reported on every job",
        None,
    ),
    "incomplete": (
        {"eligible": False, "detail": {"complete": False}},
        LEADER,
        "evaluation incomplete: not every job has results at quorum yet",
        None,
    ),
    "below-minimum": (
        {"eligible": False, "success_rate": 0.05},
        LEADER,
        "success rate 5% is below the competition's minimum 10%",
        None,
    ),
    "few-episodes": (
        {"episodes": 12},
        LEADER,
        "12 scored episodes; a leader needs at least 30",
        "18 more scored episodes (it is evaluated every round)",
    ),
    "low-bound": (
        {"ci_low": 0.0},
        None,
        "lower bound 0% is not above the minimum leader score 0%",
        "a 95% lower bound above 0%",
    ),
    "no-leader": ({}, None, "qualifies: becomes leader at the next scoring pass", None),
    "not-paired": (
        {"vs_leader": None},
        LEADER,
        "no episodes shared with the leader yet",
        "play the leader's seeds: the top challengers are evaluated with the leader every "
        "round, then win the paired test",
    ),
    "few-shared": (
        {"vs_leader": _test(20, 5, 1, 0.109, 1.0, False)},
        LEADER,
        "paired test vs the leader: +5 −1 on 20 shared episodes, p = 0.109; needs 50 shared "
        "episodes",
        "30 more shared episodes (more rounds), and p ≤ 0.05",
    ),
    "not-better": (
        {"vs_leader": _test(60, 5, 4, 0.5, 0.6, False)},
        LEADER,
        "not better than the leader on shared episodes (+5 −4 on 60 shared episodes, "
        "p = 0.500; needs p ≤ 0.05)",
        "succeed on more of the episodes the leader fails than the other way round",
    ),
    "one-round": (
        {"vs_leader": _test(60, 9, 1, 0.011, 0.2, False)},
        LEADER,
        "better only thanks to one round (+9 −1 on 60 shared episodes, p = 0.011; with a "
        "round left out p = 0.200)",
        "stay better with any one round left out",
    ),
    "beats": (
        {"vs_leader": _test(60, 12, 1, 0.002, 0.01, True)},
        LEADER,
        "beats the leader (+12 −1 on 60 shared episodes, p = 0.002): takes the lead at the "
        "next scoring pass",
        None,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reason_and_what_it_takes(name: str) -> None:
    change, leader, reason, to_lead = CASES[name]
    rows = [
        {**GOOD, "submission_id": 1, "is_leader": leader is not None},
        {**GOOD, "submission_id": 2, "is_leader": False, **change},
    ]
    explain_board(rows, RULES, leader)
    if leader is not None:
        assert (rows[0]["reason"], rows[0]["to_lead"]) == (None, None)
    assert (rows[1]["reason"], rows[1]["to_lead"]) == (reason, to_lead)


def test_admin_approval_is_named() -> None:
    rows = [{**GOOD, "submission_id": 2, "is_leader": False}]
    explain_board(rows, Rules(0.0, 1, 0.0, 0.95, 50, approval_mode="admin"), None)
    assert rows[0]["reason"] == "qualifies: an admin approves the leader"
