"""`kinitro devnet` commands and `kinitro watch`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Run the whole network on this machine with embedded defaults.",
    no_args_is_help=True,
)

DATA_DIR = typer.Option(
    Path(".kinitro/devnet"),
    "--data-dir",
    envvar="KINITRO_DEVNET_DIR",
    help="Where the devnet keeps its databases, chain, wallets, bundles and logs.",
)


@app.command()
def up(
    data_dir: Path = DATA_DIR,
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        envvar="KINITRO_DEVNET_DATABASE_URL",
        help="Admin URL of an existing PostgreSQL (default: a private cluster in DATA_DIR).",
    ),
    exit_after_weights: bool = typer.Option(
        False, "--exit-after-weights", help="Stop everything once the first weights are on chain."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print a machine-readable summary on stdout (progress on stderr)."
    ),
    timeout: float = typer.Option(900.0, help="Give up if no weights are on chain after this."),
    episodes: int = typer.Option(3, help="Episodes per task in the example competition."),
    max_steps: int = typer.Option(150, help="Max steps per episode in the example competition."),
) -> None:
    """Start PostgreSQL, LocalChain, the backend, two validators with their evaluators and
    three example miners; show live progress until the first weights are on chain, print the
    leaderboard and the weights, and keep running until Ctrl-C.

    Running it again on the same data directory resumes where it left off. Logs of every
    process are in DATA_DIR/logs.
    """
    from kinitro.devnet.up import UpOptions, run_up

    raise typer.Exit(
        run_up(
            UpOptions(
                data_dir=data_dir,
                database_url=database_url,
                exit_after_weights=exit_after_weights,
                json_output=json_output,
                timeout_s=timeout,
                episodes_per_task=episodes,
                max_steps=max_steps,
            )
        )
    )
