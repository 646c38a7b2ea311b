"""`kinitro miner` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Miner tools: create, package, test, evaluate, upload and commit agent bundles.",
    no_args_is_help=True,
)
