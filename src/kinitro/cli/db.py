"""`kinitro db` commands: schema migrations for the backend and validator databases."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

app = typer.Typer(
    help="Database migrations. The backend and the validator each own a separate database "
    "with its own Alembic migration tree.",
    no_args_is_help=True,
)


class Role(StrEnum):
    backend = "backend"
    validator = "validator"

    def tree(self) -> Path:
        """The role's migration folder."""
        if self is Role.backend:
            from kinitro.backend.db.models import MIGRATION_TREE  # noqa: PLC0415 - deferred: CLI start-up

            return MIGRATION_TREE
        from kinitro.jobqueue.models import MIGRATION_TREE as VALIDATOR_TREE  # noqa: PLC0415 - deferred: CLI start-up

        return VALIDATOR_TREE


ROLE_OPT = typer.Option(..., "--role", help="Which schema: backend or validator.")
URL_OPT = typer.Option(
    ...,
    "--url",
    envvar="KINITRO_DATABASE_URL",
    help="PostgreSQL URL, e.g. postgresql://user@127.0.0.1:5432/kinitro.",
)


def _run(action: str, role: Role, url: str, *args: str) -> str | None:
    """Run a migration action, turning connection/migration failures into clear errors."""
    from kinitro.core import migrations  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.core.db import safe_url  # noqa: PLC0415 - deferred: CLI start-up

    try:
        if action == "current":
            return migrations.current(url)
        getattr(migrations, action)(role.tree(), url, *args)
        return None
    except (OSError, ConnectionError) as exc:
        typer.echo(f"cannot connect to {safe_url(url)}: {exc}", err=True)
    except Exception as exc:  # noqa: BLE001 - driver/alembic errors become one clear line
        name = type(exc).__name__
        if "connect" in str(exc).lower() or name in {"InvalidCatalogNameError", "OperationalError"}:
            typer.echo(f"cannot connect to {safe_url(url)}: {exc}", err=True)
        else:
            typer.echo(f"{action} of the {role.value} database failed: {name}: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def upgrade(
    role: Role = ROLE_OPT,
    url: str = URL_OPT,
    revision: str = typer.Option("head", help="Target revision."),
) -> None:
    """Upgrade a database to REVISION (default: the latest)."""
    _run("upgrade", role, url, revision)
    typer.echo(f"{role.value} database upgraded to {revision}")


@app.command()
def downgrade(
    role: Role = ROLE_OPT,
    url: str = URL_OPT,
    revision: str = typer.Option("base", help="Target revision ('base' removes everything)."),
) -> None:
    """Downgrade a database to REVISION (default: empty)."""
    _run("downgrade", role, url, revision)
    typer.echo(f"{role.value} database downgraded to {revision}")


@app.command()
def current(role: Role = ROLE_OPT, url: str = URL_OPT) -> None:
    """Print the revision a database is at."""
    typer.echo(_run("current", role, url) or "(empty)")
