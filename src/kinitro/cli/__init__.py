"""The ``kinitro`` command line: the composition root that wires roles together.

Every role exposes ``kinitro/<role>/cli.py`` with a Typer ``app``. Those modules import
only Typer/Rich at module level; heavy libraries (Ray, bittensor, SQLAlchemy, MuJoCo)
are imported inside commands so that ``kinitro --help`` stays fast.
"""
