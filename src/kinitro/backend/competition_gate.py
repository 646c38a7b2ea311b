"""Activation gate: a competition a scripted expert would own is not activated unless forced.

Meta-World ships a hand-written expert for every task; a bundle that looks it up by task
name is a lookup table, not a robot policy. A competition with a ``max_expert_baseline``
is refused activation (``409``) while its stored expert baseline exceeds the limit, or
while it has no baselines for its current benchmarks; an admin can override with
``force=true``. Pure rules, no I/O: the admin routes call :func:`activation_problem` with
the competition as it would be after the change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from kinitro.protocol.baselines import Baselines, baseline_fingerprint
from kinitro.protocol.common import BenchmarkSpec

_SPECS = TypeAdapter(list[BenchmarkSpec])


def fingerprint_of(benchmarks: Any) -> str:
    """:func:`baseline_fingerprint` of stored benchmark dicts."""
    return baseline_fingerprint(_SPECS.validate_python(benchmarks))


def activation_problem(competition: Mapping[str, Any]) -> str | None:
    """Why ``competition`` must not be active (``None`` when it may be)."""
    limit = competition.get("max_expert_baseline")
    if limit is None:
        return None
    cid = competition["id"]
    how = (
        f"compute them with `kinitro evaluator baselines {cid} --backend URL --upload`, "
        "or pass force=true"
    )
    raw = competition.get("baselines")
    if raw is None:
        return f"competition {cid!r} has max_expert_baseline {limit} but no baselines: {how}"
    try:
        baselines = Baselines.model_validate(raw)
    except ValidationError:
        return f"competition {cid!r} has unreadable baselines: {how}"
    if baselines.fingerprint != fingerprint_of(competition["benchmarks"]):
        return f"the baselines of {cid!r} were computed for other benchmarks: {how}"
    expert = baselines.expert
    if expert is None:
        return f"the baselines of {cid!r} have no expert score: {how}"
    if expert > limit:
        return (
            f"the scripted-expert baseline of {cid!r} is {expert:.3f}, above its "
            f"max_expert_baseline {limit}: a bundle that looks up Meta-World's expert "
            "policies would own it. Add knobs (hidden goal, noise, delay, held-out tasks), "
            "raise the limit, or pass force=true"
        )
    return None
