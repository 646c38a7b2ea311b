"""Agent environment profiles: what a bundle may ask for in ``kinitro.toml`` (``profile``).

Every profile is the ``base`` environment (this distribution, numpy, msgpack) plus the
hash-locked extras in ``packages/kinitro-agent/profiles/<name>.txt``; ``scripts/agent-env``
builds one. Validators build every profile; a miner's ``kinitro miner eval`` uses the same
ones. Sizes are what the environment takes on disk (Python 3.11, x86-64).
"""

from __future__ import annotations

from typing import Final

DEFAULT_PROFILE: Final = "base"

PROFILES: Final[dict[str, str]] = {
    "base": "numpy + msgpack (~60 MB)",
    "torch": "base + PyTorch 2.13.0, CPU build (~1 GB; no CUDA)",
}
"""Profile name → what it holds and its size on disk."""
