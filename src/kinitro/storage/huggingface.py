"""``HuggingFaceRegistry``: agent bundles on the Hugging Face Hub (``huggingface_hub``).

Upload creates the model repo if needed (private when asked: the commit-before-publish
flow, see :mod:`kinitro.storage.artifacts`) and pushes one commit with the bundle archive
(``bundle.tar``, stored through Git LFS) and a copy of its manifest (``kinitro.toml``, so
the repo is readable on the Hub). The returned revision is that commit's full 40-hex sha:
a pinned revision never moves, unlike a branch. ``publish`` makes the repo public
(``update_repo_settings(visibility="public")``); a private repo reads as missing to
everyone else (the Hub answers ``RepoNotFound``).

Download resolves ``repo@revision`` (never a branch), checks the size the Hub reports
against the cap, streams the archive with the cap enforced, and keeps it only when its
sha256 matches the pinned one. The token comes from settings (or ``HF_TOKEN`` / the saved
login, as huggingface_hub does); it is sent only in the ``Authorization`` header and never
logged or included in errors or ``repr``.
"""

from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils._headers import build_hf_headers

from kinitro.protocol.common import ArtifactRef, RegistryKind
from kinitro.storage.artifacts import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    ArtifactStat,
    Progress,
    check_repo,
    copy_verified,
)
from kinitro.storage.bundle import ARCHIVE_NAME, MANIFEST_NAME, sha256_file
from kinitro.storage.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    RegistryError,
)

_PINNED = re.compile(r"^[0-9a-f]{40}$")


