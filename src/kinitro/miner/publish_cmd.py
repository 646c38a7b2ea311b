"""`kinitro miner publish`: make a committed bundle readable, last step of the miner flow.

Commit before publish: ``upload`` puts the bundle in a private repo, ``commit`` writes its
hash on chain, ``publish`` makes the repo public. Published any earlier, a copier could
read the bundle and commit it before its author; published after the commitment, a
copier's commitment is later and earns nothing.

So ``publish`` first reads this hotkey's commitment from the chain and refuses unless it
pins the uploaded bundle (``--force`` skips the check). The backend waits for a private
artifact until its ``artifact_deadline_s`` and then rejects the submission
(``artifact_unavailable``).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer

from kinitro.core.errors import KinitroError
from kinitro.miner.submit_cmds import (
    STATE_DIR,
    ChainUrlOpt,
    ConfigOpt,
    HotkeyOpt,
    JsonOpt,
    NetuidOpt,
    RegistryDirOpt,
    RegistryOpt,
    WalletOpt,
    WalletPathOpt,
    _echo_json,
    _fail,
    _open_chain,
    _settings,
    console,
)
from kinitro.storage.errors import StorageError


def publish_command(
    directory: Path | None = typer.Argument(
        None, help="Agent bundle directory (reads DIR/.kinitro/upload.json)."
    ),
    from_upload: Path | None = typer.Option(
        None, "--from-upload", help="upload.json written by `kinitro miner upload`."
    ),
    repo: str | None = typer.Option(None, "--repo", help="Registry repo (without an upload)."),
    registry: str | None = RegistryOpt,
    registry_dir: Path | None = RegistryDirOpt,
    force: bool = typer.Option(
        False, "--force", help="Publish even if the chain does not hold my commitment of it."
    ),
    wallet: str | None = WalletOpt,
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    chain_url: str | None = ChainUrlOpt,
    netuid: int | None = NetuidOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Make an uploaded bundle's repo public, once my commitment of it is on chain.

    Run it after `kinitro miner commit`: it checks that this hotkey's commitment on chain
    pins the uploaded bundle, then publishes the repo so validators can evaluate it.
    """
    from kinitro.storage.artifacts import open_registry  # noqa: PLC0415 - deferred: CLI start-up

    settings = _settings(
        config,
        wallet_name=wallet,
        hotkey=hotkey,
        wallet_path=wallet_path,
        chain_url=chain_url,
        netuid=netuid,
        registry=registry,
        registry_dir=registry_dir,
    )
    upload = _upload_record(directory, from_upload, repo)
    target = str(upload.get("repo") or repo)
    kind = str(upload.get("registry") or settings.registry)
    if kind not in ("local", "hf"):
        raise _fail(f"unknown registry {kind!r} in the upload record")
    if not force:
        try:
            committed = asyncio.run(_my_commitment(settings))
        except KinitroError as exc:
            raise _fail(f"cannot read my commitment from the chain: {exc}") from None
        problem = _mismatch(committed, upload, target)
        if problem is not None:
            raise _fail(
                f"{problem}: commit first (kinitro miner commit), then publish — published "
                "earlier, anyone could commit your bundle before you (--force publishes anyway)"
            )
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    store = open_registry(
        kind,  # type: ignore[arg-type]
        local_dir=settings.registry_dir,
        hf_token=token,
        hf_endpoint=settings.hf_endpoint,
    )
    try:
        store.publish(target)
    except StorageError as exc:
        raise _fail(str(exc)) from None
    data = {"registry": kind, "repo": target, "published": True}
    if as_json:
        _echo_json(data)
        return
    console.print(f"published {kind}:{target}: validators can now fetch the committed bundle")
    console.print("next: kinitro miner status (and kinitro watch --miner <your hotkey>)")


def _upload_record(
    directory: Path | None, from_upload: Path | None, repo: str | None
) -> dict[str, Any]:
    """The upload record to publish (empty with ``--repo`` alone)."""
    path = from_upload or (directory / STATE_DIR / "upload.json" if directory else None)
    if path is None:
        if not repo:
            raise _fail("give the bundle directory, --from-upload or --repo")
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not data.get("repo"):
        raise _fail(f"{path} does not hold an upload record")
    if repo and repo != data["repo"]:
        raise _fail(f"--repo {repo} is not the repo of {path} ({data['repo']})")
    return data


async def _my_commitment(settings: Any) -> str | None:
    from kinitro.chain.wallets import wallet_info  # noqa: PLC0415 - deferred: CLI start-up

    me = wallet_info(settings.wallet_name, settings.hotkey, settings.wallet_path).hotkey
    chain = _open_chain(settings)
    try:
        record = await chain.commitment(me)
    finally:
        await chain.close()
    return None if record is None else record.data


def _mismatch(committed: str | None, upload: dict[str, Any], repo: str) -> str | None:
    """Why ``committed`` does not pin ``upload`` (or ``repo``); None when it does."""
    from kinitro.protocol.commitment import parse_commitment  # noqa: PLC0415 - deferred: CLI start-up

    if committed is None:
        return "this hotkey has no commitment on chain"
    try:
        c = parse_commitment(committed)
    except KinitroError:
        return "this hotkey's commitment on chain is not a Kinitro commitment"
    if c.repo != repo:
        return f"this hotkey's commitment on chain pins {c.repo}, not {repo}"
    for name in ("registry", "revision", "sha256"):
        if upload.get(name) and getattr(c, name) != upload[name]:
            return f"this hotkey's commitment on chain pins another {name} than the upload"
    return None
