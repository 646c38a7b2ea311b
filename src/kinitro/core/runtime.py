"""This process's evaluator runtime: the installed simulator stack and benchmark series.

Read from the installed distributions' metadata (never by importing MuJoCo, which takes a
second and initialises a GL backend), so a validator can state its runtime in the
handshake and the backend can know its own default without loading any simulator. A
package that is not installed is simply absent from ``simulator``; the backend refuses a
runtime that lacks a package it requires.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from kinitro.protocol.runtime import BENCHMARK_SERIES, SIMULATOR_PACKAGES, RuntimeVersions


@functools.cache
def local_runtime() -> RuntimeVersions:
    """The runtime of this Python environment (cached: it cannot change while running)."""
    simulator: dict[str, str] = {}
    for name in SIMULATOR_PACKAGES:
        try:
            simulator[name] = version(name)
        except PackageNotFoundError:
            continue
    return RuntimeVersions(simulator=simulator, benchmarks=dict(BENCHMARK_SERIES))
