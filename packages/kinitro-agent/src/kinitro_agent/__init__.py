"""Kinitro's agent side: the agent RPC codec and the runtime that serves it in the sandbox.

A distribution of its own (``kinitro-agent``, a uv workspace member of the repository)
because it is all of Kinitro that the agent environment holds. The sandbox binds only that
environment — this package, numpy and msgpack (plus a profile's extras such as a CPU
torch) — so a miner's code cannot import the simulator, Gymnasium, Meta-World or the
evaluator to rebuild its environment or compute rewards. The main ``kinitro`` package
depends on this one: the evaluator's client and the runtime share one codec.

* :mod:`kinitro_agent.rpc` — the codec (re-exported as ``kinitro.protocol.agent_rpc``).
* :mod:`kinitro_agent.runtime` — ``python -m kinitro_agent.runtime``: load a bundle, serve.

Nothing here imports ``kinitro`` (an import-linter contract checks it).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kinitro-agent")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
