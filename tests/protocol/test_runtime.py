"""Evaluator runtime versions: canonical key, benchmark series parsing, strict fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kinitro.protocol.runtime import BENCHMARK_SERIES, RuntimeVersions, benchmark_series


def test_key_is_canonical_whatever_the_order() -> None:
    a = RuntimeVersions(
        simulator={"mujoco": "3.3.0", "gymnasium": "1.2.0"}, benchmarks={"metaworld": 3}
    )
    b = RuntimeVersions(
        simulator={"gymnasium": "1.2.0", "mujoco": "3.3.0"}, benchmarks={"metaworld": 3}
    )
    assert a.key == b.key == "gymnasium==1.2.0 mujoco==3.3.0 metaworld-v3"
    assert a.model_copy(update={"benchmarks": {"metaworld": 4}}).key != a.key


def test_benchmark_series() -> None:
    assert benchmark_series("metaworld/MT10-v3") == ("metaworld", 3)
    assert benchmark_series("metaworld/MT1-reach-v3") == ("metaworld", 3)
    assert benchmark_series("metaworld/MT10") is None
    assert set(BENCHMARK_SERIES) == {"metaworld"}


@pytest.mark.parametrize(
    "bad",
    [
        {"simulator": {"mujoco": "3.3.0 ; rm -rf"}, "benchmarks": {}},
        {"simulator": {"Mu Joco": "1"}, "benchmarks": {}},
        {"simulator": {}, "benchmarks": {"metaworld": 0}},
        {"simulator": {f"p{i}": "1" for i in range(17)}, "benchmarks": {}},
    ],
)
def test_untrusted_runtime_fields_are_constrained(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RuntimeVersions.model_validate(bad)
