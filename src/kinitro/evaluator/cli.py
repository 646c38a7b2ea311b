"""`kinitro evaluator` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help=(
        "Evaluator: run queued jobs in sandboxes on Ray rollout workers against "
        "Meta-World benchmarks."
    ),
    no_args_is_help=True,
)
