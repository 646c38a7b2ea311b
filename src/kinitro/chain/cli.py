"""`kinitro chain` commands: run the LocalChain service, manage wallets, inspect the chain."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kinitro.core.errors import KinitroError
from kinitro.core.settings import describe_settings_error

if TYPE_CHECKING:
    from kinitro.chain.port import ChainClient
    from kinitro.chain.settings import ChainSettings

app = typer.Typer(
    help=(
        "Local chain (embedded devnet chain) and wallets: run it, register hotkeys, "
        "inspect commitments and weights."
    ),
    no_args_is_help=True,
)
wallet_app = typer.Typer(help="Create and inspect wallets (bittensor on-disk layout).")
app.add_typer(wallet_app, name="wallet")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

ConfigOpt = typer.Option(None, "--config", help="TOML config file (section \\[chain]).")
UrlOpt = typer.Option(None, "--url", help="LocalChain URL (default http://127.0.0.1:9945).")
NetuidOpt = typer.Option(None, "--netuid", help="Subnet id (default 1).")
WalletOpt = typer.Option(None, "--wallet", "-w", help="Wallet name.")
HotkeyOpt = typer.Option(None, "--hotkey", "-k", help="Hotkey name inside the wallet.")
WalletPathOpt = typer.Option(None, "--wallet-path", help="Wallets directory.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(2)


def _settings(
    config: Path | None,
    url: str | None = None,
    netuid: int | None = None,
    wallet: str | None = None,
    hotkey: str | None = None,
    wallet_path: Path | None = None,
    backend: str | None = None,
    network: str | None = None,
) -> ChainSettings:
    from kinitro.chain.settings import ChainSettings  # noqa: PLC0415 - deferred: CLI start-up

    try:
        return ChainSettings.load(
            config,
            local_url=url,
            netuid=netuid,
            wallet_name=wallet,
            hotkey=hotkey,
            wallet_path=wallet_path,
            backend=backend,
            network=network,
        )
    except (KinitroError, ValueError) as exc:
        raise _fail(describe_settings_error(exc, ChainSettings)) from None


def _run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn`` and turn Kinitro errors into a clean message + exit code 2."""

    try:
        return asyncio.run(fn())
    except KinitroError as exc:
        raise _fail(str(exc)) from None


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


