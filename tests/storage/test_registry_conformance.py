"""One conformance suite for both artifact registries: LocalRegistry and
HuggingFaceRegistry against a fake Hub at the HTTP level (real huggingface_hub client)."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fake_hub import FakeHub
from kinitro.protocol.common import ArtifactRef
from kinitro.storage.artifacts import ArtifactRegistry, LocalRegistry
from kinitro.storage.bundle import package_bundle
from kinitro.storage.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    RegistryError,
)
from kinitro.storage.huggingface import HuggingFaceRegistry

TOKEN = "hf_conformanceSecretToken123456"


@dataclass
class Harness:
    registry: ArtifactRegistry  # the uploader's (its token owns the repos)
    reader: ArtifactRegistry  # anyone else (a backend, a copier): no token
    corrupt: Callable[[ArtifactRef], None]  # make the next download return other bytes
    missing_revision: str


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    hub = FakeHub(TOKEN).start()
    yield hub
    hub.stop()


@pytest.fixture(params=["local", "hf"])
def harness(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Harness:
    monkeypatch.delenv("HF_TOKEN", raising=False)  # anonymous means anonymous
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    if request.param == "local":
        registry = LocalRegistry(tmp_path / "registry")

        def corrupt_local(ref: ArtifactRef) -> None:
            blob = tmp_path / "registry" / "blobs" / "sha256" / ref.sha256
            blob.chmod(0o644)
            blob.write_bytes(blob.read_bytes()[:-1] + b"!")

        return Harness(registry, registry, corrupt_local, "0123456789abcdef")
    hub: FakeHub = request.getfixturevalue("hub")

    def corrupt_hf(ref: ArtifactRef) -> None:
        hub.corrupt_next_download = True

    return Harness(
        HuggingFaceRegistry(token=TOKEN, endpoint=hub.url),
        HuggingFaceRegistry(endpoint=hub.url),
        corrupt_hf,
        "f" * 40,
    )


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "kinitro.toml").write_text('name = "conf"\nentrypoint = "agent:Agent"\n')
    (root / "agent.py").write_text("class Agent:\n    def act(self, obs): return obs\n")
    (root / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return package_bundle(root, tmp_path / "bundle.tar").path


def test_upload_stat_download_roundtrip(harness: Harness, archive: Path, tmp_path: Path) -> None:
    seen: list[int] = []
    ref = harness.registry.upload(archive, "alice/agent", progress=lambda d, t: seen.append(d))
    assert ref.registry == harness.registry.kind and ref.repo == "alice/agent"
    assert ref.size_bytes == archive.stat().st_size and seen[-1] == ref.size_bytes
    stat = harness.registry.stat(ref.repo, ref.revision)
    assert stat.size_bytes == ref.size_bytes and stat.sha256 in (None, ref.sha256)
    got = harness.registry.download(ref, tmp_path / "out" / "b.tar")
    assert got.read_bytes() == archive.read_bytes()
    # uploading the same bytes again pins the same content
    again = harness.registry.upload(archive, "alice/agent")
    assert again.sha256 == ref.sha256


def test_corrupted_artifact_is_refused_and_nothing_written(
    harness: Harness, archive: Path, tmp_path: Path
) -> None:
    ref = harness.registry.upload(archive, "alice/corrupt")
    harness.corrupt(ref)
    dest = tmp_path / "out" / "b.tar"
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        harness.registry.download(ref, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_wrong_pinned_sha_is_refused(harness: Harness, archive: Path, tmp_path: Path) -> None:
    ref = harness.registry.upload(archive, "alice/pinned")
    forged = ref.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ArtifactIntegrityError):
        harness.registry.download(forged, tmp_path / "b.tar")
    assert not (tmp_path / "b.tar").exists()


def test_oversize_download_is_refused(harness: Harness, archive: Path, tmp_path: Path) -> None:
    ref = harness.registry.upload(archive, "alice/big")
    with pytest.raises(ArtifactTooLargeError, match="cap"):
        harness.registry.download(ref, tmp_path / "b.tar", max_bytes=1000)
    assert not (tmp_path / "b.tar").exists()


def test_unknown_revision_and_repo(harness: Harness, archive: Path, tmp_path: Path) -> None:
    ref = harness.registry.upload(archive, "alice/known")
    with pytest.raises(ArtifactNotFoundError):
        harness.registry.stat("alice/known", harness.missing_revision)
    with pytest.raises(ArtifactNotFoundError):
        harness.registry.download(
            ref.model_copy(update={"repo": "nobody/nothing"}), tmp_path / "b.tar"
        )
    with pytest.raises(RegistryError):
        harness.registry.upload(archive, "bad repo name!")


def test_private_until_published(harness: Harness, archive: Path, tmp_path: Path) -> None:
    """Commit before publish: a private upload reads like a missing artifact to everyone
    else until its repo is published; the pinned revision does not change."""
    ref = harness.registry.upload(archive, "alice/sealed", private=True)
    with pytest.raises(ArtifactNotFoundError):
        harness.reader.stat(ref.repo, ref.revision)
    with pytest.raises(ArtifactNotFoundError):
        harness.reader.download(ref, tmp_path / "early.tar")
    assert not (tmp_path / "early.tar").exists()
    harness.registry.publish(ref.repo)
    assert harness.reader.stat(ref.repo, ref.revision).size_bytes == ref.size_bytes
    got = harness.reader.download(ref, tmp_path / "late.tar")
    assert got.read_bytes() == archive.read_bytes()


def test_private_upload_into_a_public_repo_is_refused(harness: Harness, archive: Path) -> None:
    harness.registry.upload(archive, "alice/open")
    with pytest.raises(RegistryError, match="public"):
        harness.registry.upload(archive, "alice/open", private=True)
    sealed = harness.registry.upload(archive, "alice/closed", private=True)
    again = harness.registry.upload(archive, "alice/closed", private=True)  # still private
    assert again.revision in (sealed.revision, again.revision)
    with pytest.raises(ArtifactNotFoundError):
        harness.reader.stat(again.repo, again.revision)


def test_hf_private_repo_is_invisible_like_the_hub(
    hub: FakeHub, archive: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Hub answers a private repo with RepoNotFound (401 without a token, 404 with
    another account's), the same as a missing one; only the owner reads or publishes it."""

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    owner = HuggingFaceRegistry(token=TOKEN, endpoint=hub.url)
    ref = owner.upload(archive, "alice/hidden", private=True)
    assert owner.stat(ref.repo, ref.revision).size_bytes == ref.size_bytes
    url = f"{hub.url}/alice/hidden/resolve/{ref.revision}/bundle.tar"
    anonymous = httpx.get(url)
    other = httpx.get(url, headers={"Authorization": "Bearer hf_someoneElse0000"})
    missing = httpx.get(f"{hub.url}/alice/nothing/resolve/{ref.revision}/bundle.tar")
    assert (anonymous.status_code, other.status_code) == (401, 404)
    assert anonymous.headers["x-error-code"] == other.headers["x-error-code"] == "RepoNotFound"
    assert missing.headers["x-error-code"] == "RepoNotFound"
    stranger = HuggingFaceRegistry(token="hf_someoneElse0000", endpoint=hub.url)
    with pytest.raises(ArtifactNotFoundError):
        stranger.stat(ref.repo, ref.revision)
    with pytest.raises(ArtifactNotFoundError):
        stranger.publish(ref.repo)  # not the owner: it does not even see the repo
    with pytest.raises(ArtifactNotFoundError):
        HuggingFaceRegistry(endpoint=hub.url).stat(ref.repo, ref.revision)
    owner.publish(ref.repo)
    assert httpx.get(url).status_code == 200


