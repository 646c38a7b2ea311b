"""Evaluator runtimes: which validators may connect, and which results may be combined.

A result is evidence only next to the simulator stack that produced it
(:mod:`kinitro.protocol.runtime`). The backend therefore

* **refuses incompatible validators** in the handshake (:func:`check_handshake`), in this
  order: a different ``protocol_version``; a full validator that states no runtime; a
  simulator package whose version is not accepted (:class:`RuntimePolicy`, from the
  ``accepted_simulators`` setting, by default this backend's own installed versions); a
  benchmark series (``-vN``) an active competition uses that the validator's evaluator
  does not run. Lite validators run no evaluator: only the protocol is checked for them.
* **refuses results from runtimes it does not accept** (:meth:`RuntimePolicy.problem`),
  so a validator cannot invent a runtime to score apart from everyone else;
* **scores each submission on exactly one runtime** (:func:`one_runtime_per_submission`):
  the known runtime with the most jobs at quorum, then the most preferred (the accepted
  versions in the order the operator lists them), then the most results. Results that
  carry no runtime (queued by an evaluator older than protocol 2, in flight across an
  upgrade) form their own group, used only when a submission has nothing else.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kinitro.core.runtime import local_runtime
from kinitro.protocol.common import PROTOCOL_VERSION
from kinitro.protocol.runtime import SIMULATOR_PACKAGES, RuntimeVersions, benchmark_series
from kinitro.protocol.validator_ws import AuthResponse

log = logging.getLogger(__name__)

UNKNOWN = ""
"""Runtime key of results stored without a runtime."""


@dataclass(frozen=True, slots=True)
class RuntimePolicy:
    """Accepted versions per simulator package, preferred first."""

    simulators: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_setting(cls, accepted: Mapping[str, Sequence[str]] | None) -> RuntimePolicy:
        """``accepted_simulators`` (package → versions); unset packages accept exactly this
        backend's own installed version."""
        own = local_runtime().simulator
        simulators: dict[str, tuple[str, ...]] = {}
        for package in SIMULATOR_PACKAGES:
            if accepted and package in accepted:
                simulators[package] = tuple(accepted[package])
            elif package in own:
                simulators[package] = (own[package],)
            else:
                log.warning("%s is not installed here and not configured: any version", package)
        return cls(simulators)

    def problem(self, runtime: RuntimeVersions) -> str | None:
        """Why ``runtime`` is not accepted, or None."""
        for package, versions in sorted(self.simulators.items()):
            have = runtime.simulator.get(package)
            if have is None:
                return f"{package} not reported (this backend requires {package} {_any(versions)})"
            if have not in versions:
                return f"{package} {have} is not accepted (this backend accepts {_any(versions)})"
        return None

    def rank(self, runtime: dict[str, Any] | None) -> int:
        """Lower is more preferred: the sum of each version's position in the accepted
        list; runtimes outside the policy rank last."""
        simulator = (runtime or {}).get("simulator") or {}
        total = 0
        for package, versions in self.simulators.items():
            if simulator.get(package) not in versions:
                return 1_000_000
            total += versions.index(simulator[package])
        return total


def _any(versions: Iterable[str]) -> str:
    return " or ".join(versions)


def peek_protocol_version(raw: str | bytes) -> int | None:
    """The ``protocol_version`` of a frame that did not parse (a newer or older peer)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    version = data.get("protocol_version") if isinstance(data, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def protocol_problem(version: int) -> str | None:
    if version == PROTOCOL_VERSION:
        return None
    return (
        f"validator speaks protocol {version}, this backend speaks {PROTOCOL_VERSION}: "
        "install the kinitro release that matches the backend"
    )


def check_handshake(
    auth: AuthResponse, policy: RuntimePolicy, series_in_use: Iterable[tuple[str, int]]
) -> str | None:
    """Why this validator may not connect (its close reason), or None."""
    problem = protocol_problem(auth.protocol_version)
    if problem or auth.lite:
        return problem
    if auth.runtime is None:
        return "validator states no evaluator runtime (protocol 2 requires it unless lite)"
    problem = policy.problem(auth.runtime)
    if problem:
        return f"evaluator runtime refused: {problem}"
    for provider, n in sorted(set(series_in_use)):
        if auth.runtime.benchmarks.get(provider) != n:
            runs = auth.runtime.benchmarks.get(provider)
            return (
                f"active competitions use {provider} benchmarks -v{n}; this validator's "
                f"evaluator runs {f'-v{runs}' if runs else f'no {provider} benchmarks'}"
            )
    return None


def series_of(competitions: Iterable[Mapping[str, Any]]) -> set[tuple[str, int]]:
    """Benchmark series (provider, N) used by these competitions."""
    out: set[tuple[str, int]] = set()
    for competition in competitions:
        for benchmark in competition.get("benchmarks") or []:
            series = benchmark_series(str(benchmark.get("benchmark_id", "")))
            if series is not None:
                out.add(series)
    return out


def one_runtime_per_submission(
    rows: Sequence[Mapping[str, Any]], policy: RuntimePolicy, *, quorum: int
) -> tuple[list[Mapping[str, Any]], dict[int, str]]:
    """Keep, per submission, only the results of one runtime (see the module docstring).

    ``rows`` carry ``submission_id``, ``job_id``, ``runtime`` and ``runtime_key``. Returns
    the kept rows and, per submission, the chosen runtime key (``""`` for unknown).
    """
    groups: dict[int, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[row["submission_id"]][row.get("runtime_key") or UNKNOWN].append(row)
    kept: list[Mapping[str, Any]] = []
    chosen: dict[int, str] = {}
    for submission_id, by_runtime in groups.items():
        best = max(sorted(by_runtime), key=lambda key: _order(key, by_runtime[key], policy, quorum))
        chosen[submission_id] = best
        kept.extend(by_runtime[best])
    return kept, chosen


def _order(
    key: str, results: list[Mapping[str, Any]], policy: RuntimePolicy, quorum: int
) -> tuple[bool, int, int, int]:
    per_job: dict[str, int] = defaultdict(int)
    for row in results:
        per_job[row["job_id"]] += 1
    at_quorum = sum(1 for n in per_job.values() if n >= max(1, quorum))
    return (key != UNKNOWN, at_quorum, -policy.rank(results[0].get("runtime")), len(results))
