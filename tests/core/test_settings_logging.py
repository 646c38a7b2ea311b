"""Settings precedence, placeholder-secret guard and log redaction."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from kinitro.core.errors import ConfigError
from kinitro.core.logging import JsonFormatter, RedactingFilter, redact_text
from kinitro.core.settings import KinitroSettings


class DemoSettings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_DEMO_")
    toml_section = "demo"
    secret_fields = ("seed_secret",)

    port: int = 1
    name: str = "default"
    seed_secret: SecretStr = SecretStr("changethis")


def test_precedence_overrides_env_toml_defaults(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "kinitro.toml"
    cfg.write_text('[demo]\nport = 2\nname = "from-toml"\n[other]\nport = 9\n')
    assert DemoSettings.load(cfg).port == 2
    monkeypatch.setenv("KINITRO_DEMO_PORT", "3")
    loaded = DemoSettings.load(cfg)
    assert (loaded.port, loaded.name) == (3, "from-toml")
    assert DemoSettings.load(cfg, port=4).port == 4
    assert DemoSettings.load().name == "default"


def test_missing_or_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        DemoSettings.load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[demo\n")
    with pytest.raises(ConfigError, match="cannot read"):
        DemoSettings.load(bad)


def test_placeholder_secret_refused_outside_devnet() -> None:
    assert DemoSettings.load().seed_secret.get_secret_value() == "changethis"
    with pytest.raises(ValidationError, match="seed_secret must be set"):
        DemoSettings.load(environment="production")
    ok = DemoSettings.load(environment="production", seed_secret="a-real-long-secret")
    assert "a-real-long-secret" not in repr(ok)


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("connecting to postgresql://kin:hunter2@db:5432/x", "hunter2"),
        ("token=hf_abcdefghijklmnopqrstuv ok", "hf_abcdefghijklmnopqrstuv"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ('api_key: "s3cr3t-value"', "s3cr3t-value"),
        ("uploading with hf_ZZZZZZZZZZZZZZZZZZ", "hf_ZZZZZZZZZZZZZZZZZZ"),
        # bare Kinitro API keys (the prefix, a lookup id, may stay)
        ("key kin_0a1b2c3d4e5f_AbC-dEf_GhIjKlMnOpQrStUvWxYz0123456789abcdefg", "AbC-dEf"),
        # database URLs with a password, with or without a user
        ("postgresql://:hunter3@db/x", "hunter3"),
        ("postgresql+asyncpg://kin:p%40ss@db:5432/x?ssl=1", "p%40ss"),
        ("host=db password=hunter4 dbname=x", "hunter4"),
        # wallet keyfile JSON (bittensor-wallet), plain, repr'd and escaped in JSON
        ('{"secretSeed": "0xdeadbeef01", "ss58Address": "5F"}', "0xdeadbeef01"),
        ('{"secretPhrase": "abandon abandon zoo"}', "abandon abandon"),
        ('{"privateKey":"0xfeedface02"}', "0xfeedface02"),
        ("{'secretSeed': '0xdeadbeef03'}", "0xdeadbeef03"),
        ('{\\"secretSeed\\": \\"0xdeadbeef04\\"}', "0xdeadbeef04"),
        # bearer tokens and authorization headers
        ('{"Authorization": "Bearer tok.en.five"}', "tok.en.five"),
        ("authorization=Basic dXNlcjpwdw==", "dXNlcjpwdw=="),
        ("retrying with bearer tok-six-6666", "tok-six-6666"),
    ],
)
def test_redact_text(text: str, leak: str) -> None:
    assert leak not in redact_text(text)


def test_log_records_are_redacted_in_message_args_and_extra() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("kinitro.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "login with password=%s to %s",
            "pw-123",
            "postgresql://u:pw-456@h/db",
            extra={"hf_token": "hf_secretsecretsecret", "job_id": "j1"},
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    dumped = json.dumps(line)
    for secret in ("pw-123", "pw-456", "hf_secretsecretsecret"):
        assert secret not in dumped
    assert line["job_id"] == "j1"
    assert line["level"] == "warning"


def test_redaction_keeps_what_is_not_secret() -> None:
    text = (
        '{"ss58Address": "5F", "publicKey": "0x01"} http://host:8000/path '
        "job_id=j1 kin_0a1b2c3d4e5f_secretsecretsecret"
    )
    out = redact_text(text)
    kept = ('"ss58Address": "5F"', '"publicKey": "0x01"', "http://host:8000/path", "job_id=j1")
    assert all(part in out for part in kept)
    assert "kin_0a1b2c3d4e5f_***" in out and "secretsecretsecret" not in out
