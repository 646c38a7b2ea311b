"""`kinitro backend` commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from kinitro.core.errors import ConfigError
from kinitro.core.settings import describe_settings_error

app = typer.Typer(
    help=(
        "Backend service: REST + admin API, validator and realtime WebSockets, chain "
        "monitor, scheduler, scoring."
    ),
    no_args_is_help=True,
)


@app.command()
def run(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="TOML config file (section \\[backend]).",
        envvar="KINITRO_CONFIG",
    ),
    host: str | None = typer.Option(None, help="Bind address (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Backend PostgreSQL URL (KINITRO_BACKEND_DATABASE_URL)."
    ),
    chain_url: str | None = typer.Option(
        None, "--chain-url", help="LocalChain service URL (default http://127.0.0.1:9945)."
    ),
    netuid: int | None = typer.Option(None, help="Subnet id."),
    registry_dir: Path | None = typer.Option(
        None, "--registry-dir", help="Local artifact registry directory."
    ),
    media: str | None = typer.Option(
        None,
        "--media",
        help="Media store the evaluators write to, served at /media under the embargo: a "
        "directory or s3://bucket/prefix (KINITRO_BACKEND_MEDIA_URL).",
    ),
    replication: int | None = typer.Option(
        None, help="Validators per job (default 3; the devnet: its validator count)."
    ),
    min_validators: int | None = typer.Option(
        None,
        "--min-validators",
        help="Quorum: validators' results a job needs before it counts (default 3, at most "
        "--replication).",
    ),
    environment: str | None = typer.Option(None, help="devnet or production."),
    log_level: str | None = typer.Option(None, "--log-level", help="Log level."),
) -> None:
    """Run the backend (HTTP + WebSockets) until interrupted. Applies migrations first."""
    from kinitro.backend.settings import Settings  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.core.logging import configure_logging  # noqa: PLC0415 - deferred: CLI start-up

    try:
        settings = Settings.load(
            config,
            host=host,
            port=port,
            database_url=database_url,
            chain_url=chain_url,
            netuid=netuid,
            registry_dir=registry_dir,
            media_url=media,
            replication=replication,
            min_validators=min_validators,
            environment=environment,
            log_level=log_level,
        )
    except (ConfigError, ValueError) as exc:
        typer.echo(f"error: {describe_settings_error(exc, Settings)}", err=True)
        raise typer.Exit(2) from None
    try:
        configure_logging(settings.log_level)
    except ValueError as exc:
        typer.echo(f"error: invalid log level {settings.log_level!r}: {exc}", err=True)
        raise typer.Exit(2) from None
    problem = _database_problem(settings.database_url)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)

    import uvicorn  # noqa: PLC0415 - deferred: CLI start-up

    from kinitro.backend.app import create_app  # noqa: PLC0415 - deferred: CLI start-up

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_config=None,
            ws_max_size=settings.max_frame_bytes + 1024,
            ws_ping_interval=20,
            ws_ping_timeout=20,
            lifespan="on",
        )
    )
    server.run()


def _database_problem(url: str) -> str | None:
    """Why the backend database cannot be used (checked before serving), or None."""

    import asyncpg  # noqa: PLC0415 - deferred: CLI start-up

    from kinitro.core.db import dsn, safe_url  # noqa: PLC0415 - deferred: CLI start-up

    try:
        target = dsn(url)
        shown = safe_url(url)
    except Exception as exc:  # noqa: BLE001 - any unparsable URL is the same user error
        return f"invalid database URL ({type(exc).__name__}: {exc})"

    async def probe() -> None:
        conn = await asyncpg.connect(target, timeout=10)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"cannot connect to the backend database {shown}: {exc}"
    return None
