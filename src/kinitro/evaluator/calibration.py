"""Host calibration: how much slower than the reference host this one runs an agent.

The agent's compute budget and call deadlines are wall time on whatever host runs the
job, so a slow (or loaded) validator would charge miners for its own slowness. When the
evaluator starts it times a reference workload shaped like a policy's step — a small MLP
forward pass on a state vector, in float32, in this process — and divides the median
by :data:`REFERENCE_S`, the same workload's time on the reference host. The factor (never
below 1: a faster host gives no less than the benchmark allows) scales the per-step
allowance and the call deadlines, and is reported with every result
(``EvalMetrics.compute.host_factor``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

REFERENCE_S = 0.030
"""The reference workload's median time on the reference host (the 2-core development
VM, under a typical load)."""
STEPS = 2000
"""Forward passes per timing (~30 ms on the reference host)."""
MAX_FACTOR = 1000.0


@dataclass(frozen=True, slots=True)
class HostCalibration:
    factor: float
    measured_s: float
    reference_s: float = REFERENCE_S


def reference_workload(steps: int = STEPS) -> float:
    """Seconds for ``steps`` forward passes of a 39 → 256 → 256 → 4 tanh MLP."""
    rng = np.random.default_rng(0)
    layers = [
        rng.standard_normal(shape).astype(np.float32) * 0.1
        for shape in ((39, 256), (256, 256), (256, 4))
    ]
    x = rng.standard_normal(39).astype(np.float32)
    started = time.perf_counter()
    for _ in range(steps):
        h = x
        for w in layers:
            h = np.tanh(h @ w)
        x[0] = h[0]  # a data dependency: no pass can be skipped
    return time.perf_counter() - started


def calibrate(repeats: int = 5) -> HostCalibration:
    """Time the reference workload ``repeats`` times (after one warm-up run)."""
    reference_workload(STEPS // 10)
    measured = statistics.median(reference_workload() for _ in range(repeats))
    factor = min(MAX_FACTOR, max(1.0, measured / REFERENCE_S))
    return HostCalibration(factor=round(factor, 3), measured_s=measured)
