"""Realistic mistakes on the command line: each one ends with a single clear message on
stderr, no Python traceback and a non-zero exit code.

Covers `kinitro chain …`, `kinitro miner init/package/upload/commit/status`,
`kinitro backend run` and `kinitro db …` with missing or unreachable services, wrong
paths, broken or hostile bundles, malformed TOML and bad environment values. Every case
is a real subprocess; none needs a running service (unreachable ones are free ports).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kinitro.chain.wallets import create_wallet
from kinitro.miner.submit_cmds import TEMPLATE_DIR, TEMPLATE_FILES

SHA = "a" * 64


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Case:
    argv: list[str]
    expect: str  # substring of the error message
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """Files the cases point at (placeholders like ``{good}`` in argv/env)."""

    root: Path
    places: dict[str, str]

    def fill(self, text: str) -> str:
        return text.format(**self.places)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("cli-errors")
    good = root / "good"
    good.mkdir()
    for src, out in TEMPLATE_FILES.items():
        (good / out).write_text((TEMPLATE_DIR / src).read_text().replace("{name}", "good"))

    def variant(name: str) -> Path:
        path = root / name
        shutil.copytree(good, path)
        return path

    (variant("badtoml") / "kinitro.toml").write_text('name = "x\nentrypoint = [')
    (variant("escape") / "leak").symlink_to("/etc/passwd")
    (variant("big") / "weights.bin").write_bytes(os.urandom(64 * 1024))
    (variant("secret") / ".env").write_text("TOKEN=x\n")
    (variant("noentry") / "kinitro.toml").write_text(
        'name = "noentry"\nentrypoint = "missing:Agent"\nspec_version = 1\n'
    )
    afile = root / "a-file"
    afile.write_text("not a directory\n")
    (root / "broken.toml").write_text("[backend\nport = 1\n")
    (root / "wrongtype.toml").write_text('[chain]\nnetuid = "one"\n')
    genesis = root / "chain-corrupt"
    genesis.mkdir()
    (genesis / "genesis.json").write_text("{half")
    wallets = root / "wallets"
    create_wallet("alice", "default", wallets)
    (root / "list.json").write_text("[1, 2]\n")
    return World(
        root,
        {
            "root": str(root),
            "good": str(good),
            "badtoml": str(root / "badtoml"),
            "escape": str(root / "escape"),
            "big": str(root / "big"),
            "secret": str(root / "secret"),
            "noentry": str(root / "noentry"),
            "afile": str(afile),
            "broken": str(root / "broken.toml"),
            "wrongtype": str(root / "wrongtype.toml"),
            "genesis": str(genesis),
            "wallets": str(wallets),
            "list": str(root / "list.json"),
            "down": f"http://127.0.0.1:{_closed_port()}",
            "pgdown": f"postgresql://postgres@127.0.0.1:{_closed_port()}/nowhere",
        },
    )


W = ["--wallet-path", "{wallets}"]
PIN = ["--repo", "alice/agent", "--revision", "0123456789abcdef", "--sha256", SHA]

CASES: dict[str, Case] = {
    # ---------------------------------------------------------------- kinitro chain
    "chain-block-unreachable": Case(["chain", "block", "--url", "{down}"], "unreachable"),
    "chain-metagraph-bad-url": Case(["chain", "metagraph", "--url", "chain:9945"], "LocalChain"),
    "chain-netuid-env-not-int": Case(
        ["chain", "commitments"], "KINITRO_CHAIN_NETUID", {"KINITRO_CHAIN_NETUID": "abc"}
    ),
    "chain-config-broken-toml": Case(
        ["chain", "weights", "--config", "{broken}"], "cannot read config file"
    ),
    "chain-config-wrong-type": Case(["chain", "block", "--config", "{wrongtype}"], "[chain]"),
    "chain-config-env-missing": Case(
        ["chain", "block"], "config file not found", {"KINITRO_CONFIG": "{root}/nope.toml"}
    ),
    "chain-register-no-wallet": Case(
        ["chain", "register", "--wallet", "bob", *W, "--url", "{down}"], "not found"
    ),
    "chain-stake-wallet-escapes": Case(
        ["chain", "stake", "5", "--wallet", "../../etc", *W], "wallet name"
    ),
    "chain-permit-bad-mode": Case(["chain", "permit", "maybe", "--wallet", "alice"], "on, off"),
    "chain-wallet-show-missing": Case(
        ["chain", "wallet", "show", "--name", "bob", *W], "not found"
    ),
    "chain-wallet-create-exists": Case(
        ["chain", "wallet", "create", "--name", "alice", *W], "already exists"
    ),
    "chain-wallet-create-path-is-file": Case(
        ["chain", "wallet", "create", "--name", "x", "--wallet-path", "{afile}/w"],
        "cannot create wallet",
    ),
    "chain-wallet-encrypt-without-password": Case(
        ["chain", "wallet", "create", "--name", "enc", "--encrypt", *W],
        "KINITRO_CHAIN_COLDKEY_PASSWORD",
    ),
    "chain-run-data-dir-is-file": Case(
        ["chain", "run", "--data-dir", "{afile}", "--port", "0"], "data directory"
    ),
    "chain-run-corrupt-genesis": Case(
        ["chain", "run", "--data-dir", "{genesis}", "--port", "0"], "is corrupted"
    ),
    "chain-run-zero-block-interval": Case(
        ["chain", "run", "--data-dir", "{root}/c0", "--block-interval", "0"], "block-interval"
    ),
    "chain-run-tiny-commit-space": Case(
        ["chain", "run", "--data-dir", "{root}/c1", "--commit-space", "99"],
        "commit-space",
    ),
    # ---------------------------------------------------------------- kinitro miner
    "miner-init-onto-file": Case(["miner", "init", "{afile}"], "cannot create the bundle"),
    "miner-init-bad-name": Case(["miner", "init", "{root}/n", "--name", "a b"], "agent name"),
    "miner-package-missing-dir": Case(["miner", "package", "{root}/nope"], "not found"),
    "miner-package-broken-manifest": Case(["miner", "package", "{badtoml}"], "not valid TOML"),
    "miner-package-symlink-escape": Case(["miner", "package", "{escape}"], "outside the bundle"),
    "miner-package-oversize": Case(
        ["miner", "package", "{big}"], "larger than", {"KINITRO_MINER_MAX_BUNDLE_BYTES": "32768"}
    ),
    "miner-package-secret": Case(["miner", "package", "{secret}"], "secret"),
    "miner-package-missing-entrypoint": Case(["miner", "package", "{noentry}"], "entrypoint"),
    "miner-package-out-unwritable": Case(
        ["miner", "package", "{good}", "--out", "{afile}/x.tar"], "cannot package"
    ),
    "miner-package-max-bytes-not-int": Case(
        ["miner", "package", "{good}"],
        "KINITRO_MINER_MAX_BUNDLE_BYTES",
        {"KINITRO_MINER_MAX_BUNDLE_BYTES": "lots"},
    ),
    "miner-upload-bad-repo": Case(
        ["miner", "upload", "{good}", "--repo", "../../etc", "--registry-dir", "{root}/r"],
        "repo",
    ),
    "miner-upload-registry-is-file": Case(
        ["miner", "upload", "{good}", "--repo", "a/b", "--registry-dir", "{afile}"],
        "cannot store",
    ),
    "miner-upload-unknown-registry": Case(
        ["miner", "upload", "{good}", "--repo", "a/b", "--registry", "s3"], "'local' or 'hf'"
    ),
    "miner-upload-hub-unreachable": Case(
        ["miner", "upload", "{good}", "--repo", "a/b", "--registry", "hf"],
        "cannot reach the Hub",
        {"KINITRO_MINER_HF_ENDPOINT": "{down}", "KINITRO_MINER_HF_TOKEN": "hf_test"},
    ),
    "miner-commit-upload-record-missing": Case(
        ["miner", "commit", "-c", "mt1", "--from-upload", "{root}/none.json"], "cannot read"
    ),
    "miner-commit-upload-record-not-object": Case(
        ["miner", "commit", "-c", "mt1", "--from-upload", "{list}"], "upload record"
    ),
    "miner-commit-bad-sha256": Case(
        ["miner", "commit", "-c", "mt1", "--repo", "a/b", "--revision", "01", "--sha256", "zz"],
        "sha256",
    ),
    "miner-commit-too-long": Case(
        ["miner", "commit", "-c", "mt1", "--repo", "a/" + "b" * 90, *PIN[2:]],
        "128",
    ),
    "miner-commit-no-wallet": Case(
        ["miner", "commit", "-c", "mt1", *PIN, "--wallet", "bob", *W], "cannot read hotkey"
    ),
    "miner-commit-chain-unreachable": Case(
        ["miner", "commit", "-c", "mt1", *PIN, "--wallet", "alice", *W, "--chain-url", "{down}"],
        "unreachable",
    ),
    "miner-status-no-wallet": Case(["miner", "status", "--wallet", "bob", *W], "not found"),
    "miner-status-chain-unreachable": Case(
        ["miner", "status", "--wallet", "alice", *W, "--chain-url", "{down}"], "unreachable"
    ),
    "miner-status-netuid-env-not-int": Case(
        ["miner", "status", "--wallet", "alice", *W],
        "KINITRO_MINER_NETUID",
        {"KINITRO_MINER_NETUID": "abc"},
    ),
    # ---------------------------------------------------------------- kinitro backend run
    "backend-port-env-not-int": Case(
        ["backend", "run"], "KINITRO_BACKEND_PORT", {"KINITRO_BACKEND_PORT": "abc"}
    ),
    "backend-port-out-of-range": Case(["backend", "run", "--port", "70000"], "65535"),
    "backend-broken-toml": Case(["backend", "run", "--config", "{broken}"], "cannot read config"),
    "backend-database-unreachable": Case(
        ["backend", "run", "--database-url", "{pgdown}", "--port", "0"],
        "cannot connect to the backend database",
    ),
    "backend-database-url-garbage": Case(
        ["backend", "run", "--database-url", "not a url"], "invalid database URL"
    ),
    "backend-bad-log-level": Case(
        ["backend", "run", "--database-url", "{pgdown}", "--log-level", "LOUD"], "log level"
    ),
    "backend-unknown-chain": Case(
        ["backend", "run"], "'local' or 'bittensor'", {"KINITRO_BACKEND_CHAIN": "eth"}
    ),
    # ---------------------------------------------------------------- kinitro db
    "db-upgrade-unreachable": Case(
        ["db", "upgrade", "--role", "backend", "--url", "{pgdown}"], "cannot connect"
    ),
    "db-current-url-garbage": Case(
        ["db", "current", "--role", "validator", "--url", "not a url"], "URL"
    ),
    "db-upgrade-no-url": Case(["db", "upgrade", "--role", "backend"], "--url"),
}


def _run(world: World, case: Case) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KINITRO_", "HF_"))}
    env.update({"HOME": str(world.root / "home"), "HF_HUB_DISABLE_TELEMETRY": "1"})
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    env.update({k: world.fill(v) for k, v in case.env.items()})
    return subprocess.run(
        [sys.executable, "-m", "kinitro", *(world.fill(a) for a in case.argv)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=world.root,
        check=False,
    )


@pytest.mark.parametrize("name", list(CASES))
def test_mistake_gives_one_clear_error(world: World, name: str) -> None:
    case = CASES[name]
    result = _run(world, case)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip(" │╭╮╰╯─")]
    assert lines, f"no error message on stderr: {output}"
    message = " ".join(line.strip(" │") for line in lines)
    assert case.expect in message, message
    # one message, not a dump (Typer usage errors add "Usage:", "Try … -h" and a box title)
    assert len(lines) <= 4, result.stderr


def test_db_upgrade_to_unknown_revision(empty_db_url: str, world: World) -> None:
    result = _run(
        world,
        Case(["db", "upgrade", "--role", "backend", "--url", empty_db_url, "--revision", "zz"], ""),
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "zz" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("role", ["chain", "backend"])
def test_port_already_in_use(role: str, world: World, backend_db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        if role == "chain":
            argv = ["chain", "run", "--data-dir", "{root}/busy-chain", "--port", port]
        else:
            argv = ["backend", "run", "--database-url", backend_db_url, "--port", port]
        env = {"KINITRO_BACKEND_CHAIN_URL": "{down}", "KINITRO_BACKEND_REGISTRY_DIR": "{root}/r"}
        result = _run(world, Case(argv, "", env))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "address already in use" in output, output
