"""Structured logging with secrets redacted.

``configure_logging(level, json=...)`` sets up stdlib logging with a formatter that
emits either human-readable lines (Rich console, for terminals) or one JSON object per
line (for files and log shippers). Every record passes through :class:`RedactingFilter`,
which masks values of secret-looking keys (``token``, ``secret``, ``password``,
``api_key``, ``mnemonic``, ``seed_secret``, ``private_key``…) in ``extra`` fields and, in
message text, each shape a secret takes in practice:

* ``key=value`` / ``key: value`` pairs and JSON fields (``"secretSeed": "0x…"``,
  ``"secretPhrase"``, ``"privateKey"`` of a wallet keyfile, also inside escaped JSON);
* URLs with a password (``postgresql://user:pw@host``, also ``postgresql://:pw@host``);
* ``Authorization`` headers and bare ``Bearer …`` tokens;
* Kinitro API keys, bare (``kin_<prefix>_<secret>``: the prefix, which is not secret,
  stays to identify the key) and Hugging Face tokens (``hf_…``).

Redaction is a last line of defence: code should not log secrets in the first place.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

REDACTED = "***"

# the names of secrets, not one
_SECRET_WORDS = r"token|secret|password|passwd|pwd|api[_-]?key|mnemonic|private[_-]?key|credential|access[_-]?key"  # noqa: E501, S105
_SECRET_KEY = re.compile(rf"({_SECRET_WORDS}|authorization)", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]+)@", re.IGNORECASE
)
# a value: "quoted" (JSON, escapes allowed), \"quoted\" (JSON inside a JSON string),
# 'quoted', or bare up to a separator
_VALUE = r"""(?:\\"[^"\\]*\\"|"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,;&}\]]+)"""
_KEY_VALUE = re.compile(
    rf"(?P<key>\b[\w-]*(?:{_SECRET_WORDS})[\w-]*)(?P<sep>\\?[\"']?\s*[=:]\s*)(?P<val>{_VALUE})",
    re.IGNORECASE,
)
_AUTHORIZATION = re.compile(
    r"(?P<head>\bauthorization\\?[\"']?\s*[=:]\s*\\?[\"']?(?:[a-z]+\s+)?)(?P<val>[^\s\"'\\,;]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_API_KEY = re.compile(r"(?<![A-Za-z0-9])(kin_[0-9a-f]{4,32}_)[A-Za-z0-9_-]{8,}")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{10,}\b")

_STD_ATTRS = frozenset(
    vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)).keys() | {"message", "asctime"}
)


def redact_text(text: str) -> str:
    """Mask credentials in free text (every shape listed in the module docstring)."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    text = _AUTHORIZATION.sub(lambda m: f"{m['head']}{REDACTED}", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}{_masked(m['val'])}", text)
    text = _BEARER.sub(lambda m: f"{m[1]}{REDACTED}", text)
    text = _API_KEY.sub(lambda m: f"{m[1]}{REDACTED}", text)
    return _HF_TOKEN.sub(REDACTED, text)


def _masked(value: str) -> str:
    """``REDACTED`` in the quotes the value had, so JSON stays JSON."""
    for quote in ('\\"', '"', "'"):
        if len(value) >= 2 * len(quote) and value.startswith(quote) and value.endswith(quote):
            return f"{quote}{REDACTED}{quote}"
    return REDACTED


def redact_value(key: str, value: Any) -> Any:
    """Mask ``value`` if ``key`` looks secret; recurse into mappings and sequences."""
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


class RedactingFilter(logging.Filter):
    """Redact secrets from the message, its arguments and ``extra`` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not kill logging
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STD_ATTRS:
                setattr(record, key, redact_value(key, value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STD_ATTRS:
                payload[key] = value
        if record.exc_info:
            payload["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class KeyValueFormatter(logging.Formatter):
    """Human-readable: ``12:00:01 INFO  kinitro.backend  message  key=value …``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STD_ATTRS)
        line = f"{stamp} {record.levelname:<5} {record.name}  {record.getMessage()}"
        if extras:
            line += f"  {extras}"
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def configure_logging(level: str | int = "INFO", *, json_lines: bool | None = None) -> None:
    """Configure the root logger once per process. JSON when stderr is not a terminal."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for noisy in ("asyncio", "websockets", "httpx", "httpcore", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
