"""Which runtime a submission is scored on (pure: kinitro.backend.runtimes)."""

from __future__ import annotations

from typing import Any

from kinitro.backend.runtimes import UNKNOWN, RuntimePolicy, one_runtime_per_submission
from kinitro.protocol.runtime import RuntimeVersions

POLICY = RuntimePolicy({"mujoco": ("3.3.0", "3.2.0")})
NEW = {"simulator": {"mujoco": "3.3.0"}, "benchmarks": {"metaworld": 3}}
OLD = {"simulator": {"mujoco": "3.2.0"}, "benchmarks": {"metaworld": 3}}


def _row(sub: int, job: str, runtime: dict[str, Any] | None) -> dict[str, Any]:
    key = None if runtime is None else runtime["simulator"]["mujoco"]
    return {"submission_id": sub, "job_id": job, "runtime": runtime, "runtime_key": key}


def test_preferred_runtime_wins_a_tie_and_groups_never_mix() -> None:
    rows = [_row(1, "j1", NEW), _row(1, "j1", OLD), _row(1, "j2", NEW), _row(1, "j2", OLD)]
    kept, chosen = one_runtime_per_submission(rows, POLICY, quorum=1)
    assert chosen == {1: "3.3.0"} and {r["runtime_key"] for r in kept} == {"3.3.0"}


def test_the_runtime_with_more_jobs_at_quorum_wins_during_an_upgrade() -> None:
    # two validators finished both jobs on the old runtime; one upgraded validator one job
    rows = [_row(1, j, OLD) for j in ("j1", "j1", "j2", "j2")] + [_row(1, "j1", NEW)]
    kept, chosen = one_runtime_per_submission(rows, POLICY, quorum=2)
    assert chosen == {1: "3.2.0"} and len(kept) == 4


def test_results_without_runtime_count_only_when_nothing_else_exists() -> None:
    legacy = [_row(1, j, None) for j in ("j1", "j2", "j3")]
    kept, chosen = one_runtime_per_submission([*legacy, _row(1, "j1", NEW)], POLICY, quorum=1)
    assert chosen == {1: "3.3.0"} and len(kept) == 1
    kept, chosen = one_runtime_per_submission([*legacy, _row(2, "j9", NEW)], POLICY, quorum=1)
    assert chosen == {1: UNKNOWN, 2: "3.3.0"} and len(kept) == 4


def test_policy_names_the_problem() -> None:
    assert POLICY.problem(RuntimeVersions(simulator={"mujoco": "3.2.0"}, benchmarks={})) is None
    assert POLICY.problem(RuntimeVersions(simulator={"mujoco": "3.1.0"}, benchmarks={})) == (
        "mujoco 3.1.0 is not accepted (this backend accepts 3.3.0 or 3.2.0)"
    )
