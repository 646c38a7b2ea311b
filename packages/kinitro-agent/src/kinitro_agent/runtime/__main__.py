"""``python -m kinitro_agent.runtime``: see :mod:`kinitro_agent.runtime`."""

from kinitro_agent.runtime.main import main

raise SystemExit(main())
