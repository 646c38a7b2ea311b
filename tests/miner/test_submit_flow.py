"""Acceptance: init → package → upload → commit on a LocalChain, read back by another
process with the exact block; deterministic packaging; refused commitments."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kinitro.chain.local.process import LocalChainProcess
from kinitro.chain.wallets import create_wallet
from kinitro.protocol.commitment import parse_commitment
from kinitro.protocol.common import ArtifactRef
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.errors import ArtifactNotFoundError


def kinitro(
    *args: str, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "kinitro", *args],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kinitro {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with LocalChainProcess(tmp_path_factory.mktemp("chain") / "data", block_interval=0.2) as proc:
        yield proc


def test_init_package_upload_commit_status(tmp_path: Path, chain: LocalChainProcess) -> None:
    wallets = tmp_path / "wallets"
    registry = tmp_path / "registry"
    create_wallet("miner", "default", wallets)
    w = ["--wallet", "miner", "--wallet-path", str(wallets)]
    kinitro("chain", "register", *w, "--url", chain.url)

    bundle = tmp_path / "agent"
    kinitro("miner", "init", str(bundle), "--name", "reach-agent")
    assert {p.name for p in bundle.iterdir()} == {"agent.py", "kinitro.toml", "README.md"}
    packed = as_json(kinitro("miner", "package", str(bundle), "--json"))
    assert set(packed) >= {"sha256", "size"} and packed["files"] == 3

    ref = as_json(
        kinitro(
            "miner",
            "upload",
            str(bundle),
            "--repo",
            "alice/reach-agent",
            "--registry",
            "local",
            "--registry-dir",
            str(registry),
            "--json",
        )
    )
    assert ref["sha256"] == packed["sha256"] and ref["size_bytes"] == packed["size"]
    assert ref["registry"] == "local" and ref["revision"] == packed["sha256"][:16]
    assert ref["private"] is True  # commit before publish: nobody reads it yet

    pinned = ArtifactRef(**{k: v for k, v in ref.items() if k != "private"})
    with pytest.raises(ArtifactNotFoundError):
        LocalRegistry(registry).stat(pinned.repo, pinned.revision)
    publish = ["miner", "publish", str(bundle), "--registry-dir", str(registry), *w]
    early = kinitro(*publish, "--chain-url", chain.url, check=False)
    assert early.returncode == 2 and "no commitment on chain" in early.stderr
    assert "commit first" in early.stderr and "Traceback" not in early.stderr

    committed = as_json(
        kinitro(
            "miner",
            "commit",
            "--competition",
            "reach",
            "--from-upload",
            str(bundle / ".kinitro" / "upload.json"),
            *w,
            "--chain-url",
            chain.url,
            "--json",
        )
    )
    assert committed["uid"] == 0

    # a second process reads it back with the exact block
    listed = as_json(kinitro("chain", "commitments", "--url", chain.url, "--json"))
    assert [(c["hotkey"], c["block"], c["data"]) for c in listed] == [
        (committed["hotkey"], committed["block"], committed["commitment"])
    ]

    parsed = parse_commitment(listed[0]["data"])
    assert (parsed.competition_id, parsed.repo, parsed.sha256) == (
        "reach",
        "alice/reach-agent",
        packed["sha256"],
    )

    status = as_json(
        kinitro(
            "miner",
            "status",
            *w,
            "--chain-url",
            chain.url,
            "--backend-url",
            "http://127.0.0.1:9",
            "--json",
        )
    )
    assert status["chain"]["uid"] == 0
    assert status["chain"]["commitment"]["block"] == committed["block"]
    assert status["chain"]["commitment"]["parsed"]["sha256"] == packed["sha256"]
    assert "unreachable" in status["backend"]["error"]

    # published after the commitment: the registry gives the exact archive back
    done = as_json(kinitro(*publish, "--chain-url", chain.url, "--json"))
    assert done == {"registry": "local", "repo": "alice/reach-agent", "published": True}
    out = LocalRegistry(registry).download(pinned, tmp_path / "dl.tar")
    assert out.read_bytes() == (bundle / ".kinitro" / "bundle.tar").read_bytes()


def test_same_bundle_from_two_paths_same_sha256(tmp_path: Path) -> None:
    first = tmp_path / "one" / "agent"
    kinitro("miner", "init", str(first), "--name", "same")
    second = tmp_path / "elsewhere" / "deeper" / "copy"
    shutil.copytree(first, second)
    (second / "agent.py").touch()  # different mtime must not matter
    (second / "__pycache__").mkdir()
    (second / "__pycache__" / "agent.cpython-311.pyc").write_bytes(b"noise")
    a = as_json(kinitro("miner", "package", str(first), "--json"))
    b = as_json(kinitro("miner", "package", "copy", "--json", cwd=second.parent))
    assert a["sha256"] == b["sha256"] and a["size"] == b["size"]


def test_commitment_over_128_bytes_or_malformed_is_refused(
    tmp_path: Path, chain: LocalChainProcess
) -> None:
    wallets = tmp_path / "wallets"
    create_wallet("m2", "default", wallets)
    w = ["--wallet", "m2", "--wallet-path", str(wallets), "--chain-url", chain.url]
    sha = "ab" * 32
    too_long = kinitro(
        "miner",
        "commit",
        "--competition",
        "reach",
        "--registry",
        "hf",
        "--repo",
        "a-very-long-namespace-name/an-even-longer-repository-name-for-the-agent",
        "--revision",
        "c" * 40,
        "--sha256",
        sha,
        *w,
        check=False,
    )
    assert too_long.returncode == 2
    assert "128-byte limit" in too_long.stderr and "Traceback" not in too_long.stderr
    bad_sha = kinitro(
        "miner",
        "commit",
        "--competition",
        "reach",
        "--registry",
        "local",
        "--repo",
        "alice/agent",
        "--revision",
        "abcd",
        "--sha256",
        "not-a-sha",
        *w,
        check=False,
    )
    assert bad_sha.returncode == 2 and "sha256" in bad_sha.stderr
    bad_comp = kinitro(
        "miner",
        "commit",
        "--competition",
        "Bad Competition!",
        "--registry",
        "local",
        "--repo",
        "alice/agent",
        "--revision",
        "abcd",
        "--sha256",
        sha,
        *w,
        check=False,
    )
    assert bad_comp.returncode == 2 and "competition_id" in bad_comp.stderr
    # unknown (unregistered) hotkey: the chain refuses with a specific message
    unregistered = kinitro(
        "miner",
        "commit",
        "--competition",
        "reach",
        "--registry",
        "local",
        "--repo",
        "alice/agent",
        "--revision",
        "abcd",
        "--sha256",
        sha,
        *w,
        check=False,
    )
    assert unregistered.returncode == 2 and "not registered" in unregistered.stderr
    assert (
        kinitro("chain", "commitments", "--url", chain.url, "--json").stdout.count("alice/agent")
        == 0
    )


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    kinitro("miner", "init", str(tmp_path / "a"))
    again = kinitro("miner", "init", str(tmp_path / "a"), check=False)
    assert again.returncode == 2 and "already exist" in again.stderr


def test_package_reports_bad_bundle(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    result = kinitro("miner", "package", str(tmp_path / "b"), check=False)
    assert result.returncode == 2 and "kinitro.toml" in result.stderr


def test_commit_mistakes_refused_before_anything_goes_on_chain(
    tmp_path: Path, chain: LocalChainProcess
) -> None:
    """Committing before uploading, or after editing the uploaded bundle: one specific
    message each, exit code 2, and the chain holds no commitment of this hotkey."""
    wallets = tmp_path / "wallets"
    info = create_wallet("m3", "default", wallets)
    w = ["--wallet", "m3", "--wallet-path", str(wallets), "--chain-url", chain.url]
    kinitro(
        "chain", "register", "--wallet", "m3", "--wallet-path", str(wallets), "--url", chain.url
    )
    bundle = tmp_path / "agent"
    kinitro("miner", "init", str(bundle))
    record = bundle / ".kinitro" / "upload.json"
    down = ["--backend-url", "http://127.0.0.1:9"]
    commit = ["miner", "commit", "-c", "reach", "--from-upload", str(record), *w, *down]

    early = kinitro(*commit, check=False)
    assert early.returncode == 2
    assert " ".join(early.stderr.split()) == (
        f"error: nothing uploaded yet: {record} does not exist; upload the bundle first "
        f"(kinitro miner upload {bundle} --repo <you>/<name>), then commit"
    )

    registry = ["--registry", "local", "--registry-dir", str(tmp_path / "registry")]
    kinitro("miner", "upload", str(bundle), "--repo", "m3/agent", *registry)
    uploaded = json.loads(record.read_text())["sha256"]
    agent = bundle / "agent.py"
    agent.write_text(agent.read_text().replace("self.gain = 10.0", "self.gain = 12.0"))
    now = as_json(kinitro("miner", "package", str(bundle), "--json"))["sha256"]
    stale = kinitro(*commit, check=False)
    assert stale.returncode == 2
    assert " ".join(stale.stderr.split()) == (
        f"error: {bundle} changed since it was uploaded (sha256 {now[:12]}…, uploaded "
        f"{uploaded[:12]}…): committing would pin the old bundle; upload it again "
        f"(kinitro miner upload {bundle} --repo m3/agent), then commit"
    )
    listed = as_json(kinitro("chain", "commitments", "--url", chain.url, "--json"))
    assert info.hotkey not in {c["hotkey"] for c in listed}

    # re-uploaded: the commit goes through (no backend answers: the id is not checked)
    kinitro("miner", "upload", str(bundle), "--repo", "m3/agent", *registry)
    done = kinitro(*commit)
    assert "warning: competition 'reach' not checked: backend at http://127.0.0.1:9" in " ".join(
        done.stderr.split()
    )
    assert "next: kinitro miner publish" in done.stdout
