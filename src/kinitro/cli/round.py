"""``kinitro round``: sealed evaluation rounds (docs/protocol.md, "Sealed rounds")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

from kinitro.core.errors import KinitroError

app = typer.Typer(help="Sealed evaluation rounds: check a revealed round.", no_args_is_help=True)
_err = Console(stderr=True)


@app.command("verify")
def verify_command(
    round_id: str = typer.Argument(..., help="The round id (GET /api/v1/rounds)."),
    backend: str = typer.Option(
        ..., "--backend", envvar="KINITRO_BACKEND_URL", help="Backend base URL."
    ),
    sample: int = typer.Option(
        3, "--sample", min=0, help="Episodes to re-simulate (drawn from the round secret)."
    ),
    committer: str | None = typer.Option(
        None, "--committer", help="Require the commitment to be this hotkey's (the subnet's)."
    ),
    chain: str | None = typer.Option(
        None, "--chain", help="local or bittensor (default: KINITRO_CHAIN_BACKEND, else local)."
    ),
    chain_url: str | None = typer.Option(None, "--chain-url", help="LocalChain service URL."),
    netuid: int | None = typer.Option(None, "--netuid", help="Subnet (default: chain settings)."),
    network: str | None = typer.Option(None, "--network", help="Bittensor network."),
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config ([chain])."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Verify a revealed round: its secret against the commitment on chain, every
    validator's and episode's seed, every published action log, and a replay of a sample.

    Exit code 0 only when everything holds; 1 when anything does not (each failure names
    its episode); 2 when the round cannot be checked (unknown, backend or chain down).
    """
    from kinitro.chain.settings import ChainSettings, open_chain  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.round_verify import verify_round  # noqa: PLC0415 - deferred: CLI start-up

    try:
        settings = ChainSettings.load(
            config, backend=chain, local_url=chain_url, netuid=netuid, network=network
        )
    except (KinitroError, ValueError) as exc:
        _err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None

    async def run() -> Any:
        client = open_chain(settings)
        try:
            async with httpx.AsyncClient(base_url=backend, timeout=30) as http:
                return await verify_round(
                    http, client, round_id, sample=sample, committer=committer
                )
        finally:
            await client.close()

    try:
        report = asyncio.run(run())
    except KinitroError as exc:
        _err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if json_output:
        typer.echo(json.dumps(report.to_dict()))
    else:
        out = Console()
        out.print(
            f"round {report.round_id}: commitment on chain "
            f"{'yes' if report.commitment_on_chain else 'NO'}, reveal matches "
            f"{'yes' if report.reveal_matches else 'NO'}; {report.episodes} episodes of "
            f"{len(report.validators)} validators, {report.logs_checked} action logs checked "
            f"({report.missing_logs} missing), {report.replayed} replayed",
            highlight=False,
        )
        for finding in report.findings:
            out.print(f"[red]FAIL[/] {finding}", highlight=False)
        out.print("[green]verified[/]" if report.ok else "[red]NOT verified[/]")
    if not report.ok:
        raise typer.Exit(1)
