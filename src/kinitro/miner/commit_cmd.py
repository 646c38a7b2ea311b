"""`kinitro miner commit`: write the hotkey-signed commitment pinning an uploaded bundle.

Nothing goes on chain until the commitment is known to be what the miner means — the chain
rate-limits commitments and a wrong one is rejected by the backend only later:

* no upload yet (``DIR/.kinitro/upload.json`` missing) → says to run ``upload`` first;
* the bundle changed since its upload (its archive's sha256 differs from the upload's)
  → says to upload again, instead of committing the old artifact;
* a competition the backend does not run, or not now → lists the valid ids (when no
  backend answers, a warning says the id could not be checked).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import typer

from kinitro.core.errors import KinitroError
from kinitro.miner.backend_client import BackendUnavailable, get_json
from kinitro.miner.settings import MinerSettings
from kinitro.miner.submit_cmds import (
    STATE_DIR,
    ChainUrlOpt,
    ConfigOpt,
    HotkeyOpt,
    JsonOpt,
    NetuidOpt,
    RegistryOpt,
    WalletOpt,
    WalletPathOpt,
    _echo_json,
    _fail,
    _open_chain,
    _settings,
    console,
    err_console,
)
from kinitro.storage.bundle import package_bundle
from kinitro.storage.errors import StorageError

UPLOAD_RECORD = "upload.json"


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
    backend_url: str | None = typer.Option(
        None, "--backend-url", help="Backend that lists the competitions (checked first)."
    ),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write the commitment pinning an uploaded bundle for a competition (hotkey-signed).

    Refused before anything goes on chain when nothing was uploaded, when the bundle
    changed since its upload, or when the backend runs no such competition. Works while
    the bundle's repo is still private: publish it afterwards with `kinitro miner
    publish` (the backend waits for it up to its artifact deadline).
    """
    from kinitro.protocol.commitment import encode_commitment  # noqa: PLC0415 - deferred: CLI start-up

    settings = _settings(
        config,
        wallet_name=wallet,
        hotkey=hotkey,
        wallet_path=wallet_path,
        chain_url=chain_url,
        netuid=netuid,
        registry=registry,
        backend_url=backend_url,
    )
    if from_upload is not None:
        fields = _upload_record(from_upload)
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
        fields = {"registry": settings.registry, "repo": repo, "revision": revision}
        fields["sha256"] = sha256
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
    _check_competition(settings, competition)

    async def write() -> Any:
        from kinitro.chain.wallets import load_hotkey  # noqa: PLC0415 - deferred: CLI start-up

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
        bundle = _bundle_of(from_upload) if from_upload else None
        console.print(
            "  the repo is still private: publish it now "
            f"(next: kinitro miner publish {bundle or 'DIR'})"
        )
    else:
        console.print("next: kinitro miner status (the backend picks it up within a block)")


def _bundle_of(record: Path) -> Path | None:
    """The bundle directory an ``upload.json`` belongs to (``DIR/.kinitro/upload.json``)."""
    if record.parent.name == STATE_DIR and (record.parent.parent / "kinitro.toml").is_file():
        return record.parent.parent
    return None


def _upload_record(path: Path) -> dict[str, Any]:
    """The upload record at ``path``, refused if missing or older than the bundle."""
    if not path.exists() and path.name == UPLOAD_RECORD:
        bundle = path.parent.parent if path.parent.name == STATE_DIR else Path("DIR")
        raise _fail(
            f"nothing uploaded yet: {path} does not exist; upload the bundle first "
            f"(kinitro miner upload {bundle} --repo <you>/<name>), then commit"
        )
    try:
        fields = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if not isinstance(fields, dict):
        raise _fail(f"{path} does not hold an upload record")
    owner = _bundle_of(path)
    if owner is not None:
        _check_unchanged(owner, fields)
    return fields


def _check_unchanged(bundle: Path, uploaded: dict[str, Any]) -> None:
    """Refuse to commit an upload whose bundle has changed since (a stale artifact)."""

    again = f"upload it again (kinitro miner upload {bundle} --repo {uploaded.get('repo')})"
    with tempfile.TemporaryDirectory(prefix="kinitro-commit-") as tmp:
        try:
            now = package_bundle(bundle, Path(tmp) / "bundle.tar").sha256
        except StorageError as exc:
            raise _fail(f"{bundle} changed since its upload and is now invalid: {exc}") from None
    if now != uploaded.get("sha256"):
        raise _fail(
            f"{bundle} changed since it was uploaded (sha256 {now[:12]}…, uploaded "
            f"{str(uploaded.get('sha256'))[:12]}…): committing would pin the old bundle; "
            f"{again}, then commit"
        )


def _check_competition(settings: MinerSettings, competition: str) -> None:
    """Refuse an id the backend does not run (or not now); warn when it cannot be checked."""
    try:
        found = get_json(settings, "/api/v1/competitions")
    except BackendUnavailable as exc:
        err_console.print(
            f"[yellow]warning:[/yellow] competition {competition!r} not checked: {exc}"
        )
        return
    known = {str(c.get("id")): bool(c.get("active")) for c in found if isinstance(c, dict)}
    active = sorted(cid for cid, on in known.items() if on)
    if known.get(competition):
        return
    valid = ", ".join(active) or "none"
    if competition in known:
        raise _fail(
            f"competition {competition!r} is not active on the backend at "
            f"{settings.backend_url} (active: {valid})"
        )
    raise _fail(
        f"unknown competition {competition!r}: the backend at {settings.backend_url} runs {valid}"
    )
