"""Subprocess smoke tests for every `kinitro chain` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kinitro.chain.local.process import LocalChainProcess, free_port
from kinitro.chain.wallets import load_hotkey


def kinitro(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", "chain", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(*args: str) -> str:
    result = kinitro(*args)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def test_chain_commands_end_to_end(tmp_path: Path, chain_proc: LocalChainProcess) -> None:
    wp = str(tmp_path / "wallets")
    url = ["--url", chain_proc.url, "--netuid", "77"]
    created = json.loads(ok("wallet", "create", "--name", "v", "--wallet-path", wp, "--json"))
    assert created["hotkey"].startswith("5") and created["coldkey"] != created["hotkey"]
    second = json.loads(
        ok("wallet", "create", "--name", "v", "--hotkey", "h2", "--wallet-path", wp, "--json")
    )
    assert second["coldkey"] == created["coldkey"] and second["hotkey"] != created["hotkey"]
    shown = json.loads(ok("wallet", "show", "--name", "v", "--wallet-path", wp, "--json"))
    assert shown == created
    dup = kinitro("wallet", "create", "--name", "v", "--wallet-path", wp)
    assert dup.returncode == 2 and "already exists" in dup.stderr
    assert (tmp_path / "wallets" / "v" / "hotkeys" / "defaultpub.txt").is_file()

    w = ["--wallet", "v", "--wallet-path", wp]
    reg = json.loads(ok("register", *w, *url, "--json"))
    assert reg["uid"] == 0
    again = kinitro("register", *w, *url)
    assert again.returncode == 2 and "already registered" in again.stderr
    assert "Traceback" not in again.stderr
    ok("stake", "250", *w, *url)
    graph = json.loads(ok("metagraph", *url, "--json"))
    assert graph["neurons"][0]["stake"] == 250.0 and graph["neurons"][0]["validator_permit"]
    ok("permit", "off", *w, *url)
    assert not json.loads(ok("metagraph", *url, "--json"))["neurons"][0]["validator_permit"]
    ok("permit", "auto", *w, *url)
    bad = kinitro("permit", "maybe", *w, *url)
    assert bad.returncode == 2 and "on, off, auto" in bad.stderr
    assert "netuid 77" in ok("metagraph", *url)

    assert json.loads(ok("block", "--url", chain_proc.url, "--json"))["block"] >= 0
    assert json.loads(ok("commitments", *url, "--json")) == []
    assert json.loads(ok("weights", *url, "--json")) == []
    assert "commitments on netuid 77" in ok("commitments", *url)
    assert "weights on netuid 77" in ok("weights", *url)
    # the hotkey file really is a usable sr25519 key
    assert load_hotkey("v", "default", Path(wp)).ss58_address == created["hotkey"]


def test_chain_errors_are_clean(tmp_path: Path) -> None:
    down = kinitro("block", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "unreachable" in down.stderr and "Traceback" not in down.stderr
    missing = kinitro(
        "register", "--wallet", "ghost", "--wallet-path", str(tmp_path), "--url", "http://x"
    )
    assert missing.returncode == 2 and "not found" in missing.stderr
    bad = kinitro("run", "--data-dir", str(tmp_path / "c"), "--block-interval", "0")
    assert bad.returncode == 2 and "block-interval" in bad.stderr


def test_encrypted_coldkey(tmp_path: Path, chain_proc: LocalChainProcess) -> None:
    wp = str(tmp_path / "wallets")
    env = {**os.environ, "KINITRO_CHAIN_COLDKEY_PASSWORD": "correct horse"}

    def run(*args: str, password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kinitro", "chain", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**env, "KINITRO_CHAIN_COLDKEY_PASSWORD": password},
        )

    created = run(
        "wallet",
        "create",
        "--name",
        "enc",
        "--wallet-path",
        wp,
        "--encrypt",
        "--json",
        password="correct horse",
    )
    assert created.returncode == 0 and json.loads(created.stdout)["coldkey"].startswith("5")
    assert b"$NACL" in (tmp_path / "wallets" / "enc" / "coldkey").read_bytes()
    args = (
        "register",
        "--wallet",
        "enc",
        "--wallet-path",
        wp,
        "--url",
        chain_proc.url,
        "--netuid",
        "78",
    )
    wrong = run(*args, password="wrong")
    assert wrong.returncode == 2 and "Wrong password" in wrong.stderr
    assert "correct horse" not in wrong.stderr + wrong.stdout
    assert run(*args, password="correct horse").returncode == 0
