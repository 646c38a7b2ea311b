"""``python -m kinitro.miner.runtime``: see :mod:`kinitro.miner.runtime`."""

from kinitro.miner.runtime.main import main

raise SystemExit(main())
