"""The agent compute budget of a job, as reported with its result.

Every job gives the miner's agent a budget of agent time (wall time the rollout workers
spend waiting for the agent: ``reset``, ``act``, ``act_batch``): the benchmark's per-step
allowance (:data:`DEFAULT_STEP_ALLOWANCE_MS` unless the competition sets
``BenchmarkSpec.agent_step_allowance_ms``) × the evaluating host's calibration factor × the
job's planned steps (episodes × ``max_steps``). An agent that exhausts it fails its
remaining episodes as ``agent_timeout`` (scored), so a slow agent cannot hold a validator
for the whole job deadline at no cost. The factor (≥ 1) comes from timing a reference
workload when the evaluator starts: a slower host gives every agent proportionally more
time, and a deadline reached with the agent within its budget is the host's fault
(``host_timeout``), never the miner's.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from kinitro.protocol.wire import WireModel

DEFAULT_STEP_ALLOWANCE_MS: Final = 50.0
"""Agent time per planned step on the reference host (a policy takes ~0.1–5 ms)."""

Seconds = Annotated[float, Field(ge=0.0)]


class ComputeReport(WireModel):
    """What a job's agent was allowed and what it used (``EvalMetrics.compute``)."""

    step_allowance_s: Annotated[float, Field(gt=0.0)]
    """Per planned step, on this host (the benchmark's allowance × ``host_factor``)."""
    host_factor: Annotated[float, Field(ge=1.0, le=1000.0)]
    """The evaluating host's calibration: its time for the reference workload over the
    reference host's (never below 1)."""
    budget_s: Seconds
    """``step_allowance_s`` × the job's planned steps."""
    used_s: Seconds
    """Agent time the job's episodes took."""


def job_budget_s(step_allowance_s: float, episodes: int, max_steps: int) -> float:
    """The agent time a job of ``episodes`` × ``max_steps`` planned steps may use."""
    return step_allowance_s * episodes * max_steps
