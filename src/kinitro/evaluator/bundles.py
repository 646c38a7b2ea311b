"""Fetch a job's agent bundle: download from its registry, verify sha256, unpack, cache.

The cache is keyed by the pinned sha256, so a bundle is downloaded and unpacked once per
machine and a tampered registry can never change what a cached key holds. Unpacking is
static (:func:`kinitro.storage.archive.extract_bundle`): nothing is imported or executed.
Files are made world-readable because the sandbox runs the agent as an unprivileged uid.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from kinitro.protocol.common import ArtifactRef
from kinitro.storage.archive import extract_bundle
from kinitro.storage.artifacts import open_registry
from kinitro.storage.bundle import MANIFEST_NAME


def fetch_bundle(
    ref: ArtifactRef,
    *,
    artifacts_dir: Path,
    cache_dir: Path,
    hf_token: str | None = None,
    hf_endpoint: str | None = None,
) -> Path:
    """Return a local directory holding the unpacked bundle pinned by ``ref``.

    Raises the storage errors of the registry and bundle code
    (``ArtifactNotFoundError``, ``ArtifactIntegrityError``, ``BundleError``, ``RegistryError``).
    """

    final = cache_dir / ref.sha256
    if (final / MANIFEST_NAME).is_file():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.chmod(0o755)
    work = cache_dir / f".tmp-{ref.sha256[:16]}-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    try:
        registry = open_registry(
            ref.registry, local_dir=artifacts_dir, hf_token=hf_token, hf_endpoint=hf_endpoint
        )
        archive = registry.download(ref, work / "bundle.tar")
        unpacked = work / "bundle"
        extract_bundle(archive, unpacked)
        for path in [unpacked, *unpacked.rglob("*")]:
            # Read-only for everyone: the sandbox runs the agent as an unprivileged uid.
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            unpacked.rename(final)
        except OSError:
            if not (final / MANIFEST_NAME).is_file():  # lost a race with another process
                raise
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)
