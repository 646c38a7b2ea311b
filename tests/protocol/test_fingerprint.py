"""Action fingerprints: stable under float jitter, different for another policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kinitro.protocol import fingerprint as fp
from kinitro.protocol.validator_ws import Episode


def actions(seed: int, steps: int = 150, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, dim)).astype(np.float32)


def test_round_trip_and_size() -> None:
    a = actions(1)
    text = fp.encode(a.tolist(), max_steps=150)
    assert text is not None and text.startswith("af1:5:4:") and len(text) <= 330
    decoded = fp.decode(text)
    assert decoded is not None and (decoded.stride, decoded.dim, decoded.samples) == (5, 4, 30)
    assert decoded.values[:4] == pytest.approx(a[0].tolist(), abs=1e-3)


def test_the_same_agent_matches_another_does_not() -> None:
    a = actions(1)
    same = fp.decode(fp.encode(a.tolist(), 150) or "")
    jitter = fp.decode(fp.encode((a + 1e-4).tolist(), 150) or "")
    other = fp.decode(fp.encode(actions(2).tolist(), 150) or "")
    shorter = fp.decode(fp.encode(a[:60].tolist(), 150) or "")
    assert same and jitter and other and shorter
    assert fp.matches(same, jitter, tolerance=0.01)
    assert not fp.matches(same, other, tolerance=0.01)
    assert not fp.matches(same, shorter, tolerance=0.01)  # ended much earlier: not the same


@pytest.mark.parametrize("text", ["", "af2:5:4:AAAA", "af1:5:0:", "af1:x:4:AAAA", "af1:5:3:AAAA"])
def test_malformed_or_unknown_versions_are_ignored(text: str) -> None:
    assert fp.decode(text) is None


def test_nan_and_huge_actions_still_encode() -> None:
    text = fp.encode([[math.nan, 1e9, -1e9, 0.5]], max_steps=10)
    decoded = fp.decode(text or "")
    assert decoded is not None and decoded.values == (0.0, 65504.0, -65504.0, 0.5)


def test_the_episode_message_carries_it_optionally() -> None:
    text = fp.encode(actions(3).tolist(), 150)
    base = dict(
        job_id="j",
        episode_index=0,
        task="reach-v3",
        task_episode=0,
        seed=1,
        success=True,
        total_reward=1.0,
        steps=150,
        terminated=True,
        truncated=False,
        duration_s=0.1,
    )
    assert Episode(**base).action_fingerprint is None  # older evaluators send none
    assert Episode(**base, action_fingerprint=text).action_fingerprint == text
    with pytest.raises(ValueError):
        Episode(**base, action_fingerprint="x" * 3000)
