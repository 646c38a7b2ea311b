"""`kinitro miner init | package | upload`: from a directory to an uploaded bundle, and
the helpers every miner command shares (settings, errors, chain). ``commit`` is
:mod:`kinitro.miner.commit_cmd`, ``publish`` :mod:`kinitro.miner.publish_cmd`, ``status``
:mod:`kinitro.miner.status_cmd`.

The recommended order is upload (private) → commit → publish: the bundle becomes readable
only after its hash is on chain under the miner's hotkey, so nobody can commit it first.

Validation is static (manifest + source parsing): these commands never import the
miner's agent code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from kinitro.core.errors import KinitroError
from kinitro.core.settings import describe_settings_error
from kinitro.miner.settings import MinerSettings
from kinitro.storage.bundle import ARCHIVE_NAME, package_bundle
from kinitro.storage.errors import StorageError

if TYPE_CHECKING:
    from kinitro.miner.settings import MinerSettings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

TEMPLATE_DIR = Path(__file__).parent / "template"
TEMPLATE_FILES = {
    "agent.py.tmpl": "agent.py",
    "kinitro.toml.tmpl": "kinitro.toml",
    "README.md.tmpl": "README.md",
}
STATE_DIR = ".kinitro"  # inside the bundle dir; never packaged

ConfigOpt = typer.Option(None, "--config", help="TOML config file (section \\[miner]).")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
WalletOpt = typer.Option(None, "--wallet", "-w", help="Wallet name.")
HotkeyOpt = typer.Option(None, "--hotkey", "-k", help="Hotkey name.")
WalletPathOpt = typer.Option(None, "--wallet-path", help="Wallets directory.")
ChainUrlOpt = typer.Option(None, "--chain-url", help="LocalChain URL.")
NetuidOpt = typer.Option(None, "--netuid", help="Subnet id.")
RegistryOpt = typer.Option(None, "--registry", help="Artifact registry: local or hf.")
RegistryDirOpt = typer.Option(None, "--registry-dir", help="Local registry directory.")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def _settings(config: Path | None, **overrides: Any) -> MinerSettings:
    from kinitro.core.devnet_info import find_devnet  # noqa: PLC0415 - deferred: CLI start-up

    try:
        return MinerSettings.load(config, **overrides).near_devnet(find_devnet())
    except (KinitroError, ValueError) as exc:
        raise _fail(describe_settings_error(exc, MinerSettings)) from None


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
    )


def init_command(
    directory: Path = typer.Argument(..., help="Directory to create the bundle in."),
    name: str | None = typer.Option(None, "--name", help="Agent name (default: dir name)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing template files."),
) -> None:
    """Create a working Meta-World agent bundle (a scripted policy that solves reach-v3)."""

    agent_name = name or directory.resolve().name
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", agent_name):
        raise _fail(f"agent name {agent_name!r} must be 1-64 chars of [A-Za-z0-9._-]")
    targets = {directory / out: TEMPLATE_DIR / src for src, out in TEMPLATE_FILES.items()}
    existing = [p.name for p in targets if p.exists()]
    if existing and not force:
        raise _fail(f"{', '.join(existing)} already exist in {directory} (use --force)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for out, src in targets.items():
            out.write_text(src.read_text().replace("{name}", agent_name))
    except OSError as exc:
        raise _fail(f"cannot create the bundle in {directory}: {exc.strerror or exc}") from None
    console.print(f"created agent bundle [bold]{agent_name}[/bold] in {directory}")
    console.print(f"next: kinitro miner eval {directory}  |  kinitro miner package {directory}")


def _package(directory: Path, out: Path | None, max_bytes: int) -> Any:
    target = out or directory / STATE_DIR / ARCHIVE_NAME
    try:
        return package_bundle(directory, target, max_bytes=max_bytes)
    except StorageError as exc:
        raise _fail(f"invalid bundle: {exc}") from None
    except OSError as exc:
        where = exc.filename or target
        raise _fail(f"cannot package {directory}: {where}: {exc.strerror or exc}") from None


def package_command(
    directory: Path = typer.Argument(..., help="Agent bundle directory."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Archive path (default DIR/.kinitro/bundle.tar)."
    ),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Validate a bundle and write its deterministic archive; print its sha256 and size."""
    settings = _settings(config)
    packed = _package(directory, out, settings.max_bundle_bytes)
    data = {
        "name": packed.manifest.name,
        "entrypoint": packed.manifest.entrypoint,
        "path": str(packed.path),
        "sha256": packed.sha256,
        "size": packed.size_bytes,
        "files": packed.files,
    }
    if as_json:
        _echo_json(data)
        return
    console.print(f"packaged [bold]{packed.manifest.name}[/bold] ({packed.files} files)")
    console.print(
        f"  archive {packed.path}\n  sha256  {packed.sha256}\n  size    {packed.size_bytes}"
    )
    console.print(
        f"next: kinitro miner eval {directory}, then kinitro miner upload {directory} "
        "--repo <you>/<name>"
    )


def upload_command(
    directory: Path = typer.Argument(..., help="Agent bundle directory."),
    repo: str = typer.Option(..., "--repo", help="Registry repo, e.g. alice/reach-agent."),
    registry: str | None = RegistryOpt,
    registry_dir: Path | None = RegistryDirOpt,
    private: bool = typer.Option(
        True,
        "--private/--public",
        help="Upload into a private repo (default): nobody can read, and so nobody can "
        "commit, the bundle before you; run `kinitro miner publish` after `commit`.",
    ),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Package the bundle and upload it to the artifact registry at a pinned revision.

    The repo stays private until `kinitro miner publish` (commit first, then publish). The
    pinned reference is printed and saved to DIR/.kinitro/upload.json for
    `kinitro miner commit --from-upload` and `kinitro miner publish`.
    """
    from kinitro.storage.artifacts import open_registry  # noqa: PLC0415 - deferred: CLI start-up

    settings = _settings(config, registry=registry, registry_dir=registry_dir)
    packed = _package(directory, None, settings.max_bundle_bytes)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    store = open_registry(
        settings.registry,
        local_dir=settings.registry_dir,
        hf_token=token,
        hf_endpoint=settings.hf_endpoint,
    )
    try:
        with _progress() as bar:
            task = bar.add_task("uploading", total=packed.size_bytes)
            ref = store.upload(
                packed.path,
                repo,
                private=private,
                progress=lambda done, total: bar.update(task, completed=done),
            )
    except StorageError as exc:
        raise _fail(str(exc)) from None
    data = {**ref.model_dump(mode="json"), "private": private}
    record = directory / STATE_DIR / "upload.json"
    try:
        record.write_text(json.dumps(data, indent=2) + "\n")
    except OSError as exc:
        raise _fail(f"uploaded, but cannot save {record}: {exc.strerror or exc}") from None
    if as_json:
        _echo_json(data)
        return
    console.print(f"uploaded to {ref.registry}:{ref.repo}@{ref.revision}")
    console.print(f"  sha256 {ref.sha256}  size {ref.size_bytes}\n  saved  {record}")
    if private:
        console.print(
            f"  the repo is private: commit it, then publish it (kinitro miner publish {directory})"
        )
    console.print(f"next: kinitro miner commit --competition <id> --from-upload {record}")


def _open_chain(settings: MinerSettings) -> Any:
    from kinitro.chain.settings import ChainSettings, open_chain  # noqa: PLC0415 - deferred: CLI start-up

    return open_chain(
        ChainSettings(
            backend=settings.chain_backend,
            local_url=settings.chain_url,
            network=settings.network,
            netuid=settings.netuid,
            timeout_s=settings.timeout_s,
        )
    )
