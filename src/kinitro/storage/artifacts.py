"""The ``ArtifactRegistry`` port and ``LocalRegistry``, its content-addressed default.

A registry stores agent bundle archives (see :mod:`kinitro.storage.bundle`). Uploading
returns a pinned :class:`~kinitro.protocol.common.ArtifactRef` (registry, repo, revision,
sha256, size); downloading takes one and writes the archive only after its size is within
the cap and its sha256 matches — otherwise nothing is left behind.

Methods block (file and network I/O): call them through ``asyncio.to_thread`` from async
code. ``progress(done_bytes, total_bytes | None)`` callbacks drive progress bars.

**Commit before publish.** ``upload(..., private=True)`` stores the archive where only its
uploader can read it: the miner commits its sha256 on chain first and calls
``publish(repo)`` afterwards, so nobody can commit someone else's bundle before its author
(a copier only ever commits later, and a later identical commitment earns nothing).
Until it is published a private repo reads exactly like a missing one
(``ArtifactNotFoundError``), as on the Hugging Face Hub. A private upload into a repo that
is already public is refused: it would be readable at once.

``LocalRegistry`` layout::

    <root>/blobs/sha256/<hex>          the archives, content-addressed, read-only
    <root>/repos/<repo>/<revision>     text file holding the archive's sha256
    <root>/private/<repo>              marker: the repo is private (removed by publish)

Its revision is the first 16 hex digits of the sha256, so a revision never moves.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from kinitro.protocol.common import REPO_MAX, REPO_PATTERN, ArtifactRef, RegistryKind
from kinitro.storage.bundle import sha256_file
from kinitro.storage.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    RegistryError,
)

Progress = Callable[[int, int | None], None]
DEFAULT_MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
_REPO = re.compile(REPO_PATTERN)
_REVISION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ArtifactStat:
    """What the registry says about a revision without downloading it."""

    size_bytes: int
    sha256: str | None  # None when the registry does not expose it


@runtime_checkable
class ArtifactRegistry(Protocol):
    """Upload, describe and download pinned bundle archives."""

    @property
    def kind(self) -> RegistryKind: ...

    def upload(
        self,
        archive: Path,
        repo: str,
        *,
        private: bool = False,
        progress: Progress | None = None,
    ) -> ArtifactRef:
        """Store ``archive`` in ``repo`` (created ``private`` if new); return the pinned
        reference. ``private`` into an existing public repo raises :class:`RegistryError`."""
        ...

    def publish(self, repo: str) -> None:
        """Make ``repo`` readable by everyone (after its commitment is on chain)."""
        ...

    def stat(self, repo: str, revision: str) -> ArtifactStat:
        """Size (and sha256 when known) of the archive at ``repo@revision``."""
        ...

    def download(
        self,
        ref: ArtifactRef,
        dest: Path,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        progress: Progress | None = None,
    ) -> Path:
        """Write the archive pinned by ``ref`` to ``dest`` after verifying size and sha256."""
        ...


def check_repo(repo: str) -> str:
    if not isinstance(repo, str) or len(repo) > REPO_MAX or not _REPO.fullmatch(repo):
        raise RegistryError(
            f"repo {repo!r} is invalid: use 'name' or 'namespace/name' with [A-Za-z0-9._-]"
        )
    return repo


def read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def copy_verified(
    chunks: Iterable[bytes],
    dest: Path,
    *,
    expected_sha256: str,
    max_bytes: int,
    total: int | None,
    progress: Progress | None,
    what: str,
) -> Path:
    """Stream ``chunks`` to ``dest`` atomically.

    The size cap is enforced before (``total``) and while streaming; the file appears at
    ``dest`` only when the sha256 matches, otherwise nothing is left behind.
    """
    if total is not None and total > max_bytes:
        raise ArtifactTooLargeError(
            f"{what} is {total} bytes, over the {max_bytes}-byte download cap"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                done += len(chunk)
                if done > max_bytes:
                    raise ArtifactTooLargeError(f"{what} exceeds the {max_bytes}-byte download cap")
                digest.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress(done, total)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ArtifactIntegrityError(
                f"{what} is corrupted or was replaced: sha256 {actual} != pinned {expected_sha256}"
            )
        tmp.replace(dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


class LocalRegistry:
    """Content-addressed directory registry (the devnet default)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def kind(self) -> RegistryKind:
        return "local"

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / "sha256" / sha256

    def _ref(self, repo: str, revision: str) -> Path:
        check_repo(repo)
        if not _REVISION.fullmatch(revision):
            raise RegistryError(f"revision {revision!r} is invalid")
        return self.root / "repos" / repo / revision

    def _private_marker(self, repo: str) -> Path:
        return self.root / "private" / check_repo(repo)

    def _is_private(self, repo: str) -> bool:
        return self._private_marker(repo).exists()

    def upload(
        self,
        archive: Path,
        repo: str,
        *,
        private: bool = False,
        progress: Progress | None = None,
    ) -> ArtifactRef:
        check_repo(repo)
        if not archive.is_file():
            raise ArtifactNotFoundError(f"archive not found: {archive}")
        try:
            if private and not self._is_private(repo):
                existing = self.root / "repos" / repo
                if existing.is_dir() and any(p.is_file() for p in existing.iterdir()):
                    raise RegistryError(
                        f"repo {repo} is public: a bundle uploaded there can be read (and "
                        "committed by someone else) before your commitment; use a new repo"
                    )
                marker = self._private_marker(repo)
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            return self._upload(archive, repo, progress)
        except OSError as exc:
            raise RegistryError(
                f"cannot store {archive.name} in the local registry {self.root}: "
                f"{exc.strerror or exc}"
            ) from exc

    def _upload(self, archive: Path, repo: str, progress: Progress | None) -> ArtifactRef:
        sha = sha256_file(archive)
        size = archive.stat().st_size
        blob = self._blob(sha)
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            # A unique temporary name: two miners uploading the same bundle at once (a
            # copy, say) must not steal each other's partial file before the rename.
            fd, tmp_name = tempfile.mkstemp(dir=blob.parent, prefix=f".{sha}.", suffix=".partial")
            tmp = Path(tmp_name)
            try:
                with archive.open("rb") as src, os.fdopen(fd, "wb") as dst:
                    done = 0
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, size)
                    dst.flush()
                    os.fsync(dst.fileno())
                if sha256_file(tmp) != sha:
                    raise ArtifactIntegrityError(f"{archive} changed while uploading")
                tmp.chmod(0o444)
                tmp.replace(blob)
            finally:
                tmp.unlink(missing_ok=True)
        elif progress is not None:
            progress(size, size)
        revision = sha[:16]
        ref_path = self._ref(repo, revision)
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_ref_name = tempfile.mkstemp(
            dir=ref_path.parent, prefix=f".{revision}.", suffix=".partial"
        )
        tmp_ref = Path(tmp_ref_name)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(sha + "\n")
            tmp_ref.chmod(0o644)
            tmp_ref.replace(ref_path)
        finally:
            tmp_ref.unlink(missing_ok=True)
        return ArtifactRef(
            registry="local", repo=repo, revision=revision, sha256=sha, size_bytes=size
        )

    def publish(self, repo: str) -> None:
        try:
            self._private_marker(repo).unlink(missing_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot publish {repo} in {self.root}: {exc}") from exc

    def _resolve(self, repo: str, revision: str) -> str:
        ref_path = self._ref(repo, revision)
        if self._is_private(repo):  # reads like a missing repo, as on the Hub
            raise ArtifactNotFoundError(
                f"no artifact {repo}@{revision} in the local registry {self.root}"
            )
        try:
            return ref_path.read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            raise ArtifactNotFoundError(
                f"no artifact {repo}@{revision} in the local registry {self.root}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RegistryError(f"cannot read {repo}@{revision} in {self.root}: {exc}") from exc

    def stat(self, repo: str, revision: str) -> ArtifactStat:
        sha = self._resolve(repo, revision)
        blob = self._blob(sha)
        if not blob.exists():
            raise ArtifactNotFoundError(f"blob {sha} for {repo}@{revision} is missing")
        return ArtifactStat(size_bytes=blob.stat().st_size, sha256=sha)

    def download(
        self,
        ref: ArtifactRef,
        dest: Path,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        progress: Progress | None = None,
    ) -> Path:
        sha = self._resolve(ref.repo, ref.revision)
        what = f"local:{ref.repo}@{ref.revision}"
        if sha != ref.sha256:
            raise ArtifactIntegrityError(f"{what} holds sha256 {sha}, not the pinned {ref.sha256}")
        blob = self._blob(sha)
        if not blob.exists():
            raise ArtifactNotFoundError(f"blob {sha} for {what} is missing")
        return copy_verified(
            read_chunks(blob),
            dest,
            expected_sha256=ref.sha256,
            max_bytes=max_bytes,
            total=blob.stat().st_size,
            progress=progress,
            what=what,
        )


def open_registry(
    kind: RegistryKind,
    *,
    local_dir: Path,
    hf_token: str | None = None,
    hf_endpoint: str | None = None,
) -> ArtifactRegistry:
    """The registry adapter for ``kind`` ("local" or "hf")."""
    if kind == "hf":
        from kinitro.storage.huggingface import HuggingFaceRegistry  # noqa: PLC0415 - the Hub client loads only for the hf registry

        return HuggingFaceRegistry(token=hf_token, endpoint=hf_endpoint)
    return LocalRegistry(local_dir)
