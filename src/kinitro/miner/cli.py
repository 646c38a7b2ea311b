"""`kinitro miner` commands."""

from __future__ import annotations

import typer

from kinitro.miner.eval_cmd import eval_command

app = typer.Typer(
    help="Miner tools: create, package, test, evaluate, upload and commit agent bundles.",
    no_args_is_help=True,
)

app.command("eval")(eval_command)
