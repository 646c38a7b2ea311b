"""`kinitro validator` commands: ``run`` (the node) and ``status``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kinitro import __version__
from kinitro.core.errors import ConfigError, KinitroError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from kinitro.chain.settings import ChainSettings
    from kinitro.jobqueue import JobQueue
    from kinitro.jobqueue.ports import NodeStatus
    from kinitro.validator.settings import Settings

app = typer.Typer(
    help=(
        "Validator node: receive jobs over WebSocket, queue them durably, forward "
        "results, set weights."
    ),
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)

ConfigOpt = typer.Option(
    None, "--config", help="TOML config file (sections \\[validator] and \\[chain])."
)
DbOpt = typer.Option(
    None,
    "--database-url",
    help="Validator PostgreSQL URL, shared with the evaluator "
    "(env KINITRO_VALIDATOR_DATABASE_URL).",
)


EXIT_INCOMPATIBLE = 78
"""``run`` exits with this code (EX_CONFIG) when the backend refuses this release: a
restart cannot help (the systemd unit sets ``RestartPreventExitStatus=78``)."""


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}", markup=True, highlight=False)
    return typer.Exit(code)


def _settings_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "invalid settings: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<settings>'}: {e['msg']}" for e in errors()
        )
    return str(exc)


def _load(config: Path | None, **overrides: Any) -> Settings:
    from kinitro.validator.settings import Settings  # noqa: PLC0415 - deferred: CLI start-up

    try:
        return Settings.load(config, **overrides)
    except (KinitroError, ValueError) as exc:
        raise _fail(_settings_error(exc)) from None


def _chain_settings(config: Path | None, **overrides: Any) -> ChainSettings:
    from kinitro.chain.settings import ChainSettings  # noqa: PLC0415 - deferred: CLI start-up

    try:
        return ChainSettings.load(config, **overrides)
    except (KinitroError, ValueError) as exc:
        raise _fail(_settings_error(exc)) from None


@app.command()
def run(
    config: Path | None = ConfigOpt,
    backend_url: str | None = typer.Option(
        None, "--backend-url", help="Backend WebSocket (default ws://127.0.0.1:8000/ws/validator)."
    ),
    database_url: str | None = DbOpt,
    lite: bool | None = typer.Option(
        None, "--lite/--full", help="Lite: only follow and set weights, run no evaluation."
    ),
    wallet: str | None = typer.Option(None, "--wallet", "-w", help="Wallet name."),
    hotkey: str | None = typer.Option(None, "--hotkey", "-k", help="Hotkey name in the wallet."),
    wallet_path: Path | None = typer.Option(None, "--wallet-path", help="Wallets directory."),
    chain: str | None = typer.Option(
        None, "--chain", help="Chain adapter: local (LocalChain service) or bittensor."
    ),
    chain_url: str | None = typer.Option(None, "--chain-url", help="LocalChain URL."),
    netuid: int | None = typer.Option(None, "--netuid", help="Subnet id."),
    migrate: bool = typer.Option(
        False, "--migrate", help="Upgrade the validator database schema before starting."
    ),
    no_weights: bool = typer.Option(
        False, "--no-weights", help="Do not set weights on chain (store them only)."
    ),
    log_level: str = typer.Option("INFO", "--log-level", help="Logging level."),
) -> None:
    """Run the validator node until interrupted (Ctrl-C / SIGTERM).

    Connects to the backend, authenticates with the hotkey, stores incoming jobs in the
    validator database (pgqueuer) for `kinitro evaluator run`, forwards its results, and
    sets the backend's weights on chain. Reconnects forever with jittered backoff, except
    when the backend refuses this release (protocol or simulator versions): then it
    prints the backend's reason and exits with code 78.
    """
    from kinitro.core.logging import configure_logging  # noqa: PLC0415 - deferred: CLI start-up

    settings = _load(config, backend_url=backend_url, database_url=database_url, lite=lite)
    chain_settings = _chain_settings(
        config, wallet_name=wallet, hotkey=hotkey, wallet_path=wallet_path,
        local_url=chain_url, netuid=netuid, backend=chain,
    )  # fmt: skip
    if not settings.database_url:
        raise _fail("no database URL: pass --database-url or set KINITRO_VALIDATOR_DATABASE_URL")
    configure_logging(log_level)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(settings, chain_settings, migrate=migrate, set_weights=not no_weights))


async def _run(
    settings: Settings, chain_settings: ChainSettings, *, migrate: bool, set_weights: bool
) -> None:
    from kinitro.chain.errors import WalletError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.settings import open_chain  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.wallets import load_hotkey  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.core.db import safe_url  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.jobqueue import JobQueue, SchemaNotReadyError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.common import PROTOCOL_VERSION  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.validator.errors import IncompatibleError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.validator.node import ValidatorNode  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.validator.weights import WeightSetter  # noqa: PLC0415 - deferred: CLI start-up

    assert settings.database_url
    try:
        keypair = load_hotkey(
            chain_settings.wallet_name, chain_settings.hotkey, chain_settings.wallet_path
        )
    except WalletError as exc:
        raise _fail(str(exc)) from None
    if migrate:
        from kinitro.core import migrations  # noqa: PLC0415 - deferred: CLI start-up
        from kinitro.jobqueue.models import MIGRATION_TREE  # noqa: PLC0415 - deferred: CLI start-up

        await asyncio.to_thread(migrations.upgrade, MIGRATION_TREE, settings.database_url)
    jq = JobQueue.connect(settings.database_url)
    chain = open_chain(chain_settings) if set_weights else None
    try:
        try:
            await jq.check_schema()
        except SchemaNotReadyError as exc:
            raise _fail(f"{exc} ({safe_url(settings.database_url)})") from None
        except OSError as exc:
            raise _fail(f"cannot reach {safe_url(settings.database_url)}: {exc}") from None
        setter = (
            WeightSetter(
                jq,
                chain,
                keypair,
                rate_limit_blocks=settings.weights_rate_limit_blocks,
                interval_blocks=settings.weights_interval_blocks,
                version_key=settings.weights_version_key,
                max_attempts=settings.weights_max_attempts,
                retry_s=settings.weights_retry_s,
                block_time_s=settings.block_time_s,
            )
            if chain is not None
            else None
        )
        node = ValidatorNode(settings, jq, keypair, weight_setter=setter)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, node.stop)
        try:
            async with _metrics(settings, jq):
                await node.run()
        except IncompatibleError as exc:
            from kinitro.core.runtime import local_runtime  # noqa: PLC0415 - deferred: CLI start-up

            raise _fail(
                f"the backend refuses this validator: {exc}\n"
                f"this validator: kinitro {__version__}, protocol {PROTOCOL_VERSION}, "
                f"evaluator runtime {local_runtime().key}",
                EXIT_INCOMPATIBLE,
            ) from None
    finally:
        if chain is not None:
            await chain.close()
        await jq.close()


@contextlib.asynccontextmanager
async def _metrics(settings: Settings, jq: NodeStatus) -> AsyncIterator[None]:
    """Serve Prometheus metrics while the node runs (when ``metrics_port`` is set)."""
    if settings.metrics_port is None:
        yield
        return

    from kinitro.core.prometheus import MetricsServer  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.validator.prometheus import ValidatorMetrics  # noqa: PLC0415 - deferred: CLI start-up

    metrics = ValidatorMetrics(stale_after_s=STALE_AFTER_S)
    try:
        server = MetricsServer(
            metrics.registry,
            host=settings.metrics_host,
            port=settings.metrics_port,
            path=settings.metrics_path,
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    logging.getLogger(__name__).info("serving metrics", extra={"url": server.url})
    task = asyncio.create_task(metrics.refresh_forever(jq, settings.metrics_interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()


@app.command()
def status(
    config: Path | None = ConfigOpt,
    database_url: str | None = DbOpt,
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Show the connection, queue depths, jobs in flight and the last weights set.

    Reads the validator database, so it works whether or not `validator run` is alive.
    """
    settings = _load(config, database_url=database_url)
    if not settings.database_url:
        raise _fail("no database URL: pass --database-url or set KINITRO_VALIDATOR_DATABASE_URL")
    data = asyncio.run(_status(settings.database_url))
    data["connection"]["effective_state"] = _connection_state(data["connection"])
    if as_json:
        typer.echo(json.dumps(data))
        return
    _print_status(data)