class HuggingFaceRegistry:
    """Artifact registry on the Hugging Face Hub (or any Hub-compatible endpoint)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        endpoint: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._token = token
        self._endpoint = endpoint
        self._timeout = timeout

    def __repr__(self) -> str:
        token = "***" if self._token else None
        return f"HuggingFaceRegistry(endpoint={self.endpoint!r}, token={token})"

    @property
    def kind(self) -> RegistryKind:
        return "hf"

    @property
    def endpoint(self) -> str:
        return (self._endpoint or constants.ENDPOINT).rstrip("/")

    def _api(self) -> HfApi:
        return HfApi(endpoint=self.endpoint, token=self._token)

    def _translate(self, exc: Exception, what: str) -> Exception:
        if isinstance(exc, RepositoryNotFoundError | RevisionNotFoundError | EntryNotFoundError):
            return ArtifactNotFoundError(f"{what} not found on the Hub ({type(exc).__name__})")
        if isinstance(exc, HfHubHTTPError):
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                return RegistryError(
                    f"the Hub refused {what} (HTTP {status}): check the token's write access"
                )
            return RegistryError(f"the Hub failed on {what} (HTTP {status})")
        if isinstance(exc, _network_errors()):
            return RegistryError(f"cannot reach the Hub at {self.endpoint} for {what}: {exc}")
        return exc

    # ---- upload -------------------------------------------------------------------------

    def upload(
        self,
        archive: Path,
        repo: str,
        *,
        private: bool = False,
        progress: Progress | None = None,
    ) -> ArtifactRef:
        check_repo(repo)
        if "/" not in repo:
            raise RegistryError(f"Hugging Face repos need a namespace: 'user/{repo}'")
        if not archive.is_file():
            raise ArtifactNotFoundError(f"archive not found: {archive}")
        sha = sha256_file(archive)
        size = archive.stat().st_size
        manifest = _manifest_from_archive(archive)
        api = self._api()
        what = f"upload to {repo}"
        # huggingface_hub warns that file objects bypass Xet: that is deliberate (plain LFS).
        commit_log = logging.getLogger("huggingface_hub._commit_api")
        previous_level = commit_log.level
        commit_log.setLevel(logging.ERROR)
        try:
            api.create_repo(repo, exist_ok=True, private=private)
            if private and not api.repo_info(repo).private:
                raise RegistryError(
                    f"repo {repo} is public on the Hub: a bundle uploaded there can be read "
                    "(and committed by someone else) before your commitment; use a new repo "
                    "or make it private first"
                )
            with archive.open("rb") as fh:
                operations = [CommitOperationAdd(path_in_repo=ARCHIVE_NAME, path_or_fileobj=fh)]
                if manifest is not None:
                    operations.append(
                        CommitOperationAdd(path_in_repo=MANIFEST_NAME, path_or_fileobj=manifest)
                    )
                info = api.create_commit(
                    repo,
                    operations=operations,
                    commit_message=f"Kinitro bundle sha256:{sha[:16]}",
                )
        except Exception as exc:
            translated = self._translate(exc, what)
            if translated is exc:
                raise
            raise translated from None
        finally:
            commit_log.setLevel(previous_level)
        if progress is not None:
            progress(size, size)
        revision = str(info.oid)
        if not _PINNED.fullmatch(revision):
            raise RegistryError(f"the Hub returned an unexpected commit id {revision!r}")
        return ArtifactRef(registry="hf", repo=repo, revision=revision, sha256=sha, size_bytes=size)

    def publish(self, repo: str) -> None:
        check_repo(repo)
        try:
            self._api().update_repo_settings(repo, visibility="public")
        except Exception as exc:
            translated = self._translate(exc, f"publishing {repo}")
            if translated is exc:
                raise
            raise translated from None

    # ---- stat / download ----------------------------------------------------------------

    def stat(self, repo: str, revision: str) -> ArtifactStat:
        check_repo(repo)
        _require_pinned(revision)
        what = f"hf:{repo}@{revision}"
        try:
            infos = self._api().get_paths_info(repo, [ARCHIVE_NAME], revision=revision)
        except Exception as exc:
            translated = self._translate(exc, what)
            if translated is exc:
                raise
            raise translated from None
        for info in infos:
            if getattr(info, "path", None) == ARCHIVE_NAME and hasattr(info, "size"):
                lfs = getattr(info, "lfs", None)
                return ArtifactStat(
                    size_bytes=int(info.size), sha256=None if lfs is None else str(lfs.sha256)
                )
        raise ArtifactNotFoundError(f"{what} has no {ARCHIVE_NAME}")

    def download(
        self,
        ref: ArtifactRef,
        dest: Path,
        *,
        max_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        progress: Progress | None = None,
    ) -> Path:
        what = f"hf:{ref.repo}@{ref.revision}"
        info = self.stat(ref.repo, ref.revision)
        if info.size_bytes > max_bytes:
            raise ArtifactTooLargeError(
                f"{what} is {info.size_bytes} bytes, over the {max_bytes}-byte download cap"
            )
        if info.sha256 is not None and info.sha256 != ref.sha256:
            raise ArtifactIntegrityError(
                f"{what} holds sha256 {info.sha256}, not the pinned {ref.sha256}"
            )
        url = hf_hub_url(ref.repo, ARCHIVE_NAME, revision=ref.revision, endpoint=self.endpoint)
        headers = build_hf_headers(token=self._token)
        try:
            with (
                httpx.Client(timeout=self._timeout, follow_redirects=True) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code == 404:
                    raise ArtifactNotFoundError(f"{what} not found on the Hub")
                if response.status_code != 200:
                    raise RegistryError(f"the Hub answered HTTP {response.status_code} for {what}")
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else info.size_bytes
                return copy_verified(
                    response.iter_bytes(1 << 20),
                    dest,
                    expected_sha256=ref.sha256,
                    max_bytes=max_bytes,
                    total=total,
                    progress=progress,
                    what=what,
                )
        except httpx.HTTPError as exc:
            raise RegistryError(f"download of {what} failed: {type(exc).__name__}") from None


def _network_errors() -> tuple[type[BaseException], ...]:
    """Transport errors of the HTTP clients huggingface_hub may use (httpx or httpx2)."""
    errors: list[type[BaseException]] = [httpx.HTTPError, OSError]
    try:
        import httpx2  # noqa: PLC0415 - optional: huggingface_hub may run on httpx2
    except ImportError:
        pass
    else:
        errors.append(httpx2.HTTPError)
    return tuple(errors)


def _require_pinned(revision: str) -> None:
    if not _PINNED.fullmatch(revision):
        raise RegistryError(
            f"revision {revision!r} is not pinned: Hugging Face artifacts must be referenced "
            "by a full 40-hex commit sha"
        )


def _manifest_from_archive(archive: Path) -> bytes | None:
    try:
        with tarfile.open(archive, mode="r:") as tar:
            member: Any = tar.getmember(MANIFEST_NAME)
            fh = tar.extractfile(member)
            return None if fh is None else fh.read()
    except (KeyError, tarfile.TarError):
        return None