def test_hf_token_is_sent_but_never_logged(
    hub: FakeHub, archive: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = HuggingFaceRegistry(token=TOKEN, endpoint=hub.url)
    hub.auth_seen.clear()
    with caplog.at_level(logging.DEBUG):
        ref = registry.upload(archive, "alice/secret")
        registry.download(ref, tmp_path / "b.tar")
    assert f"Bearer {TOKEN}" in hub.auth_seen
    assert TOKEN not in caplog.text and TOKEN not in repr(registry)


def test_hf_bad_token_and_unpinned_revision(hub: FakeHub, archive: Path) -> None:
    with pytest.raises(RegistryError, match="token") as info:
        HuggingFaceRegistry(token="hf_wrongtoken000000000", endpoint=hub.url).upload(
            archive, "alice/denied"
        )
    assert "hf_wrongtoken" not in str(info.value)
    with pytest.raises(RegistryError, match="not pinned"):
        HuggingFaceRegistry(token=TOKEN, endpoint=hub.url).stat("alice/agent", "main")


def test_local_concurrent_uploads_of_the_same_bundle(archive: Path, tmp_path: Path) -> None:
    """Two miners uploading identical bytes at once (a copy) both succeed.

    Regression: a fixed temporary name let one upload rename the other's partial file away.
    """

    registry_root = tmp_path / "registry"
    # spawn, not fork: a forked child of this test process (with the threads earlier tests
    # left, e.g. Ray's) can inherit a held lock and hang; it did in the full suite
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(8) as pool:
        refs = pool.starmap(
            _upload_in_child, [(registry_root, archive, f"miner/copy-{i % 4}") for i in range(32)]
        )
    assert len({ref.sha256 for ref in refs}) == 1
    registry = LocalRegistry(registry_root)
    for ref in refs:
        assert registry.stat(ref.repo, ref.revision).sha256 == ref.sha256
    leftovers = [p.name for p in registry_root.rglob(".*.partial")]
    assert leftovers == []


def _upload_in_child(root: Path, archive: Path, repo: str) -> ArtifactRef:
    return LocalRegistry(root).upload(archive, repo)
