"""Shared enums and models."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from kinitro.protocol.common import (
    ArtifactRef,
    BenchmarkSpec,
    FailureCause,
    JobState,
    TaskMetrics,
    UtcDatetime,
    wilson_interval,
)

SHA = "ab" * 32


def test_job_state_terminal() -> None:
    terminal = {s for s in JobState if s.is_terminal}
    assert terminal == {"completed", "failed", "timed_out", "cancelled"}


def test_failure_cause_split() -> None:
    agent = {c for c in FailureCause if c.is_agent_fault}
    assert agent == {
        "agent_timeout",
        "agent_crash",
        "invalid_action",
        "protocol_violation",
        "invalid_bundle",
    }
    assert all(c.is_retryable for c in FailureCause if c not in agent)


def test_artifact_hf_revision_must_be_pinned() -> None:
    with pytest.raises(ValidationError, match="40-hex"):
        ArtifactRef(registry="hf", repo="a/b", revision="main", sha256=SHA, size_bytes=1)
    ArtifactRef(registry="local", repo="a", revision="main", sha256=SHA, size_bytes=1)


def test_benchmark_spec_defaults() -> None:
    spec = BenchmarkSpec(
        benchmark_id="metaworld/MT10-v3", tasks=["reach-v3", "push-v3"], episodes_per_task=5
    )
    assert spec.max_steps == 500 and spec.observation_mode == "state"
    assert spec.total_episodes == 10
    with pytest.raises(ValidationError):
        BenchmarkSpec(benchmark_id="MT10", tasks=["reach-v3"], episodes_per_task=1)


@pytest.mark.parametrize(
    ("benchmark_id", "revealed"),
    [
        ("metaworld/MT10-v3", True),
        ("metaworld/MT1-reach-v3", True),
        ("metaworld/ML10-test-v3", False),
        ("metaworld/ML45-test-v3", False),
    ],
)
def test_task_names_are_hidden_by_default_for_meta_learning_test_sets(
    benchmark_id: str, revealed: bool
) -> None:
    body = {"benchmark_id": benchmark_id, "tasks": ["reach-v3"], "episodes_per_task": 1}
    for spec in (
        BenchmarkSpec.model_validate(body),
        BenchmarkSpec.model_validate({**body, "reveal_task_name": None}),
        BenchmarkSpec.model_validate_json(json.dumps(body), strict=True),  # as the codecs
    ):
        assert spec.reveal_task_name is revealed
        # the stored / sent form is explicit, so a later change of default changes nothing
        assert spec.model_dump()["reveal_task_name"] is revealed
    for explicit in (True, False):
        spec = BenchmarkSpec.model_validate({**body, "reveal_task_name": explicit})
        assert spec.reveal_task_name is explicit
    with pytest.raises(ValidationError):
        BenchmarkSpec.model_validate_json(
            json.dumps({**body, "reveal_task_name": "no"}), strict=True
        )


def test_task_metrics_consistency() -> None:
    with pytest.raises(ValidationError, match="successes"):
        TaskMetrics(
            episodes=2,
            successes=3,
            success_rate=1,
            ci_low=0,
            ci_high=1,
            mean_return=0,
            scored_episodes=2,
        )


def test_datetimes_are_aware_and_utc() -> None:
    class M(BaseModel):
        at: UtcDatetime

    local = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert M(at=local).at == local and M(at=local).at.tzinfo is UTC
    with pytest.raises(ValidationError):
        M(at=datetime(2026, 1, 1))


@given(st.integers(0, 500), st.integers(0, 500))
def test_wilson_interval_bounds(a: int, b: int) -> None:
    successes, trials = min(a, b), max(a, b)
    low, high = wilson_interval(successes, trials)
    assert 0 <= low <= high <= 1
    if trials:
        assert low <= successes / trials <= high


def test_wilson_known_value() -> None:
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
