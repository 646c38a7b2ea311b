"""LocalChain: the embedded devnet chain (state + service) and its client adapter."""

from kinitro.chain.local.client import DEFAULT_URL, LocalChain
from kinitro.chain.local.state import ChainRules

__all__ = ["DEFAULT_URL", "ChainRules", "LocalChain"]