@app.command()
def run(
    data_dir: Path = typer.Option(
        Path(".kinitro/devnet/chain"), "--data-dir", help="Directory holding the chain state."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(9945, "--port", min=0, max=65535, help="HTTP port."),
    block_interval: float = typer.Option(1.0, "--block-interval", help="Seconds per block."),
    tempo: int = typer.Option(
        360,
        "--tempo",
        min=1,
        help="Blocks per subnet epoch: the period of the commitment space budget (genesis).",
    ),
    commit_space: int = typer.Option(
        3100,
        "--commit-space",
        min=100,
        help="Bytes a hotkey may commit per epoch; a commitment uses max(100, its size) (genesis).",
    ),
    weights_rate_limit: int = typer.Option(
        100,
        "--weights-rate-limit",
        min=0,
        help="Blocks between two weight sets of a uid (genesis).",
    ),
    min_validator_stake: float = typer.Option(
        1000.0,
        "--min-validator-stake",
        min=0.0,
        help="Stake that earns a validator permit (genesis).",
    ),
    commit_reveal_epochs: int = typer.Option(
        0,
        "--commit-reveal-epochs",
        min=0,
        help="0: weights take effect at once; N: they are committed and revealed N epochs "
        "later, like the real chain's default commit-reveal with N = 1 (genesis).",
    ),
    weights_version_key: int = typer.Option(
        0,
        "--weights-version-key",
        min=0,
        help="Lowest version_key weights are accepted with; 0 accepts any (genesis).",
    ),
    log_level: str = typer.Option("info", "--log-level", help="Log level."),
) -> None:
    """Run the LocalChain service: a persistent chain shared over HTTP by every process.

    The tempo, commitment space, weights rules and permit stake are fixed when the data
    directory is first created (genesis); later runs on the same directory keep them.
    Stop with Ctrl-C: the state survives restarts.
    """
    from kinitro.chain.errors import ChainError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.local.service import run as serve  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.local.state import ChainRules  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.core.logging import configure_logging  # noqa: PLC0415 - deferred: CLI start-up

    if block_interval <= 0:
        raise _fail("--block-interval must be > 0")
    try:
        configure_logging(log_level)
    except ValueError as exc:
        raise _fail(f"invalid --log-level {log_level!r}: {exc}") from None
    rules = ChainRules(
        tempo=tempo,
        commit_space_bytes=commit_space,
        weights_rate_limit_blocks=weights_rate_limit,
        min_validator_stake=min_validator_stake,
        commit_reveal_epochs=commit_reveal_epochs,
        weights_version_key=weights_version_key,
    )
    try:
        serve(
            data_dir,
            host=host,
            port=port,
            block_interval=block_interval,
            rules=rules,
            log_level=log_level.lower(),
        )
    except ChainError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot use the data directory {data_dir}: {exc.strerror or exc}") from None


@wallet_app.command("create")
def wallet_create(
    name: str = typer.Option(..., "--name", "-w", help="Wallet (coldkey) name."),
    hotkey: str = typer.Option("default", "--hotkey", "-k", help="Hotkey name."),
    wallet_path: Path = typer.Option(
        Path("~/.bittensor/wallets"), "--wallet-path", help="Wallets directory."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing hotkey."),
    encrypt: bool = typer.Option(
        False,
        "--encrypt",
        help="Encrypt a new coldkey with a password (KINITRO_CHAIN_COLDKEY_PASSWORD or prompt).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create a wallet with real sr25519 keys (reuses an existing coldkey, adds the hotkey)."""

    from kinitro.chain.errors import ChainError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.wallets import create_wallet  # noqa: PLC0415 - deferred: CLI start-up

    password = None
    if encrypt and not os.environ.get("KINITRO_CHAIN_COLDKEY_PASSWORD") and not sys.stdin.isatty():
        raise _fail("--encrypt needs KINITRO_CHAIN_COLDKEY_PASSWORD when not run in a terminal")
    if encrypt:
        password = os.environ.get("KINITRO_CHAIN_COLDKEY_PASSWORD") or typer.prompt(
            "coldkey password", hide_input=True, confirmation_prompt=True
        )
    try:
        info = create_wallet(
            name, hotkey, wallet_path, overwrite=overwrite, coldkey_password=password
        )
    except ChainError as exc:
        raise _fail(str(exc)) from None
    _print_wallet(info, as_json)


@wallet_app.command("show")
def wallet_show(
    name: str = typer.Option(..., "--name", "-w", help="Wallet (coldkey) name."),
    hotkey: str = typer.Option("default", "--hotkey", "-k", help="Hotkey name."),
    wallet_path: Path = typer.Option(
        Path("~/.bittensor/wallets"), "--wallet-path", help="Wallets directory."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Show a wallet's public addresses."""
    from kinitro.chain.errors import ChainError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.wallets import wallet_info  # noqa: PLC0415 - deferred: CLI start-up

    try:
        info = wallet_info(name, hotkey, wallet_path)
    except ChainError as exc:
        raise _fail(str(exc)) from None
    _print_wallet(info, as_json)


def _print_wallet(info: Any, as_json: bool) -> None:
    data = {
        "name": info.name,
        "hotkey_name": info.hotkey_name,
        "path": str(info.path),
        "coldkey": info.coldkey,
        "hotkey": info.hotkey,
    }
    if as_json:
        _echo_json(data)
    else:
        console.print(f"wallet [bold]{info.name}/{info.hotkey_name}[/bold] in {info.path}")
        console.print(f"  coldkey {info.coldkey}\n  hotkey  {info.hotkey}")


async def _local_admin(
    settings: ChainSettings, action: Callable[[Any, Any, str], Awaitable[T]]
) -> T:
    from kinitro.chain.local.client import LocalChain  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.chain.wallets import load_coldkey, wallet_info  # noqa: PLC0415 - deferred: CLI start-up

    info = wallet_info(settings.wallet_name, settings.hotkey, settings.wallet_path)
    password = settings.coldkey_password
    coldkey = load_coldkey(
        settings.wallet_name,
        settings.wallet_path,
        password=password.get_secret_value() if password else None,
    )
    async with LocalChain(settings.local_url, settings.netuid, timeout=settings.timeout_s) as c:
        return await action(c, coldkey, info.hotkey)


@app.command()
def register(
    wallet: str = typer.Option(..., "--wallet", "-w", help="Wallet name."),
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Register a wallet's hotkey on the LocalChain subnet (signed by its coldkey)."""
    settings = _settings(config, url, netuid, wallet, hotkey, wallet_path)
    neuron = _run(lambda: _local_admin(settings, lambda c, ck, hk: c.register(ck, hk)))
    if as_json:
        _echo_json(
            {"uid": neuron.uid, "hotkey": neuron.hotkey, "block": neuron.registered_at_block}
        )
    else:
        console.print(
            f"registered {neuron.hotkey} as uid {neuron.uid} on netuid {settings.netuid} "
            f"at block {neuron.registered_at_block}"
        )


@app.command()
def stake(
    amount: float = typer.Argument(..., help="Stake to hold (devnet faucet; absolute amount)."),
    wallet: str = typer.Option(..., "--wallet", "-w", help="Wallet name."),
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Set a registered hotkey's stake on the LocalChain (permits follow stake)."""
    settings = _settings(config, url, netuid, wallet, hotkey, wallet_path)
    block = _run(lambda: _local_admin(settings, lambda c, ck, hk: c.set_stake(ck, hk, amount)))
    console.print(f"stake set to {amount} at block {block}")


@app.command()
def permit(
    mode: str = typer.Argument(..., help="on | off | auto (auto = derived from stake)."),
    wallet: str = typer.Option(..., "--wallet", "-w", help="Wallet name."),
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    config: Path | None = ConfigOpt,
) -> None:
    """Force a hotkey's validator permit on/off on the LocalChain, or derive it from stake."""
    values = {"on": True, "off": False, "auto": None}
    if mode not in values:
        raise _fail(f"mode must be one of on, off, auto (got {mode!r})")
    settings = _settings(config, url, netuid, wallet, hotkey, wallet_path)
    block = _run(
        lambda: _local_admin(settings, lambda c, ck, hk: c.set_permit(ck, hk, values[mode]))
    )
    console.print(f"validator permit {mode} at block {block}")


async def _read(settings: ChainSettings, fn: Callable[[ChainClient], Awaitable[T]]) -> T:
    from kinitro.chain.settings import open_chain  # noqa: PLC0415 - deferred: CLI start-up

    chain = open_chain(settings)
    try:
        return await fn(chain)
    finally:
        await chain.close()


BackendOpt = typer.Option(None, "--backend", help="local (default) or bittensor.")
NetworkOpt = typer.Option(None, "--network", help="Bittensor network (with --backend bittensor).")


@app.command()
def block(
    url: str | None = UrlOpt,
    backend: str | None = BackendOpt,
    network: str | None = NetworkOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the current block height."""
    settings = _settings(config, url, backend=backend, network=network)
    height = _run(lambda: _read(settings, lambda c: c.block()))
    if as_json:
        _echo_json({"block": height})
    else:
        console.print(str(height))


@app.command()
def metagraph(
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    backend: str | None = BackendOpt,
    network: str | None = NetworkOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List registered neurons: uid, hotkey, coldkey, stake, validator permit."""
    settings = _settings(config, url, netuid, backend=backend, network=network)
    graph = _run(lambda: _read(settings, lambda c: c.metagraph()))
    if as_json:
        _echo_json(asdict(graph))
        return
    table = Table(title=f"netuid {graph.netuid} at block {graph.block}")
    for col in ("uid", "hotkey", "coldkey", "stake", "permit"):
        table.add_column(col)
    for n in graph.neurons:
        table.add_row(
            str(n.uid), n.hotkey, n.coldkey, f"{n.stake:g}", "yes" if n.validator_permit else ""
        )
    console.print(table)


@app.command()
def commitments(
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    backend: str | None = BackendOpt,
    network: str | None = NetworkOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List every hotkey's current commitment with the block it was made in."""
    settings = _settings(config, url, netuid, backend=backend, network=network)
    records = _run(lambda: _read(settings, lambda c: c.commitments()))
    if as_json:
        _echo_json([asdict(r) for r in records])
        return
    table = Table(title=f"commitments on netuid {settings.netuid}")
    for col in ("block", "uid", "hotkey", "data"):
        table.add_column(col)
    for r in records:
        table.add_row(str(r.block), "-" if r.uid is None else str(r.uid), r.hotkey, r.data)
    console.print(table)


@app.command()
def weights(
    url: str | None = UrlOpt,
    netuid: int | None = NetuidOpt,
    backend: str | None = BackendOpt,
    network: str | None = NetworkOpt,
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List every validator's weight row (u16 values and fractions)."""
    settings = _settings(config, url, netuid, backend=backend, network=network)
    rows = _run(lambda: _read(settings, lambda c: c.weights()))
    if as_json:
        _echo_json(
            [
                {
                    "validator_uid": r.validator_uid,
                    "validator_hotkey": r.validator_hotkey,
                    "block": r.block,
                    "weights": {str(k): v for k, v in r.weights.items()},
                }
                for r in rows
            ]
        )
        return
    table = Table(title=f"weights on netuid {settings.netuid}")
    for col in ("validator uid", "block", "weights (uid: fraction)"):
        table.add_column(col)
    for r in rows:
        text = ", ".join(f"{uid}: {f:.3f}" for uid, f in r.fractions().items())
        table.add_row(str(r.validator_uid), str(r.block), text)
    console.print(table)
