"""Evaluator runtime versions on the wire: what decides whether two results are comparable.

A success rate means something only next to the physics and the tasks that produced it. A
MuJoCo or Meta-World release can move an object's initial position or a contact by a
hair and change which episodes succeed; a benchmark's ``-vN`` suffix is bumped whenever
our own change could change scores. So every evaluator states, once in the validator
handshake (``auth_response.runtime``) and again with every result
(``eval_result.runtime``):

* ``simulator`` — the installed versions of the simulator stack
  (:data:`SIMULATOR_PACKAGES`: gymnasium, metaworld, mujoco);
* ``benchmarks`` — per benchmark provider, the ``N`` of the ``-vN`` benchmark ids it
  evaluates (:data:`BENCHMARK_SERIES` for this release).

The backend refuses validators whose runtime it does not accept and never combines
results of different runtimes (:attr:`RuntimeVersions.key`) in one score. Plain data, no
I/O: ``kinitro.core.runtime`` reads the installed versions.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import Field, StringConstraints

from kinitro.protocol.common import WireModel

SIMULATOR_PACKAGES: Final = ("gymnasium", "metaworld", "mujoco")
"""Distributions whose version can change an episode's outcome."""

BENCHMARK_SERIES: Final[dict[str, int]] = {"metaworld": 3}
"""Provider → the ``N`` of the ``-vN`` benchmark ids this release evaluates."""

PackageName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
PackageVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.+!_-]{0,63}$")]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]

_BENCHMARK_ID = re.compile(r"^(?P<provider>[a-z0-9][a-z0-9_-]*)/.+-v(?P<n>[0-9]+)$")


class RuntimeVersions(WireModel):
    """The simulator stack and benchmark series one evaluator runs."""

    simulator: Annotated[dict[PackageName, PackageVersion], Field(max_length=16)]
    benchmarks: Annotated[dict[ProviderName, Annotated[int, Field(ge=1)]], Field(max_length=16)]

    @property
    def key(self) -> str:
        """Canonical text: equal keys ⇔ comparable results, e.g.
        ``gymnasium==1.2.0 metaworld==3.0.0 mujoco==3.3.5 metaworld-v3``."""
        packages = [f"{name}=={self.simulator[name]}" for name in sorted(self.simulator)]
        series = [f"{name}-v{self.benchmarks[name]}" for name in sorted(self.benchmarks)]
        return " ".join(packages + series)


def benchmark_series(benchmark_id: str) -> tuple[str, int] | None:
    """``metaworld/MT10-v3`` → ``("metaworld", 3)``; None when the id has no ``-vN``."""
    match = _BENCHMARK_ID.match(benchmark_id)
    return (match["provider"], int(match["n"])) if match else None
