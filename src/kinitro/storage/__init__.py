"""Storage library: artifact registries, agent bundles and media stores.

* :mod:`kinitro.storage.artifacts` — the ``ArtifactRegistry`` port and ``LocalRegistry``
  (content-addressed directory, the devnet default).
* :mod:`kinitro.storage.huggingface` — ``HuggingFaceRegistry`` (huggingface_hub; pinned
  revisions, size cap, sha256 verification).
* :mod:`kinitro.storage.bundle` — agent bundle manifest (``kinitro.toml``), validation and
  deterministic packaging.
* :mod:`kinitro.storage.archive` — the archive gate (one definition of what unpacks, used
  by the backend's inspection and the evaluator's unpacker) and the unpacker.
* :mod:`kinitro.storage.media` — the media store port (owner: evaluator).

Errors (:mod:`kinitro.storage.errors`)::

    StorageError                  (KinitroError)
    ├── ArtifactNotFoundError     nothing at registry/repo/revision
    ├── ArtifactIntegrityError    sha256 mismatch
    ├── ArtifactTooLargeError     over the download size cap
    ├── RegistryError             registry failure / refusal (network, auth)
    └── BundleError               invalid bundle (``problem`` tag + message)

    MediaStoreError               (KinitroError; media stores, see media.py)
"""
