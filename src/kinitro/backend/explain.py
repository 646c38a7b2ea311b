"""Why a leaderboard row stands where it does, in words, for the dashboard and `miner status`.

Pure (no I/O): the leaderboard route annotates each row with

* ``reason`` — why it is not eligible (a copy, awaiting quorum, an incomplete evaluation,
  below the competition's minimum) or, when eligible, why it does not lead (too few
  episodes or too low a lower bound to be crowned, or where its paired test against the
  leader stands); ``None`` for the leader;
* ``to_lead`` — what it would take to lead, when something would (``None`` otherwise).

The rules explained are :mod:`.scoring`'s (``eligible``, :class:`~.scoring.Crowning`,
``decide_leader``) and :mod:`.paired`'s test; keep them in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


@dataclass(frozen=True, slots=True)
class Rules:
    """What crowning and dethroning take in one competition (competition + settings)."""

    min_success_rate: float
    min_episodes: int
    min_leader_score: float
    confidence: float
    min_shared: int
    approval_mode: str = "auto"

    @classmethod
    def of(cls, competition: Mapping[str, Any], settings: Any) -> Rules:
        return cls(
            min_success_rate=float(competition.get("min_success_rate") or 0.0),
            min_episodes=int(competition.get("min_episodes") or 0),
            min_leader_score=float(competition.get("min_leader_score") or 0.0),
            confidence=float(settings.dethrone_confidence),
            min_shared=int(settings.dethrone_min_shared),
            approval_mode=str(competition.get("approval_mode") or "auto"),
        )


def not_eligible_reason(row: Mapping[str, Any], rules: Rules) -> str | None:
    """Why a scored submission is not eligible (``None`` if it is)."""
    if row.get("eligible"):
        return None
    if row.get("copy_of") is not None:
        if (row.get("detail") or {}).get("copy_kind") == "behaviour":
            return (
                f"behavioural copy of submission {row['copy_of']} (committed earlier): it "
                "takes the same actions on the same seeds, whatever its hash, and earns nothing"
            )
        return (
            f"copy of submission {row['copy_of']} (the same artifact, committed earlier): "
            "only the first commitment is credited"
        )
    quorum = row.get("quorum") or {}
    if quorum and quorum.get("have", 0) < quorum.get("need", 1):
        return (
            f"awaiting quorum: {quorum.get('have', 0)} of {quorum.get('need', 1)} validators "
            "have reported on every job"
        )
    if not (row.get("detail") or {}).get("complete", True):
        return "evaluation incomplete: not every job has results at quorum yet"
    if float(row.get("success_rate") or 0.0) < rules.min_success_rate:
        return (
            f"success rate {_pct(row.get('success_rate') or 0.0)} is below the competition's "
            f"minimum {_pct(rules.min_success_rate)}"
        )
    return "not eligible"


def _crowning_gap(row: Mapping[str, Any], rules: Rules) -> tuple[str, str] | None:
    """(reason, to_lead) when an eligible row cannot be crowned yet."""
    episodes = int(row.get("episodes") or 0)
    if episodes < rules.min_episodes:
        return (
            f"{episodes} scored episodes; a leader needs at least {rules.min_episodes}",
            f"{rules.min_episodes - episodes} more scored episodes (it is evaluated every round)",
        )
    if float(row.get("ci_low") or 0.0) <= rules.min_leader_score:
        return (
            f"lower bound {_pct(row.get('ci_low') or 0.0)} is not above the minimum leader "
            f"score {_pct(rules.min_leader_score)}",
            f"a 95% lower bound above {_pct(rules.min_leader_score)}",
        )
    return None


def _versus_leader(test: Mapping[str, Any] | None, rules: Rules) -> tuple[str, str]:
    """(reason, to_lead) of a qualified challenger from its paired test (or its absence)."""
    alpha = 1.0 - rules.confidence
    if not test or not test.get("shared_episodes"):
        return (
            "no episodes shared with the leader yet",
            "play the leader's seeds: the top challengers are evaluated with the leader every "
            "round, then win the paired test",
        )
    shared, wins, losses = test["shared_episodes"], test.get("wins", 0), test.get("losses", 0)
    tally = f"+{wins} −{losses} on {shared} shared episodes, p = {test.get('p_value', 1):.3f}"
    if test.get("better"):
        return (f"beats the leader ({tally}): takes the lead at the next scoring pass", "")
    if shared < rules.min_shared:
        return (
            f"paired test vs the leader: {tally}; needs {rules.min_shared} shared episodes",
            f"{rules.min_shared - shared} more shared episodes (more rounds), and p ≤ {alpha:.2f}",
        )
    if float(test.get("p_value", 1.0)) > alpha:
        return (
            f"not better than the leader on shared episodes ({tally}; needs p ≤ {alpha:.2f})",
            "succeed on more of the episodes the leader fails than the other way round",
        )
    return (
        f"better only thanks to one round ({tally}; with a round left out "
        f"p = {test.get('worst_p_value', 1):.3f})",
        "stay better with any one round left out",
    )


def explain_board(
    rows: list[dict[str, Any]], rules: Rules, leader: Mapping[str, Any] | None
) -> None:
    """Annotate ``rows`` in place with ``reason`` and ``to_lead``."""
    for row in rows:
        row["reason"], row["to_lead"] = None, None
        if row.get("is_leader"):
            continue
        not_eligible = not_eligible_reason(row, rules)
        if not_eligible is not None:
            row["reason"] = not_eligible
            continue
        gap = _crowning_gap(row, rules)
        if gap is None and leader is None:
            gap = (
                "qualifies: an admin approves the leader"
                if rules.approval_mode == "admin"
                else "qualifies: becomes leader at the next scoring pass",
                "",
            )
        if gap is None:
            gap = _versus_leader(row.get("vs_leader"), rules)
        row["reason"], row["to_lead"] = gap[0], gap[1] or None


def explained_board(
    rows: list[dict[str, Any]], rules: Rules, leader: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Leaderboard rows (as ``repo_scoring.leaderboard`` + ``quorum.annotate_board`` give
    them) with ``is_leader``, ``vs_leader``, ``reason`` and ``to_lead``: what the
    leaderboard route and the realtime snapshot show."""
    for row in rows:
        row["is_leader"] = leader is not None and row["submission_id"] == leader["submission_id"]
        row["vs_leader"] = (row.get("detail") or {}).get("vs_leader")
    explain_board(rows, rules, leader)
    return rows
