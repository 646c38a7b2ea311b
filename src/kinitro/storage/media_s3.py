"""The S3 adapter of the media store port (:mod:`kinitro.storage.media`, where the R2
request shape it follows is described): any S3-compatible bucket (Cloudflare R2, MinIO,
AWS S3) through boto3, with an optional key prefix. It is loaded only for an ``s3://``
store: boto3 takes a noticeable part of a second to import."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kinitro.storage.media import MediaNotFound, MediaStoreError, MediaTooLarge, check_key

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB
"""Smallest multipart part S3 and R2 accept (all parts but the last)."""
MAX_PARTS = 10_000


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
        multipart_threshold: int = 16 * MIB,
        part_size: int = 8 * MIB,
        ca_bundle: str | None = None,
    ) -> None:
        if prefix:
            check_key(prefix.strip("/"))
        if part_size < MIN_PART_SIZE:
            raise MediaStoreError(f"part_size must be at least {MIN_PART_SIZE} bytes (5 MiB)")
        if multipart_threshold < part_size:
            raise MediaStoreError("multipart_threshold must not be below part_size")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        if client is None:
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                verify=ca_bundle,  # None: the system store, or AWS_CA_BUNDLE when set
                config=Config(
                    connect_timeout=timeout_s,
                    read_timeout=timeout_s,
                    retries={"max_attempts": 3, "mode": "standard"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    s3={"addressing_style": "path"},
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
        try:
            if len(data) >= self.multipart_threshold:
                self._put_multipart(self._key(key), data, content_type)
            else:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=self._key(key),
                    Body=data,
                    ContentType=content_type,
                    ContentMD5=_content_md5(data),
                )
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "write") from exc
        return key

    def _put_multipart(self, s3_key: str, data: bytes, content_type: str) -> None:
        part_size = max(self.part_size, -(-len(data) // MAX_PARTS))
        upload = self._s3.create_multipart_upload(
            Bucket=self.bucket, Key=s3_key, ContentType=content_type
        )["UploadId"]
        try:
            view = memoryview(data)
            parts = []
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                chunk = view[start : start + part_size]
                answer = self._s3.upload_part(
                    Bucket=self.bucket,
                    Key=s3_key,
                    UploadId=upload,
                    PartNumber=number,
                    Body=chunk.tobytes(),
                    ContentMD5=_content_md5(chunk),
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=s3_key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # if even the abort fails, the bucket's lifecycle rule removes the parts
            with contextlib.suppress(BotoCoreError, ClientError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=s3_key, UploadId=upload)
            raise

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=self._key(key))
            if max_bytes is not None and int(response.get("ContentLength") or 0) > max_bytes:
                response["Body"].close()
                raise MediaTooLarge(f"media {key!r} is over {max_bytes} bytes")
            body: bytes = response["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "read") from exc
        return body

    def exists(self, key: str) -> bool:
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
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error(exc, key, "delete") from exc

    def list(self, prefix: str = "") -> list[str]:
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


def _content_md5(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324 - integrity
