"""An S3 server over HTTPS on loopback that refuses what Cloudflare R2 refuses.

moto's S3 (a real HTTP server speaking the S3 API) runs behind :class:`R2Gate`, a WSGI
layer that plays R2's documented differences at the HTTP level, so the media store's real
boto3 client is tested with the production request shape:

* TLS with a self-signed certificate made here (clients trust it through a CA bundle);
* an ``aws-chunked`` body with an ``x-amz-trailer`` (boto3 ≥ 1.36's default checksum) is
  refused with ``501 NotImplemented``, and so is a whole-object CRC32/CRC32C/SHA checksum
  header on ``PutObject`` (R2 implements those only as composite multipart checksums);
* ``Content-MD5`` is verified (``400 BadDigest`` on a mismatch).

The gate records every request (method, path, query, headers) for the tests to inspect,
and can damage an upload's body or fail a multipart part, to test what the client does.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import io
import ipaddress
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

_R2_SINGLE_PUT_CHECKSUMS = ("crc32", "crc32c", "sha1", "sha256")


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    scheme: str


@dataclass
class R2Gate:
    app: Callable[..., Iterable[bytes]]
    seen: list[Seen] = field(default_factory=list)
    corrupt_keys: set[str] = field(default_factory=set)
    """Flip a byte of every upload to a path ending with one of these."""
    fail_part: tuple[str, int] | None = None
    """``(key suffix, part number)``: answer that UploadPart with 500 every time."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self.seen.append(Seen(method, path, query, headers, environ["wsgi.url_scheme"]))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        # Read the whole body even to refuse it: a server that answers while the client is
        # still sending makes the client's next write fail (an SSL EOF instead of the 501).
        if length:
            body = environ["wsgi.input"].read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked transfer (aws-chunked uploads)
            body = environ["wsgi.input"].read()
        else:
            body = b""

        def refuse(status: str, code: str, message: str) -> list[bytes]:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ).encode()
            start_response(status, [("Content-Type", "application/xml")])
            return [body]

        if "x-amz-trailer" in headers or "aws-chunked" in headers.get("content-encoding", ""):
            return refuse("501 Not Implemented", "NotImplemented", "aws-chunked trailers")
        if method == "PUT" and "partNumber" not in query:
            for algorithm in _R2_SINGLE_PUT_CHECKSUMS:
                if f"x-amz-checksum-{algorithm}" in headers:
                    return refuse(
                        "501 Not Implemented",
                        "NotImplemented",
                        f"Header 'x-amz-checksum-{algorithm}' not implemented",
                    )
        failing = self.fail_part
        if failing and path.endswith(failing[0]) and query.get("partNumber") == [str(failing[1])]:
            return refuse("500 Internal Server Error", "InternalError", "part lost")
        if body and any(path.endswith(k) for k in self.corrupt_keys):
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        md5 = headers.get("content-md5")
        if md5 and base64.b64encode(hashlib.md5(body).digest()).decode() != md5:
            return refuse("400 Bad Request", "BadDigest", "Content-MD5 does not match")
        environ["wsgi.input"] = io.BytesIO(body)
        return self.app(environ, start_response)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key (PEM files in ``directory``)."""
    from cryptography import x509  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server
    from cryptography.x509.oid import NameOID  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kinitro-test-s3")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "s3-cert.pem", directory / "s3-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class S3Server:
    """A running HTTPS S3 server: ``endpoint``, the ``ca_bundle`` to trust, the ``gate``."""

    endpoint: str
    ca_bundle: Path
    gate: R2Gate
    _stop: Callable[[], None]

    def options(self, **extra: Any) -> dict[str, Any]:
        """``S3MediaStore`` / ``open_media_store`` keyword arguments for this server."""
        return {
            "endpoint_url": self.endpoint,
            "region": "auto",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "ca_bundle": str(self.ca_bundle),
            **extra,
        }

    def create_bucket(self, bucket: str) -> None:
        import boto3  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            verify=str(self.ca_bundle),
        )
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self._stop()


def start_s3_server(directory: Path) -> S3Server:
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415 - moto and its certificate tooling load only when a test starts the server

    cert, key = self_signed_certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    gate = R2Gate(DomainDispatcherApplication(create_backend_app))
    server = make_server(
        "127.0.0.1", 0, gate, threaded=True, request_handler=MotoRequestHandler,
        ssl_context=context,
    )  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="s3-tls")
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(10)

    return S3Server(f"https://127.0.0.1:{server.server_port}", cert, gate, stop)
