"""`kinitro validator` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "Validator node: receive jobs over WebSocket, queue them durably, forward "
        "results, set weights."
    ),
    no_args_is_help=True,
)
