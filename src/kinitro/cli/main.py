"""Root ``kinitro`` Typer application."""

from __future__ import annotations

import typer

from kinitro import __version__
from kinitro.backend.cli import app as backend_app
from kinitro.chain.cli import app as chain_app
from kinitro.cli.db import app as db_app
from kinitro.cli.round import app as round_app
from kinitro.devnet.cli import app as devnet_app
from kinitro.devnet.cli import watch_command
from kinitro.evaluator.cli import app as evaluator_app
from kinitro.evaluator.cli import replay_command
from kinitro.miner.cli import app as miner_app
from kinitro.validator.cli import app as validator_app

app = typer.Typer(
    name="kinitro",
    help=(
        "Kinitro: evaluate untrusted embodied-AI agents in a sandbox and turn the results "
        "into verifiable scores and on-chain weights.\n\n"
        "Run the whole network on this machine with `kinitro devnet up`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(backend_app, name="backend")
app.add_typer(validator_app, name="validator")
app.add_typer(evaluator_app, name="evaluator")
app.add_typer(miner_app, name="miner")
app.add_typer(chain_app, name="chain")
app.add_typer(devnet_app, name="devnet")
app.add_typer(db_app, name="db")
app.add_typer(round_app, name="round")
app.command("watch")(watch_command)
app.command("replay")(replay_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kinitro {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Kinitro command line."""


def main() -> None:
    app()
