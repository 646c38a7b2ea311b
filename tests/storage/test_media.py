"""Media store conformance: the same suite against LocalMediaStore and S3MediaStore.

The S3 adapter is built exactly as production builds it (no injected client) and talks
HTTPS to moto's S3 behind a gate that refuses what Cloudflare R2 refuses
(``tests/s3_server.py``): the checksum mode, Content-MD5 and multipart uploads run over the
wire they will meet in production.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from kinitro.storage.media import (
    InvalidMediaKey,
    LocalMediaStore,
    MediaNotFound,
    MediaStore,
    MediaStoreError,
    MediaTooLarge,
    open_media_store,
)
from kinitro.storage.media_s3 import MIB, S3MediaStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bucket(request: pytest.FixtureRequest) -> str:
    return f"media-{request.node.name.split('[')[0].replace('_', '-')}"[:60].lower()


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def store(request: pytest.FixtureRequest, tmp_path, s3_server: Any) -> MediaStore:
    if request.param == "local":
        return LocalMediaStore(tmp_path / "media")
    bucket = _bucket(request)
    s3_server.create_bucket(bucket)
    prefix = "devnet/v1" if request.param == "s3-prefixed" else ""
    return S3MediaStore(bucket, prefix=prefix, **s3_server.options())


def test_put_get_roundtrip(store: MediaStore) -> None:
    key = store.put("episodes/job1/000001/actions.kact", b"\x00\x01binary\xff")
    assert key == "episodes/job1/000001/actions.kact"
    assert store.get(key) == b"\x00\x01binary\xff"
    assert store.exists(key)
    store.put(key, b"v2")
    assert store.get(key) == b"v2"


def test_a_reader_refuses_an_object_over_its_limit(store: MediaStore) -> None:
    key = store.put("episodes/job1/run/0/actions.kact", b"x" * 1000)
    assert store.get(key, max_bytes=1000) == b"x" * 1000
    with pytest.raises(MediaTooLarge):
        store.get(key, max_bytes=999)


def test_missing_object(store: MediaStore) -> None:
    assert not store.exists("nope/none.bin")
    with pytest.raises(MediaNotFound):
        store.get("nope/none.bin")
    store.delete("nope/none.bin")  # idempotent


def test_list_and_delete(store: MediaStore) -> None:
    for i in range(3):
        store.put(f"episodes/jobL/{i:06d}/frame.png", b"x" * i)
    store.put("other/a.bin", b"a")
    keys = store.list("episodes/jobL/")
    assert keys == [f"episodes/jobL/{i:06d}/frame.png" for i in range(3)]
    store.delete(keys[0])
    assert store.list("episodes/jobL/") == keys[1:]


@pytest.mark.parametrize(
    "key", ["", "/abs", "a/../b", "a//b", "./a", "a/b c", "a\\b", "ü/x", "x" * 600]
)
def test_rejects_unsafe_keys(store: MediaStore, key: str) -> None:
    with pytest.raises(InvalidMediaKey):
        store.put(key, b"x")


def test_local_store_keeps_files_inside_root(tmp_path) -> None:
    store = LocalMediaStore(tmp_path / "root")
    store.put("a/b.bin", b"1")
    assert (tmp_path / "root" / "a" / "b.bin").read_bytes() == b"1"
    assert not list((tmp_path / "root" / "a").glob(".tmp-*"))


def test_s3_unreachable_is_a_typed_error() -> None:
    store = S3MediaStore(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{_free_port()}",
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
        timeout_s=1,
    )
    with pytest.raises(MediaStoreError):
        store.put("a.bin", b"x")
    assert "s3://bucket/" in store.describe() and "s" not in store.describe().split("@")[1:]


def test_open_media_store(tmp_path) -> None:
    assert isinstance(open_media_store(str(tmp_path)), LocalMediaStore)
    assert isinstance(open_media_store(f"file://{tmp_path}"), LocalMediaStore)
    s3 = open_media_store("s3://bkt/pre/fix", endpoint_url="http://127.0.0.1:1", region="us-east-1")
    assert isinstance(s3, S3MediaStore) and s3.prefix == "pre/fix/"
    with pytest.raises(MediaStoreError):
        open_media_store("s3:///x")


# ------------------------------------------------------------- R2's request shape


@pytest.fixture
def r2(request: pytest.FixtureRequest, s3_server: Any) -> Any:
    bucket = _bucket(request)
    s3_server.create_bucket(bucket)
    s3_server.gate.seen.clear()
    yield bucket
    s3_server.gate.corrupt_keys.clear()
    s3_server.gate.fail_part = None


def _uploads(s3_server: Any, key: str) -> list[Any]:
    return [r for r in s3_server.gate.seen if r.method == "PUT" and r.path.endswith(key)]


def test_default_boto3_checksums_are_refused_like_r2_does(r2: str, s3_server: Any) -> None:
    """The gate is R2: boto3's default upload (CRC32 in an aws-chunked trailer) fails."""
    import boto3  # noqa: PLC0415 - boto3 only in the test that builds its own client

    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name="auto",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        verify=str(s3_server.ca_bundle),
    )
    with pytest.raises(MediaStoreError, match="NotImplemented"):
        S3MediaStore(r2, client=client).put("a/default.bin", b"x" * 1000)


