"""Secrets that reach the backend's log over the wire are redacted, shape by shape.

A validator's ``error`` messages are logged verbatim (they are how an operator learns
what went wrong on the other side), and their text is the peer's: an agent crash dump,
a misconfigured evaluator printing its settings. Each secret shape is sent over a real
validator WebSocket and must not reach the log the backend writes (the production
handler: ``RedactingFilter`` + ``JsonFormatter``).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from kinitro.core.logging import JsonFormatter, RedactingFilter
from kinitro.protocol.common import ErrorCode
from kinitro.protocol.validator_ws import ErrorMessage

from .conftest import Backend, Net, login

# (text as the peer sends it, the secret that must not be logged)
SHAPES = [
    ("admin key kin_0123456789ab_Q2xhc3NpZmllZC1zZWNyZXQtdmFsdWUtMTIz failed", "Q2xhc3Np"),
    ("api_key=kin_abcdef012345_c2VjcmV0LWtleS0y", "c2VjcmV0LWtleS0y"),
    ("db postgresql://kinitro:hunter2-pw@db.internal:5432/kin down", "hunter2-pw"),
    ("db postgresql://:only-a-password@db.internal/kin down", "only-a-password"),
    ("dsn postgresql+asyncpg://u:p%40ss%2Fword@h/db?sslmode=require", "p%40ss%2Fword"),
    ('wallet {"secretSeed": "0x1f2e3d4c5b6a", "ss58Address": "5F"}', "0x1f2e3d4c5b6a"),
    ('wallet {"secretPhrase": "abandon ability able about above"}', "abandon ability"),
    ('wallet {"privateKey": "0xfeedfacecafe"}', "0xfeedfacecafe"),
    ("{'secretSeed': '0xabad1dea0001'}", "0xabad1dea0001"),
    ('escaped {\\"secretSeed\\": \\"0x77aa88bb99cc\\"}', "0x77aa88bb99cc"),
    ("curl -H 'Authorization: Bearer eyJhbGciOi.payload.sig' url", "eyJhbGciOi"),
    ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    ("sent Bearer tok-9f8e7d6c5b4a to the backend", "tok-9f8e7d6c5b4a"),
    ("HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUv used", "hf_AbCdEfGhIjKlMnOpQrStUv"),
    ("mnemonic: 'legal winner thank year wave sausage'", "legal winner"),
]


@pytest.fixture
def backend_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_secrets_sent_by_a_validator_never_reach_the_log(
    backend: Backend, net: Net, backend_log: io.StringIO
) -> None:
    client, ok = await login(backend, await net.validator())
    assert ok.type == "auth_ok"
    for text, _ in SHAPES:
        await client.send(ErrorMessage(code=ErrorCode.INTERNAL_ERROR, message=text))
    await client.close()
    for _ in range(100):
        if backend_log.getvalue().count("reported error") >= len(SHAPES):
            break
        await asyncio.sleep(0.1)
    log = backend_log.getvalue()
    assert log.count("reported error") >= len(SHAPES), log[-2000:]
    leaked = [secret for _, secret in SHAPES if secret in log]
    assert not leaked, leaked
    # what is not secret stays readable for the operator
    assert "db.internal:5432" in log and "ss58Address" in log and "kin_0123456789ab_" in log
