"""`kinitro miner init | package | upload | commit | status`: from a directory to a
commitment on the chain (``publish`` is :mod:`kinitro.miner.publish_cmd`).

The recommended order is upload (private) → commit → publish: the bundle becomes readable
only after its hash is on chain under the miner's hotkey, so nobody can commit it first.

Validation is static (manifest + source parsing): these commands never import the
miner's agent code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

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
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def _settings(config: Path | None, **overrides: Any) -> MinerSettings:
    from kinitro.core.errors import KinitroError
    from kinitro.miner.settings import MinerSettings

    try:
        return MinerSettings.load(config, **overrides)
    except (KinitroError, ValueError) as exc:
        from kinitro.core.settings import describe_settings_error

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
    import re

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
    from kinitro.storage.bundle import ARCHIVE_NAME, package_bundle
    from kinitro.storage.errors import StorageError

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
    from kinitro.storage.artifacts import open_registry
    from kinitro.storage.errors import StorageError

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
            "  the repo is private: commit it (kinitro miner commit --from-upload "
            f"{record}), then publish it (kinitro miner publish {directory})"
        )


def commit_command(
    competition: str = typer.Option(..., "--competition", "-c", help="Competition id."),
    from_upload: Path | None = typer.Option(
        None, "--from-upload", help="upload.json written by `kinitro miner upload`."
    ),
    registry: str | None = RegistryOpt,
    repo: str | None = typer.Option(None, "--repo", help="Registry repo (without --from-upload)."),
    revision: str | None = typer.Option(None, "--revision", help="Pinned revision."),
    sha256: str | None = typer.Option(None, "--sha256", help="Bundle archive sha256."),
    wallet: str | None = WalletOpt,
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    chain_url: str | None = ChainUrlOpt,
    netuid: int | None = NetuidOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write the commitment pinning an uploaded bundle for a competition (hotkey-signed).

    Works while the bundle's repo is still private: publish it afterwards with `kinitro
    miner publish` (the backend waits for it up to its artifact deadline).
    """
    from kinitro.core.errors import KinitroError
    from kinitro.protocol.commitment import encode_commitment

    settings = _settings(
        config,
        wallet_name=wallet,
        hotkey=hotkey,
        wallet_path=wallet_path,
        chain_url=chain_url,
        netuid=netuid,
        registry=registry,
    )
    fields: dict[str, Any] = {}
    if from_upload is not None:
        try:
            fields = json.loads(from_upload.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read {from_upload}: {exc}") from None
        if not isinstance(fields, dict):
            raise _fail(f"{from_upload} does not hold an upload record")
    else:
        missing = [
            n
            for n, v in (("--repo", repo), ("--revision", revision), ("--sha256", sha256))
            if not v
        ]
        if missing:
            raise _fail(
                "give --from-upload or all of --repo --revision --sha256 "
                f"(missing {', '.join(missing)})"
            )
        fields = {
            "registry": settings.registry,
            "repo": repo,
            "revision": revision,
            "sha256": sha256,
        }
    try:
        text = encode_commitment(
            competition_id=competition,
            registry=fields.get("registry", settings.registry),
            repo=str(fields.get("repo")),
            revision=str(fields.get("revision")),
            sha256=str(fields.get("sha256")),
        )
    except KinitroError as exc:
        raise _fail(f"commitment refused: {exc}") from None

    async def write() -> Any:
        from kinitro.chain.wallets import load_hotkey

        key = load_hotkey(settings.wallet_name, settings.hotkey, settings.wallet_path)
        chain = _open_chain(settings)
        try:
            return await chain.commit(key, text)
        finally:
            await chain.close()

    try:
        record = asyncio.run(write())
    except KinitroError as exc:
        raise _fail(str(exc)) from None
    data = {"commitment": text, "block": record.block, "hotkey": record.hotkey, "uid": record.uid}
    if as_json:
        _echo_json(data)
        return
    console.print(f"committed at block [bold]{record.block}[/bold] as uid {record.uid}")
    console.print(f"  {text}")
    if fields.get("private"):
        console.print("  the repo is still private: publish it now (kinitro miner publish)")


def _open_chain(settings: MinerSettings) -> Any:
    from kinitro.chain.settings import ChainSettings, open_chain

    return open_chain(
        ChainSettings(
            backend=settings.chain_backend,
            local_url=settings.chain_url,
            network=settings.network,
            netuid=settings.netuid,
            timeout_s=settings.timeout_s,
        )
    )


def status_command(
    wallet: str | None = WalletOpt,
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    chain_url: str | None = ChainUrlOpt,
    netuid: int | None = NetuidOpt,
    backend_url: str | None = typer.Option(None, "--backend-url", help="Kinitro backend URL."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What the chain and the backend know about my hotkey's submissions."""
    from kinitro.chain.wallets import wallet_info
    from kinitro.core.errors import KinitroError

    settings = _settings(
        config,
        wallet_name=wallet,
        hotkey=hotkey,
        wallet_path=wallet_path,
        chain_url=chain_url,
        netuid=netuid,
        backend_url=backend_url,
    )
    try:
        me = wallet_info(settings.wallet_name, settings.hotkey, settings.wallet_path).hotkey
        chain_view = asyncio.run(_chain_status(settings, me))
    except KinitroError as exc:
        raise _fail(str(exc)) from None
    backend_view = _backend_status(settings, me)
    data = {"hotkey": me, "chain": chain_view, "backend": backend_view}
    if as_json:
        _echo_json(data)
        return
    console.print(f"hotkey {me} on netuid {settings.netuid} (block {chain_view['block']})")
    if chain_view["uid"] is None:
        console.print("  [yellow]not registered[/yellow]")
    else:
        console.print(f"  uid {chain_view['uid']}")
    commitment = chain_view["commitment"]
    if commitment is None:
        console.print("  no commitment on chain")
    else:
        console.print(f"  commitment at block {commitment['block']}: {commitment['data']}")
        if commitment.get("error"):
            console.print(f"  [red]not a valid Kinitro commitment:[/red] {commitment['error']}")
    if "error" in backend_view:
        console.print(f"  backend: [yellow]{backend_view['error']}[/yellow]")
        return
    table = Table(title="submissions known to the backend")
    for col in ("id", "competition", "block", "status", "detail"):
        table.add_column(col)
    for sub in backend_view["submissions"]:
        table.add_row(
            str(sub.get("id", "")),
            str(sub.get("competition_id") or ""),
            str(sub.get("commitment_block", "")),
            str(sub.get("status", "")),
            str(sub.get("rejection_reason") or ""),
        )
    console.print(table)


async def _chain_status(settings: MinerSettings, hotkey: str) -> dict[str, Any]:
    from kinitro.core.errors import KinitroError
    from kinitro.protocol.commitment import parse_commitment

    chain = _open_chain(settings)
    try:
        block = await chain.block()
        graph = await chain.metagraph()
        records = await chain.commitments()
    finally:
        await chain.close()
    neuron = graph.by_hotkey(hotkey)
    mine = next((r for r in records if r.hotkey == hotkey), None)
    commitment: dict[str, Any] | None = None
    if mine is not None:
        commitment = {"block": mine.block, "data": mine.data}
        try:
            parsed = parse_commitment(mine.data)
            commitment["parsed"] = {
                "competition_id": parsed.competition_id,
                "registry": parsed.registry,
                "repo": parsed.repo,
                "revision": parsed.revision,
                "sha256": parsed.sha256,
            }
        except KinitroError as exc:
            commitment["error"] = str(exc)
    return {"block": block, "uid": None if neuron is None else neuron.uid, "commitment": commitment}


def _backend_status(settings: MinerSettings, hotkey: str) -> dict[str, Any]:
    import httpx

    url = settings.backend_url.rstrip("/") + "/api/v1/submissions"
    try:
        response = httpx.get(url, params={"miner_hotkey": hotkey}, timeout=settings.timeout_s)
    except httpx.HTTPError as exc:
        return {"error": f"backend at {settings.backend_url} unreachable ({type(exc).__name__})"}
    if response.status_code != 200:
        return {"error": f"backend answered {response.status_code}"}
    try:
        body = response.json()
    except ValueError:
        return {"error": "backend answered non-JSON"}
    items = body.get("items", body.get("submissions", [])) if isinstance(body, dict) else body
    return {"submissions": items if isinstance(items, list) else []}
