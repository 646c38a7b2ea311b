"""Kinitro: verifiable evaluation of untrusted embodied-AI agents for a Bittensor subnet.

Packages are split by role (see ``docs/architecture.md``):

* libraries: ``core`` (settings, logging, PostgreSQL helpers), ``protocol`` (wire
  messages, no I/O), ``chain`` (ChainClient port), ``storage`` (artifact and media
  stores), ``jobqueue`` (the validator database shared by validator and evaluator);
* roles (one process each): ``backend``, ``validator``, ``evaluator``, ``miner``,
  ``devnet``. Roles never import each other (import-linter enforces it).
"""

__version__ = "0.1.0"
