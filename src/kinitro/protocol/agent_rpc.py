"""The agent RPC codec, as the roles see it: :mod:`kinitro_agent.rpc` under its protocol name.

The codec lives in the ``kinitro-agent`` distribution because the sandbox's agent
environment must carry it without the rest of Kinitro (see :mod:`kinitro_agent`). Roles
keep meeting in ``kinitro.protocol``: this module re-exports that package unchanged, so the
evaluator's client and the agent runtime share one codec. The specification is
``docs/agent-rpc.md``.
"""

from kinitro_agent.rpc import *  # noqa: F403 - the re-export is this module's purpose
from kinitro_agent.rpc import __all__ as __all__
