"""Artifact verification before scheduling: the registry port, a size cap and sha256.

A rejection carries a stable ``reason`` (stored on the submission and shown in the API
and the realtime feed) and a human ``detail``.
"""

from __future__ import annotations

import asyncio
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kinitro.backend.errors import BackendError
from kinitro.protocol.commitment import Commitment
from kinitro.storage.archive import inspect_archive
from kinitro.storage.artifacts import open_registry
from kinitro.storage.errors import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    BundleError,
    StorageError,
)

if TYPE_CHECKING:
    from kinitro.protocol.common import ArtifactRef
    from kinitro.storage.bundle import BundleManifest


class ArtifactRejected(BackendError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ArtifactVerifier(Protocol):
    async def manifest(self, ref: ArtifactRef, max_bytes: int) -> BundleManifest | None:
        """The bundle's manifest (None when the artifact is not a bundle archive)."""
        ...

    async def verify(self, commitment: Commitment, max_bytes: int) -> int:
        """Size in bytes of the pinned artifact, after checking it exists, is at most
        ``max_bytes`` and hashes to ``commitment.sha256``; raises :class:`ArtifactRejected`."""
        ...


class RegistryVerifier:
    """Verifies through the storage registry port (``kinitro.storage.artifacts``).

    ``stat`` gives the size (rejected above the cap without downloading); the archive is
    then downloaded to a throw-away directory, which checks the size cap and the sha256
    while streaming. A tar archive is then inspected without unpacking it
    (:func:`kinitro.storage.archive.inspect_archive`: the same gate the evaluator unpacks
    through, so whatever passes unpacks; a valid manifest naming an entrypoint that exists) and
    rejected as ``invalid_bundle`` otherwise. An artifact that is not a tar at all is
    rejected too when ``require_bundle_archive`` is set. Nothing is kept, unpacked or
    imported.
    """

    def __init__(self, registries: dict[str, object], *, require_bundle_archive: bool = False):
        self.registries = registries
        self.require_bundle_archive = require_bundle_archive

    async def verify(self, commitment: Commitment, max_bytes: int) -> int:
        return await asyncio.to_thread(self._verify, commitment, max_bytes)

    def _verify(self, commitment: Commitment, max_bytes: int) -> int:
        registry: Any = self.registries.get(commitment.registry)
        where = f"{commitment.registry}:{commitment.repo}@{commitment.revision}"
        if registry is None:
            raise ArtifactRejected(
                "registry_unsupported",
                f"this backend does not read the {commitment.registry!r} registry",
            )
        try:
            stat = registry.stat(commitment.repo, commitment.revision)
            if stat.size_bytes > max_bytes:
                raise ArtifactRejected(
                    "artifact_too_large", f"{where} is {stat.size_bytes} bytes, cap {max_bytes}"
                )
            if stat.sha256 is not None and stat.sha256 != commitment.sha256:
                raise ArtifactRejected(
                    "sha256_mismatch",
                    f"{where} has sha256 {stat.sha256}, commitment pins {commitment.sha256}",
                )
            ref = commitment.to_artifact(stat.size_bytes)
            with tempfile.TemporaryDirectory(prefix="kinitro-verify-") as tmp:
                archive = registry.download(ref, Path(tmp) / "bundle", max_bytes=max_bytes)
                self._inspect(Path(archive), where, max_bytes)
            return int(stat.size_bytes)
        except ArtifactNotFoundError as exc:
            raise ArtifactRejected("artifact_not_found", str(exc)) from exc
        except ArtifactTooLargeError as exc:
            raise ArtifactRejected("artifact_too_large", str(exc)) from exc
        except ArtifactIntegrityError as exc:
            raise ArtifactRejected("sha256_mismatch", str(exc)) from exc
        except StorageError as exc:
            raise ArtifactRejected("artifact_unavailable", str(exc)) from exc
        except OSError as exc:  # the registry's own disk or network: retried later
            raise ArtifactRejected("artifact_unavailable", f"{where}: {exc}") from exc

    def _inspect(self, archive: Any, where: str, max_bytes: int) -> None:
        if not tarfile.is_tarfile(archive):
            if self.require_bundle_archive:
                raise ArtifactRejected("invalid_bundle", f"{where} is not a tar bundle archive")
            return
        try:
            inspect_archive(archive, max_bytes=max_bytes)
        except BundleError as exc:
            raise ArtifactRejected("invalid_bundle", f"{where}: {exc.problem}: {exc}") from exc

    async def manifest(self, ref: ArtifactRef, max_bytes: int) -> BundleManifest | None:
        """The manifest of a verified bundle (None when the artifact is not a bundle
        archive); downloaded again, inspected, never unpacked."""

        return await asyncio.to_thread(self._manifest, ref, max_bytes)

    def _manifest(self, ref: ArtifactRef, max_bytes: int) -> BundleManifest | None:
        registry: Any = self.registries[ref.registry]
        with tempfile.TemporaryDirectory(prefix="kinitro-manifest-") as tmp:
            archive = Path(registry.download(ref, Path(tmp) / "bundle", max_bytes=max_bytes))
            if not tarfile.is_tarfile(archive):
                return None
            return inspect_archive(archive, max_bytes=max_bytes)


def open_verifier(settings: Any) -> RegistryVerifier:
    registries: dict[str, object] = {
        "local": open_registry("local", local_dir=settings.registry_dir)
    }
    if settings.registry == "hf":
        token = settings.hf_token.get_secret_value() if settings.hf_token else None
        registries["hf"] = open_registry(
            "hf", local_dir=settings.registry_dir, hf_token=token, hf_endpoint=settings.hf_endpoint
        )
    return RegistryVerifier(registries, require_bundle_archive=settings.require_bundle_archive)
