"""`kinitro chain` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "Local chain (embedded devnet chain) and wallets: run it, register hotkeys, "
        "inspect commitments and weights."
    ),
    no_args_is_help=True,
)
