"""Wallets with real sr25519 keys, in the bittensor on-disk layout.

``<path>/<name>/coldkey``, ``coldkeypub.txt``, ``hotkeys/<hotkey>`` and
``hotkeys/<hotkey>pub.txt`` — exactly what ``btcli`` / bittensor-wallet write, so the same
wallet works with the real chain. The default path is ``~/.bittensor/wallets``; the devnet
keeps its wallets under its data directory.

Devnet wallets are created unencrypted (no password prompt) unless a coldkey password is
given. Mnemonics are returned once to the caller and never logged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bittensor_wallet import Keypair, Wallet

from kinitro.chain.errors import WalletError

DEFAULT_WALLET_PATH = Path("~/.bittensor/wallets")


@dataclass(frozen=True, slots=True)
class WalletInfo:
    name: str
    hotkey_name: str
    path: Path
    coldkey: str
    hotkey: str


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """bittensor-wallet prints "Encrypting..." to fd 1; send it to stderr so that
    ``--json`` output on stdout stays machine-readable."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")


def _check_name(kind: str, value: str) -> None:
    """Wallet and hotkey names become file names: no separators, no ``..``."""
    if not _NAME.fullmatch(value) or ".." in value:
        raise WalletError(
            f"{kind} name {value!r} is invalid: use 1-64 chars of [A-Za-z0-9._-], "
            "not starting with '.' or '-'"
        )


def _wallet(name: str, hotkey: str, path: Path) -> Wallet:
    _check_name("wallet", name)
    _check_name("hotkey", hotkey)
    return Wallet(name=name, hotkey=hotkey, path=str(path.expanduser()))


def create_wallet(
    name: str,
    hotkey: str = "default",
    path: Path = DEFAULT_WALLET_PATH,
    *,
    coldkey_password: str | None = None,
    overwrite: bool = False,
) -> WalletInfo:
    """Create a coldkey (if the wallet has none) and the named hotkey.

    An existing coldkey is reused, so ``create_wallet("v1", "h2")`` adds a hotkey. An
    existing hotkey is an error unless ``overwrite``.
    """

    wallet = _wallet(name, hotkey, path)
    root = Path(wallet.path) / name
    cold_exists = (root / "coldkeypub.txt").exists()
    hot_exists = (root / "hotkeys" / hotkey).exists()
    if hot_exists and not overwrite:
        raise WalletError(f"hotkey {name}/{hotkey} already exists under {wallet.path}")
    try:
        if not cold_exists:
            cold = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12))
            with _quiet_stdout():
                wallet.set_coldkey(
                    cold,
                    encrypt=coldkey_password is not None,
                    overwrite=True,
                    coldkey_password=coldkey_password,
                )
            wallet.set_coldkeypub(cold, overwrite=True)
        hot = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(12))
        wallet.set_hotkey(hot, encrypt=False, overwrite=True)
        wallet.set_hotkeypub(hot, overwrite=True)
    except Exception as exc:
        raise WalletError(f"cannot create wallet {name}/{hotkey}: {exc}") from exc
    return wallet_info(name, hotkey, path)


def wallet_info(name: str, hotkey: str = "default", path: Path = DEFAULT_WALLET_PATH) -> WalletInfo:
    """Public addresses of a wallet (reads only the public key files)."""
    wallet = _wallet(name, hotkey, path)
    root = Path(wallet.path) / name
    files = (root / "coldkeypub.txt", root / "hotkeys" / f"{hotkey}pub.txt")
    if not all(f.is_file() for f in files):
        raise WalletError(
            f"wallet {name}/{hotkey} not found under {Path(wallet.path)} "
            "(create it with `kinitro chain wallet create`)"
        )
    try:
        cold = wallet.get_coldkeypub().ss58_address
        hot = wallet.get_hotkeypub().ss58_address
    except Exception as exc:
        raise WalletError(
            f"wallet {name}/{hotkey} under {Path(wallet.path)} is unreadable: {exc}"
        ) from exc
    return WalletInfo(name, hotkey, Path(wallet.path), cold, hot)


def load_hotkey(name: str, hotkey: str = "default", path: Path = DEFAULT_WALLET_PATH) -> Keypair:
    """The hotkey keypair (private key included) of a wallet."""
    wallet = _wallet(name, hotkey, path)
    try:
        return wallet.get_hotkey()
    except Exception as exc:
        raise WalletError(
            f"cannot read hotkey {name}/{hotkey} under {Path(wallet.path)}: {exc}"
        ) from exc


def load_coldkey(
    name: str, path: Path = DEFAULT_WALLET_PATH, *, password: str | None = None
) -> Keypair:
    """The coldkey keypair of a wallet (``password`` for encrypted coldkeys)."""
    wallet = _wallet(name, "default", path)
    try:
        with _quiet_stdout():
            return wallet.get_coldkey(password=password)
    except Exception as exc:
        raise WalletError(f"cannot read coldkey {name} under {Path(wallet.path)}: {exc}") from exc