@contextlib.asynccontextmanager
async def _queue(url: str) -> AsyncIterator[JobQueue]:
    """The validator's job queue with its schema checked, for a one-shot command: an
    unmigrated or unreachable database is a clear error, not a traceback."""
    from kinitro.core.db import safe_url  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.jobqueue import JobQueue, SchemaNotReadyError  # noqa: PLC0415 - deferred: CLI start-up

    jq = JobQueue.connect(url, pool_size=1)
    try:
        await jq.check_schema()
        yield jq
    except SchemaNotReadyError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot reach {safe_url(url)}: {exc}") from None
    finally:
        await jq.close()


async def _status(url: str) -> dict[str, Any]:
    async with _queue(url) as jq:
        return (await jq.status()).to_dict()


STALE_AFTER_S = 90.0
"""A "connected" row not refreshed for this long (heartbeats refresh it) is reported
stale: the node was probably killed without a chance to say so."""


def _connection_state(conn: dict[str, Any]) -> str:
    state = str(conn["state"])
    seen = conn.get("last_seen_at")
    if state == "connected" and seen:
        age = (datetime.now(UTC) - datetime.fromisoformat(seen)).total_seconds()
        if age > STALE_AFTER_S:
            return f"stale (connected, but no heartbeat for {age:.0f}s)"
    return state


