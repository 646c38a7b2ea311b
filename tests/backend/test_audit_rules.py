"""The audit's rules without I/O: which episodes are sampled, and what a replay must give."""

from __future__ import annotations

import random

from kinitro.backend.audits import judge, sample


def _ep(index: int, steps: int = 10, cause: str | None = None) -> dict[str, object]:
    return {"episode_index": index, "steps": steps, "failure_cause": cause}


def test_a_share_of_the_played_scored_episodes_at_least_one() -> None:
    episodes = [_ep(i) for i in range(20)] + [_ep(20, steps=0), _ep(21, cause="internal")]
    rng = random.Random(1)
    assert len(sample(episodes, 0.0, rng)) == 1
    assert len(sample(episodes, 0.1, rng)) == 2
    chosen = sample(episodes, 1.0, rng)
    assert sorted(int(e["episode_index"]) for e in chosen) == list(range(20))
    assert sample([_ep(0, steps=0)], 1.0, rng) == []
    # an agent's own fault is scored, so it is audited like any other episode
    assert sample([_ep(0, cause="agent_timeout")], 0.5, rng)


def test_a_replay_must_give_what_was_reported() -> None:
    reported = {"steps": 37, "total_reward": 236.84, "success": True}
    replayed = {"outcome": "replayed", "steps": 37, "total_reward": 236.84, "success": True}
    assert judge(reported, replayed) is None
    assert judge(reported, {**replayed, "total_reward": 236.84 * (1 + 1e-9)}) is None
    assert "32 steps" in str(judge(reported, {**replayed, "steps": 32}))
    assert "failed" in str(judge(reported, {**replayed, "success": False}))
    assert "returned" in str(judge(reported, {**replayed, "total_reward": 195.0}))
    assert judge(reported, {"outcome": "unreadable", "detail": "bad magic"}) == "bad magic"
