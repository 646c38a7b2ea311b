"""Commit before publish, over the wire: the miner CLI uploads to a private Hugging Face
repo (a Hub fake at the HTTP level, real ``huggingface_hub`` client), commits on the real
LocalChain, the real backend waits for the artifact, the miner publishes, the backend
schedules it. A copier who reads the bundle only after the publish commits later and is
credited to the author; an artifact that never appears is rejected ``artifact_unavailable``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_hub import FakeHub
from kinitro.chain.wallets import create_wallet
from kinitro.protocol.commitment import encode_commitment
from kinitro.storage.errors import ArtifactNotFoundError
from kinitro.storage.huggingface import HuggingFaceRegistry

from .conftest import Backend, Net, create_competition, wait_for
from .test_flow import get

TOKEN = "hf_minerOwnsThisToken0123456789"


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    hub = FakeHub(TOKEN).start()
    yield hub
    hub.stop()


@pytest.fixture(autouse=True)
def anonymous_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend reads the Hub without any token of the miner's."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def miner_env(tmp_path: Path, hub: FakeHub, net: Net, wallet: str) -> dict[str, str]:
    return {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf-home-miner"),
        "KINITRO_MINER_HF_TOKEN": TOKEN,
        "KINITRO_MINER_HF_ENDPOINT": hub.url,
        "KINITRO_MINER_REGISTRY": "hf",
        "KINITRO_MINER_CHAIN_URL": net.chain.url,
        "KINITRO_MINER_NETUID": str(net.chain.netuid),
        "KINITRO_MINER_WALLET_PATH": str(tmp_path / "wallets"),
        "KINITRO_MINER_WALLET_NAME": wallet,
    }


def miner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinitro", "miner", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def miner_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = miner(env, *args, "--json")
    assert result.returncode == 0, f"miner {args}: {result.stdout}\n{result.stderr}"
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def registered_wallet(net: Net, tmp_path: Path, name: str) -> str:
    info = create_wallet(name, "default", tmp_path / "wallets")
    await net.chain.register(net.coldkey, info.hotkey)
    return info.hotkey


async def commit_pin(net: Net, miner: Any, ref: dict[str, Any]) -> None:
    """Commit the Hub artifact ``ref`` (an upload record) to competition mt1."""
    text = encode_commitment(
        competition_id="mt1",
        registry="hf",
        repo=ref["repo"],
        revision=ref["revision"],
        sha256=ref["sha256"],
    )
    await net.chain.commit(miner, text)


async def submission_of(backend: Backend, hotkey: str) -> dict[str, Any] | None:
    page = await get(backend, "/api/v1/submissions", miner_hotkey=hotkey)
    return page["items"][0] if page["items"] else None


async def status_is(backend: Backend, hotkey: str, status: str) -> dict[str, Any] | None:
    sub = await submission_of(backend, hotkey)
    return sub if sub is not None and sub["status"] == status else None


async def test_private_then_published_is_evaluated_and_a_later_copy_is_credited_to_it(
    make_backend: Any, net: Net, hub: FakeHub, tmp_path: Path
) -> None:
    async with make_backend(registry="hf", hf_endpoint=hub.url, artifact_deadline_s=600) as b:
        await create_competition(b)
        author = await registered_wallet(net, tmp_path, "author")
        env = miner_env(tmp_path, hub, net, "author")
        bundle = tmp_path / "agent"
        assert miner(env, "init", str(bundle), "--name", "sealed-agent").returncode == 0
        ref = miner_json(env, "upload", str(bundle), "--repo", "author/agent")
        assert ref["private"] is True
        # publishing before the commitment is refused: the bundle would be up for grabs
        early = miner(env, "publish", str(bundle))
        assert early.returncode == 2 and "commit first" in early.stderr, early.stderr
        assert hub.repos["author/agent"].private
        upload_json = str(bundle / ".kinitro" / "upload.json")
        miner_json(env, "commit", "-c", "mt1", "--from-upload", upload_json)
        # the backend sees the commitment but not the artifact: pending, not rejected
        await wait_for(lambda: submission_of(b, author), within=20)
        anonymous = HuggingFaceRegistry(endpoint=hub.url)

        with pytest.raises(ArtifactNotFoundError):  # what a copier sees: nothing
            anonymous.stat(ref["repo"], ref["revision"])
        assert (await submission_of(b, author) or {})["status"] == "pending"
        published = miner_json(env, "publish", str(bundle))
        assert published["published"] and not hub.repos["author/agent"].private
        original = await wait_for(lambda: status_is(b, author, "scheduled"), within=30)
        jobs = await get(b, "/api/v1/jobs", submission_id=original["id"])
        assert jobs["total"] >= 1
        # now a copier can read it and commits the very same artifact: later, so a copy
        copier = await net.neuron()
        await commit_pin(net, copier, ref)
        copy = await wait_for(lambda: status_is(b, copier.ss58_address, "scheduled"), within=30)
        assert copy["credited_submission_id"] == original["id"] != copy["id"]


async def test_an_artifact_that_never_appears_is_rejected_artifact_unavailable(
    make_backend: Any, net: Net, hub: FakeHub, tmp_path: Path
) -> None:
    async with make_backend(registry="hf", hf_endpoint=hub.url, artifact_deadline_s=2) as b:
        await create_competition(b)
        owner = HuggingFaceRegistry(token=TOKEN, endpoint=hub.url)
        archive = tmp_path / "bundle.tar"
        archive.write_bytes(b"never published")
        ref = owner.upload(archive, "shy/agent", private=True)
        miner = await net.neuron()
        await commit_pin(net, miner, ref.model_dump())
        sub = await wait_for(lambda: status_is(b, miner.ss58_address, "rejected"), within=30)
        assert sub["rejection_reason"] == "artifact_unavailable"
        assert "private repo must be published" in sub["rejection_detail"]
