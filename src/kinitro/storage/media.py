"""Media store port: episode artifacts (action logs, frames) keyed by a relative path.

Two adapters, one conformance suite (``tests/storage/test_media.py``):

* :class:`LocalMediaStore` — a directory (the devnet default, served by the backend).
  Writes are atomic (temp file + rename), so readers never see half an object.
* :class:`~kinitro.storage.media_s3.S3MediaStore` — any S3-compatible service (Cloudflare
  R2, MinIO, AWS) via boto3, with an optional key prefix. Credentials come from settings or
  the usual AWS chain and are never logged; a private CA is trusted through ``ca_bundle``
  or boto3's ``AWS_CA_BUNDLE``. It is loaded only for an ``s3://`` store.

The S3 request shape is R2's, since that is production: boto3 ≥ 1.36 adds a CRC32
checksum to every upload, sent as an ``aws-chunked`` body with an ``x-amz-trailer``, which
R2 refuses (it implements CRC32 only as a composite multipart checksum). The client
therefore computes checksums only when an operation requires one
(``request_checksum_calculation`` / ``response_checksum_validation`` = ``when_required``)
and every upload carries a ``Content-MD5`` instead, which R2, MinIO and S3 all verify, so
a body damaged on the way is refused rather than stored. Objects from
``multipart_threshold`` bytes on (videos) go up as a multipart upload of equal
``part_size`` parts (R2 requires equal parts but the last, ≥ 5 MiB each); a failed part
aborts the upload, so no half object is ever visible. ``tests/storage/test_media.py`` runs
all of this over HTTPS against moto behind a gate that refuses what R2 refuses.

Keys are relative, ``/``-separated paths of ``[A-Za-z0-9._-]`` segments (no ``..``, no
leading ``/``); anything else raises :class:`InvalidMediaKey`. A missing object raises
:class:`MediaNotFound`, one larger than a reader's ``max_bytes`` :class:`MediaTooLarge`
(before its body is read: a store other parties write to cannot exhaust a reader's
memory); any other backend failure :class:`MediaStoreError`.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kinitro.storage.errors import StorageError

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_KEY = 512


class MediaStoreError(StorageError):
    """A media store operation failed (backend unreachable, permission, I/O)."""


class InvalidMediaKey(MediaStoreError):
    """The key is not a safe relative path."""


class MediaNotFound(MediaStoreError):
    """No object under that key."""


class MediaTooLarge(MediaStoreError):
    """The object is larger than the reader accepts (``get(..., max_bytes=)``)."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative media key, else raise :class:`InvalidMediaKey`."""
    if not key or len(key) > MAX_KEY or key.startswith("/"):
        raise InvalidMediaKey(f"invalid media key {key!r}")
    for segment in key.split("/"):
        if segment in ("", ".", "..") or not _SEGMENT.match(segment):
            raise InvalidMediaKey(f"invalid media key {key!r} (segment {segment!r})")
    return key


@runtime_checkable
class MediaStore(Protocol):
    """Where episode media lives. Every method takes a key checked by :func:`check_key`."""

    def put(self, key: str, data: bytes, *, content_type: str = ...) -> str:
        """Store ``data`` under ``key`` (overwrite) and return the key."""
        ...

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes; :class:`MediaTooLarge` (nothing read) past ``max_bytes``."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error if it does not exist."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        ...

    def describe(self) -> str:
        """Where the store points, without credentials (for logs and CLI output)."""
        ...


class LocalMediaStore:
    """Media in a local directory tree."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                Path(tmp).chmod(0o644)  # served read-only by the backend
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise MediaStoreError(f"cannot write media {key!r}: {exc}") from exc
        return key

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        path = self._path(key)
        try:
            if max_bytes is not None and path.stat().st_size > max_bytes:
                raise MediaTooLarge(f"media {key!r} is over {max_bytes} bytes")
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise MediaNotFound(f"no media under {key!r}") from exc
        except OSError as exc:
            raise MediaStoreError(f"cannot read media {key!r}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise MediaStoreError(f"cannot delete media {key!r}: {exc}") from exc

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
        return sorted(k for k in keys if k.startswith(prefix))

    def describe(self) -> str:
        return f"local:{self.root}"


def open_media_store(url: str, **s3_options: Any) -> MediaStore:
    """Build a store from a URL: ``s3://bucket[/prefix]`` or a local path / ``file://`` URL."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise MediaStoreError("s3 media URL needs a bucket: s3://BUCKET[/PREFIX]")
        from kinitro.storage.media_s3 import S3MediaStore  # noqa: PLC0415 - boto3 is slow to import: only s3:// stores load it

        return S3MediaStore(bucket, prefix=prefix, **s3_options)
    if url.startswith("file://"):
        url = url[7:]
    return LocalMediaStore(url)
