"""Media store port: episode artifacts (action logs, frames) keyed by a relative path.

Two adapters, one conformance suite (``tests/storage/test_media.py``):

* :class:`LocalMediaStore` — a directory (the devnet default, served by the backend).
  Writes are atomic (temp file + rename), so readers never see half an object.
* :class:`S3MediaStore` — any S3-compatible service (Cloudflare R2, MinIO, AWS) via boto3,
  with an optional key prefix. Credentials come from settings or the usual AWS chain and
  are never logged.

Keys are relative, ``/``-separated paths of ``[A-Za-z0-9._-]`` segments (no ``..``, no
leading ``/``); anything else raises :class:`InvalidMediaKey`. A missing object raises
:class:`MediaNotFound`; any other backend failure :class:`MediaStoreError`.
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

    def get(self, key: str) -> bytes: ...

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

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
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


class S3MediaStore:
    """Media in an S3-compatible bucket (R2, MinIO, AWS S3) through boto3."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        prefix: str = "",
        client: Any | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        if prefix:
            check_key(prefix.strip("/"))
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                config=Config(
                    connect_timeout=timeout_s,
                    read_timeout=timeout_s,
                    retries={"max_attempts": 3, "mode": "standard"},
                ),
            )
        self._s3 = client

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _error(self, exc: Exception, key: str, action: str) -> MediaStoreError:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound"):
            return MediaNotFound(f"no media under {key!r}")
        return MediaStoreError(f"cannot {action} media {key!r} in s3://{self.bucket}: {exc}")

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "write") from exc
        return key

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
            body: bytes = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "read") from exc
        return body

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            err = self._error(exc, key, "stat")
            if isinstance(err, MediaNotFound):
                return False
            raise err from exc
        except BotoCoreError as exc:
            raise self._error(exc, key, "stat") from exc
        return True

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "delete") from exc

    def list(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys += [obj["Key"][len(self.prefix) :] for obj in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, prefix or "/", "list") from exc
        return sorted(keys)

    def describe(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"s3://{self.bucket}/{self.prefix}{where}"


def open_media_store(url: str, **s3_options: Any) -> MediaStore:
    """Build a store from a URL: ``s3://bucket[/prefix]`` or a local path / ``file://`` URL."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise MediaStoreError("s3 media URL needs a bucket: s3://BUCKET[/PREFIX]")
        return S3MediaStore(bucket, prefix=prefix, **s3_options)
    if url.startswith("file://"):
        url = url[7:]
    return LocalMediaStore(url)
