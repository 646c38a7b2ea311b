"""Errors of the artifact registries and agent bundles (see the package docstring)."""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class StorageError(KinitroError):
    """Base class of artifact registry and bundle failures."""


class ArtifactNotFoundError(StorageError):
    """No artifact at that registry / repo / revision."""


class ArtifactIntegrityError(StorageError):
    """The downloaded bytes do not hash to the pinned sha256 (corrupted or swapped)."""


class ArtifactTooLargeError(StorageError):
    """The artifact exceeds the download size cap."""


class RegistryError(StorageError):
    """The registry failed or refused the request (network, auth, bad repo name)."""


class BundleError(StorageError):
    """An agent bundle is invalid. ``problem`` is a short machine-readable tag."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem
