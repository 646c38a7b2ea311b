"""Host calibration: the factor that scales the agents' compute allowance on this host."""

from __future__ import annotations

from kinitro.evaluator.calibration import REFERENCE_S, calibrate, reference_workload


def test_the_factor_is_this_hosts_time_over_the_reference_and_never_below_one() -> None:
    result = calibrate(repeats=3)
    assert result.measured_s > 0 and result.reference_s == REFERENCE_S
    assert result.factor == max(1.0, round(result.measured_s / REFERENCE_S, 3))
    assert result.factor >= 1.0


def test_the_workload_grows_with_its_steps() -> None:
    short, long = reference_workload(100), reference_workload(2000)
    assert long > short
