"""`kinitro devnet` commands and `kinitro watch`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console

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
    episodes: int = typer.Option(
        10,
        help="Episodes per task in the example competition (a leader needs all of them scored).",
    ),
    max_steps: int = typer.Option(150, help="Max steps per episode in the example competition."),
    round_seconds: int = typer.Option(
        120,
        "--round-seconds",
        min=10,
        help="Round length: a round's seeds are sealed until it ends, then revealed and "
        "verified (the summary's round_verified).",
    ),
    preset: list[str] = typer.Option(
        [],
        "--preset",
        help=(
            "Also create a competition from this preset (repeatable; e.g. generalization, "
            "vision), activated with force: a devnet computes no baselines."
        ),
    ),
) -> None:
    """Start PostgreSQL, LocalChain, the backend, two validators with their evaluators and
    three example miners; show live progress until the first weights are on chain, print the
    leaderboard and the weights, and keep running until Ctrl-C.

    Running it again on the same data directory resumes where it left off. Logs of every
    process are in DATA_DIR/logs.
    """
    from kinitro.devnet.up import UpOptions, run_up  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.presets import get_preset  # noqa: PLC0415 - deferred: CLI start-up

    for name in preset:
        try:
            get_preset(name)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--preset") from None
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
                round_seconds=round_seconds,
                presets=tuple(preset),
            )
        )
    )


def _devnet_backend_url(data_dir: Path) -> str | None:
    from kinitro.core.devnet_info import find_devnet  # noqa: PLC0415 - deferred: CLI start-up

    info = find_devnet(data_dir)
    return info.backend_url if info else None


@app.command("env")
def env_command(data_dir: Path = DATA_DIR) -> None:
    """Print shell exports pointing `kinitro chain|miner|watch` at this devnet.

    Use it as `eval "$(kinitro devnet env)"`: the chain URL and netuid, the devnet's
    wallets and artifact registry directories and the backend URL, for the `KINITRO_CHAIN_*`
    and `KINITRO_MINER_*` settings the miner guide uses. Exit code 1 when DATA_DIR holds
    no devnet.
    """
    from kinitro.devnet.env import devnet_exports  # noqa: PLC0415 - deferred: CLI start-up

    try:
        typer.echo(devnet_exports(data_dir))
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def status(
    data_dir: Path = DATA_DIR,
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show whether the devnet's processes are up and what the backend knows."""
    from kinitro.devnet.status import devnet_status, render_status  # noqa: PLC0415 - deferred: CLI start-up

    report = devnet_status(data_dir)
    if json_output:
        typer.echo(json.dumps(report))
    else:
        render_status(report)
    if not report.get("exists"):
        raise typer.Exit(1)


def watch_command(
    url: str | None = typer.Option(
        None,
        "--url",
        envvar="KINITRO_BACKEND_URL",
        help="Backend base URL (default: the devnet in --data-dir, else http://127.0.0.1:8000).",
    ),
    data_dir: Path = DATA_DIR,
    event: list[str] = typer.Option(
        [], "--event", "-e", help="Only these event types (repeatable; default: all)."
    ),
    competition: str | None = typer.Option(None, help="Only events of this competition."),
    miner: str | None = typer.Option(None, help="Only events about this miner hotkey."),
    job: str | None = typer.Option(None, help="Only events about this job id."),
    validator: str | None = typer.Option(None, help="Only events about this validator hotkey."),
    json_lines: bool = typer.Option(False, "--json", help="Print one JSON event per line."),
    max_events: int | None = typer.Option(None, help="Exit after this many events."),
    duration: float | None = typer.Option(None, help="Exit after this many seconds."),
) -> None:
    """Live terminal view of the realtime feed: jobs, episodes, leaderboard, weights."""

    from kinitro.devnet.watch import WatchOptions, watch  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.realtime import EventType  # noqa: PLC0415 - deferred: CLI start-up

    known = {e.value for e in EventType}
    unknown = [e for e in event if e not in known]
    if unknown:
        typer.echo(f"unknown event type(s): {', '.join(unknown)}; known: {sorted(known)}", err=True)
        raise typer.Exit(2)
    base = url or _devnet_backend_url(data_dir) or "http://127.0.0.1:8000"
    opts = WatchOptions(
        url=base,
        event_types=event,
        competition_id=competition,
        miner_hotkey=miner,
        job_id=job,
        validator_hotkey=validator,
        json_lines=json_lines,
        max_events=max_events,
        duration_s=duration,
    )
    console = Console(stderr=json_lines)
    try:
        raise typer.Exit(asyncio.run(watch(opts, console)))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