def _print_status(data: dict[str, Any]) -> None:
    conn, depths, last = data["connection"], data["depths"], data["last_weights"]
    table = Table(title="validator", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    state = _connection_state(conn)
    colour = {"connected": "green", "disconnected": "yellow"}.get(state, "red")
    table.add_row("connection", f"[{colour}]{state}[/{colour}]")
    table.add_row("backend", str(conn["backend_url"] or "-"))
    table.add_row("hotkey / uid", f"{conn['hotkey'] or '-'} / {conn['uid']}")
    table.add_row("lite", str(conn["lite"]))
    table.add_row("last seen", str(conn["last_seen_at"] or "-"))
    table.add_row("reconnects", str(conn["reconnects"]))
    if conn["last_error"]:
        table.add_row("last error", str(conn["last_error"]))
    table.add_row("jobs queued", str(depths["jobs_queued"]))
    table.add_row("jobs in flight", str(depths["jobs_in_flight"]))
    by_state = ", ".join(f"{k}={v}" for k, v in sorted(depths["jobs_by_state"].items()))
    table.add_row("jobs by state", by_state or "-")
    table.add_row("outbox", f"{depths['outbox']} (oldest {depths['outbox_oldest_at'] or '-'})")
    table.add_row("dead letters", str(depths["outbox_dead"]))
    table.add_row("weights pending", str(data["pending_weights"]))
    if last:
        text = f"{last['weights_id']} at block {last['block']} ({last['set_at']})"
        if last.get("reveal_block") is not None:
            text += f", committed: reveals at block {last['reveal_block']}"
        if last.get("refreshes"):
            text += f", refreshed {last['refreshes']}x"
        table.add_row("last weights", text)
    else:
        table.add_row("last weights", "-")
    console.print(table)


@app.command("dead-letters")
def dead_letters(
    config: Path | None = ConfigOpt,
    database_url: str | None = DbOpt,
    requeue: bool = typer.Option(
        False, "--requeue", help="Move them all back into the outbox to be sent again."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """List the messages the backend rejected for good (or requeue them after a fix)."""
    settings = _load(config, database_url=database_url)
    if not settings.database_url:
        raise _fail("no database URL: pass --database-url or set KINITRO_VALIDATOR_DATABASE_URL")
    rows, moved = asyncio.run(_dead_letters(settings.database_url, requeue))
    if as_json:
        typer.echo(json.dumps({"dead_letters": rows, "requeued": moved}))
        return
    if requeue:
        console.print(f"requeued {moved} message(s) into the outbox")
        return
    table = Table(title=f"dead letters ({len(rows)})")
    for column in ("rejected_at", "type", "job_id", "error_code", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(str(row[c] or "") for c in ("rejected_at", "type", "job_id", "error_code", "detail"))
        )
    console.print(table)


async def _dead_letters(url: str, requeue: bool) -> tuple[list[dict[str, Any]], int]:
    async with _queue(url) as jq:
        if requeue:
            return [], await jq.requeue_dead_letters()
        rows = [
            {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in asdict(d).items()}
            for d in await jq.dead_letters(limit=1000)
        ]
        return rows, 0
