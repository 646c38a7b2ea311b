"""One conformance suite for both artifact registries: LocalRegistry and
HuggingFaceRegistry against a fake Hub at the HTTP level (real huggingface_hub client)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    registry: ArtifactRegistry
    corrupt: Callable[[ArtifactRef], None]  # make the next download return other bytes
    missing_revision: str


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    hub = FakeHub(TOKEN).start()
    yield hub
    hub.stop()


@pytest.fixture(params=["local", "hf"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "local":
        registry = LocalRegistry(tmp_path / "registry")

        def corrupt_local(ref: ArtifactRef) -> None:
            blob = tmp_path / "registry" / "blobs" / "sha256" / ref.sha256
            blob.chmod(0o644)
            blob.write_bytes(blob.read_bytes()[:-1] + b"!")

        return Harness(registry, corrupt_local, "0123456789abcdef")
    hub: FakeHub = request.getfixturevalue("hub")

    def corrupt_hf(ref: ArtifactRef) -> None:
        hub.corrupt_next_download = True

    return Harness(HuggingFaceRegistry(token=TOKEN, endpoint=hub.url), corrupt_hf, "f" * 40)


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
    import multiprocessing

    registry_root = tmp_path / "registry"
    ctx = multiprocessing.get_context("fork")
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
