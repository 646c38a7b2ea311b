"""`kinitro devnet` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Run the whole network on this machine with embedded defaults.", no_args_is_help=True
)