def test_uploads_over_https_with_content_md5_and_no_checksum_trailer(
    r2: str, s3_server: Any
) -> None:
    store = S3MediaStore(r2, **s3_server.options())
    store.put("episodes/j/actions.kact", b"\x00actions" * 100)
    assert store.get("episodes/j/actions.kact") == b"\x00actions" * 100
    (upload,) = _uploads(s3_server, "episodes/j/actions.kact")
    assert upload.scheme == "https"
    assert "content-md5" in upload.headers
    assert not [h for h in upload.headers if h.startswith("x-amz-checksum") or h == "x-amz-trailer"]
    assert {r.scheme for r in s3_server.gate.seen} == {"https"}


def test_a_body_damaged_on_the_way_is_refused_and_not_stored(r2: str, s3_server: Any) -> None:
    s3_server.gate.corrupt_keys.add("damaged.bin")
    store = S3MediaStore(r2, **s3_server.options())
    with pytest.raises(MediaStoreError, match="BadDigest"):
        store.put("a/damaged.bin", b"payload" * 100)
    assert not store.exists("a/damaged.bin")


def test_large_media_go_up_as_a_multipart_upload(r2: str, s3_server: Any) -> None:
    store = S3MediaStore(r2, multipart_threshold=5 * MIB, part_size=5 * MIB, **s3_server.options())
    video = bytes(range(256)) * (12 * MIB // 256) + b"tail"
    store.put("episodes/j/video.mp4", video, content_type="video/mp4")
    assert store.get("episodes/j/video.mp4") == video
    parts = _uploads(s3_server, "episodes/j/video.mp4")
    assert [r.query["partNumber"] for r in parts] == [["1"], ["2"], ["3"]]
    assert all("content-md5" in r.headers for r in parts)
    head = store._s3.head_object(Bucket=r2, Key="episodes/j/video.mp4")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentType"] == "video/mp4"
    # below the threshold: one plain PUT
    store.put("episodes/j/small.png", b"png" * 10)
    assert [r.query for r in _uploads(s3_server, "small.png")] == [{}]


def test_a_failed_part_aborts_the_upload_and_leaves_nothing(r2: str, s3_server: Any) -> None:
    s3_server.gate.fail_part = ("broken.mp4", 2)
    store = S3MediaStore(r2, multipart_threshold=5 * MIB, part_size=5 * MIB, **s3_server.options())
    with pytest.raises(MediaStoreError, match="InternalError"):
        store.put("episodes/j/broken.mp4", b"v" * (11 * MIB))
    assert not store.exists("episodes/j/broken.mp4")
    assert any(r.method == "DELETE" and "uploadId" in r.query for r in s3_server.gate.seen)
    assert not store._s3.list_multipart_uploads(Bucket=r2).get("Uploads")


def test_part_size_below_the_s3_minimum_is_refused() -> None:
    with pytest.raises(MediaStoreError, match="5 MiB"):
        S3MediaStore("b", part_size=MIB, endpoint_url="https://127.0.0.1:1")
