"""Media store conformance: the same suite against LocalMediaStore and S3MediaStore.

The S3 adapter runs against moto's S3-compatible server on a free loopback port (a real
HTTP server speaking the S3 API), with the real boto3 client.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from kinitro.storage.media import (
    InvalidMediaKey,
    LocalMediaStore,
    MediaNotFound,
    MediaStore,
    MediaStoreError,
    S3MediaStore,
    open_media_store,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3(endpoint: str, bucket: str, prefix: str = "") -> S3MediaStore:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    return S3MediaStore(bucket, endpoint_url=endpoint, prefix=prefix, client=client)


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
def store(request: pytest.FixtureRequest, tmp_path, s3_endpoint: str) -> MediaStore:
    if request.param == "local":
        return LocalMediaStore(tmp_path / "media")
    bucket = f"media-{request.node.name.split('[')[0].replace('_', '-')}"[:60].lower()
    prefix = "devnet/v1" if request.param == "s3-prefixed" else ""
    return _s3(s3_endpoint, bucket, prefix)


def test_put_get_roundtrip(store: MediaStore) -> None:
    key = store.put("episodes/job1/000001/actions.kact", b"\x00\x01binary\xff")
    assert key == "episodes/job1/000001/actions.kact"
    assert store.get(key) == b"\x00\x01binary\xff"
    assert store.exists(key)
    store.put(key, b"v2")
    assert store.get(key) == b"v2"


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
