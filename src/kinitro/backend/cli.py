"""`kinitro backend` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "Backend service: REST + admin API, validator and realtime WebSockets, chain "
        "monitor, scheduler, scoring."
    ),
    no_args_is_help=True,
)
