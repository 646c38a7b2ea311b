"""Chain commitment codec: a miner's pinned submission in at most 128 bytes.

A miner writes one commitment on the chain per submission. It pins the competition, the
artifact's location (registry + repo + revision) and the SHA-256 of the bundle archive.

Format, version 1 (ASCII, ``:``-separated, exactly six fields)::

    k1:<competition_id>:<registry>:<repo>:<revision>:<sha256>

``version`` ``k1``
    Prefix and version. ``k<digits>`` with another number is reported as an unsupported
    version (:class:`UnsupportedCommitmentVersionError`); anything else is not a Kinitro
    commitment (:class:`CommitmentError`, field ``version``).
``competition_id``
    1–32 chars of ``[a-z0-9_-]``, starting with a letter or digit.
``registry``
    ``h`` = Hugging Face Hub (``"hf"``), ``l`` = local registry (``"local"``).
``repo``
    ``name`` or ``namespace/name``: 1–96 chars of ``[A-Za-z0-9._-]`` plus one ``/``.
``revision``
    ``x`` + unpadded base64url of the raw bytes when the revision is lowercase hex of even
    length (a 40-hex git commit sha becomes 28 chars); otherwise ``r`` + the revision
    itself (1–64 chars of ``[A-Za-z0-9._-]``). Hugging Face revisions must be a full
    40-hex commit sha.
``sha256``
    Unpadded base64url of the 32-byte digest (43 chars).

The encoding is canonical: one commitment has exactly one text (non-canonical base64,
``r`` used for a hex revision, etc. are rejected), so ``encode(parse(t)) == t``.

Budget: 51 fixed bytes (prefix, separators, registry, sha256); a Hugging Face commitment
(28-byte revision) leaves **49 bytes for competition_id + repo together**, e.g.
``k1:mt10:h:alice/kinitro-reach-agent:x<27>:<43>`` is 106 bytes. Encoding a commitment
that would exceed 128 bytes raises :class:`CommitmentTooLongError` naming the field to
shorten; every parse error names the bad field (``commitment field 'sha256': …``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Final, get_args

from kinitro.protocol.common import (
    COMPETITION_ID_MAX,
    COMPETITION_ID_PATTERN,
    REPO_MAX,
    REPO_PATTERN,
    REVISION_MAX,
    REVISION_PATTERN,
    SHA256_PATTERN,
    ArtifactRef,
    RegistryKind,
    check_pinned_revision,
)
from kinitro.protocol.errors import (
    CommitmentError,
    CommitmentTooLongError,
    UnsupportedCommitmentVersionError,
)

MAX_COMMITMENT_BYTES: Final = 128
COMMITMENT_VERSION: Final = 1
FIELDS: Final = ("version", "competition_id", "registry", "repo", "revision", "sha256")

_PREFIX: Final = f"k{COMMITMENT_VERSION}"
_REGISTRY_CODES: Final[dict[str, RegistryKind]] = {"h": "hf", "l": "local"}
_REGISTRY_LETTERS: Final[dict[RegistryKind, str]] = {v: k for k, v in _REGISTRY_CODES.items()}
_VERSION_RE: Final = re.compile(r"k[0-9]+")
_COMPETITION_RE: Final = re.compile(COMPETITION_ID_PATTERN)
_REPO_RE: Final = re.compile(REPO_PATTERN)
_REVISION_RE: Final = re.compile(REVISION_PATTERN)
_SHA256_RE: Final = re.compile(SHA256_PATTERN)
_HEX_REVISION_RE: Final = re.compile(r"(?:[0-9a-f]{2})+")
_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Commitment:
    """A parsed (and validated) commitment. Construction validates every field.

    The natural key of a submission is (miner hotkey, block) on the chain side; the
    content identity of the artifact is ``sha256`` (identical bundles share it).
    """

    competition_id: str
    registry: RegistryKind
    repo: str
    revision: str
    sha256: str
    version: int = COMMITMENT_VERSION

    def __post_init__(self) -> None:
        if self.version != COMMITMENT_VERSION:
            raise UnsupportedCommitmentVersionError(
                "version", f"version {self.version} is not supported (only {COMMITMENT_VERSION})"
            )
        _check_text("competition_id", self.competition_id, _COMPETITION_RE, COMPETITION_ID_MAX)
        if self.registry not in get_args(RegistryKind):
            raise CommitmentError("registry", f"must be 'hf' or 'local', got {self.registry!r}")
        _check_text("repo", self.repo, _REPO_RE, REPO_MAX)
        _check_text("revision", self.revision, _REVISION_RE, REVISION_MAX)
        problem = check_pinned_revision(self.registry, self.revision)
        if problem is not None:
            raise CommitmentError("revision", problem)
        if not isinstance(self.sha256, str) or not _SHA256_RE.fullmatch(self.sha256):
            raise CommitmentError("sha256", "must be 64 lowercase hex digits")

    @classmethod
    def from_artifact(cls, competition_id: str, artifact: ArtifactRef) -> Commitment:
        """The commitment pinning ``artifact`` for ``competition_id``."""
        return cls(
            competition_id=competition_id,
            registry=artifact.registry,
            repo=artifact.repo,
            revision=artifact.revision,
            sha256=artifact.sha256,
        )

    def to_artifact(self, size_bytes: int) -> ArtifactRef:
        """The :class:`ArtifactRef` this commitment pins (size comes from the registry)."""
        return ArtifactRef(
            registry=self.registry,
            repo=self.repo,
            revision=self.revision,
            sha256=self.sha256,
            size_bytes=size_bytes,
        )

    def pins(self, artifact: ArtifactRef) -> bool:
        """True when ``artifact`` is exactly the one this commitment pins."""
        return (artifact.registry, artifact.repo, artifact.revision, artifact.sha256) == (
            self.registry,
            self.repo,
            self.revision,
            self.sha256,
        )

    def encode(self) -> str:
        """The commitment text (≤ 128 bytes) — see the module docstring."""
        parts = {
            "competition_id": self.competition_id,
            "repo": self.repo,
            "revision": _encode_revision(self.revision),
        }
        text = ":".join(
            (
                _PREFIX,
                parts["competition_id"],
                _REGISTRY_LETTERS[self.registry],
                parts["repo"],
                parts["revision"],
                _b64(bytes.fromhex(self.sha256)),
            )
        )
        size = len(text.encode("utf-8"))
        if size > MAX_COMMITMENT_BYTES:
            culprit = max(parts, key=lambda name: len(parts[name]))
            others = ", ".join(f"{k} {len(v)}" for k, v in parts.items() if k != culprit)
            raise CommitmentTooLongError(
                culprit,
                f"too long: the commitment would be {size} bytes, over the "
                f"{MAX_COMMITMENT_BYTES}-byte limit; shorten {culprit!r} "
                f"({len(parts[culprit])} bytes encoded) by at least "
                f"{size - MAX_COMMITMENT_BYTES} bytes (other variable fields: {others}; "
                f"fixed overhead 51 bytes)",
            )
        return text


def encode_commitment(
    *, competition_id: str, registry: RegistryKind, repo: str, revision: str, sha256: str
) -> str:
    """Validate the fields and return the commitment text (≤ 128 bytes).

    Raises :class:`CommitmentError` (naming the field) for an invalid field and
    :class:`CommitmentTooLongError` (naming the field to shorten) when the text would
    exceed 128 bytes.
    """
    return Commitment(
        competition_id=competition_id,
        registry=registry,
        repo=repo,
        revision=revision,
        sha256=sha256,
    ).encode()


def parse_commitment(text: str | bytes) -> Commitment:
    """Parse and validate a commitment read from the chain.

    Raises :class:`CommitmentError` whose message and ``field`` name the bad field,
    :class:`UnsupportedCommitmentVersionError` for another ``k<N>`` version, and
    :class:`CommitmentTooLongError` for more than 128 bytes.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
        if len(raw) > MAX_COMMITMENT_BYTES:
            raise CommitmentTooLongError(
                None, f"{len(raw)} bytes exceeds the {MAX_COMMITMENT_BYTES}-byte limit"
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommitmentError(None, f"not valid UTF-8 ({exc.reason})") from None
    elif not isinstance(text, str):
        raise CommitmentError(None, f"expected str or bytes, got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_COMMITMENT_BYTES:
        raise CommitmentTooLongError(
            None, f"{size} bytes exceeds the {MAX_COMMITMENT_BYTES}-byte limit"
        )
    parts = text.split(":", len(FIELDS) - 1)
    version = parts[0]
    if version != _PREFIX:
        if _VERSION_RE.fullmatch(version):
            raise UnsupportedCommitmentVersionError(
                "version", f"{version!r} is not supported (this code reads {_PREFIX!r})"
            )
        raise CommitmentError(
            "version", f"expected {_PREFIX!r}, got {_shorten(version)!r}: not a Kinitro commitment"
        )
    if len(parts) < len(FIELDS):
        missing = FIELDS[len(parts)]
        raise CommitmentError(
            missing,
            f"missing (expected {len(FIELDS)} ':'-separated fields, got {len(parts)})",
        )
    _, competition_id, registry_code, repo, revision_text, sha_text = parts
    _check_text("competition_id", competition_id, _COMPETITION_RE, COMPETITION_ID_MAX)
    registry = _REGISTRY_CODES.get(registry_code)
    if registry is None:
        raise CommitmentError(
            "registry", f"expected 'h' (hf) or 'l' (local), got {_shorten(registry_code)!r}"
        )
    _check_text("repo", repo, _REPO_RE, REPO_MAX)
    revision = _decode_revision(revision_text)
    digest = _unb64("sha256", sha_text)
    if len(digest) != 32:
        raise CommitmentError("sha256", f"must encode 32 bytes, got {len(digest)}")
    return Commitment(
        competition_id=competition_id,
        registry=registry,
        repo=repo,
        revision=revision,
        sha256=digest.hex(),
    )


# ------------------------------------------------------------------- helpers


def _shorten(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[:limit] + "…"


def _check_text(field: str, value: object, pattern: re.Pattern[str], max_len: int) -> None:
    if not isinstance(value, str):
        raise CommitmentError(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise CommitmentError(field, "must not be empty")
    if len(value) > max_len:
        raise CommitmentError(field, f"is {len(value)} chars, at most {max_len} allowed")
    if not pattern.fullmatch(value):
        raise CommitmentError(
            field, f"{_shorten(value)!r} has invalid characters (allowed: {pattern.pattern})"
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(field: str, text: str) -> bytes:
    if not _B64URL_RE.fullmatch(text) or len(text) % 4 == 1:
        raise CommitmentError(field, f"{_shorten(text)!r} is not unpadded base64url")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise CommitmentError(field, f"{_shorten(text)!r} is not unpadded base64url") from None
    if _b64(raw) != text:
        raise CommitmentError(field, "non-canonical base64url (unused bits set)")
    return raw


def _encode_revision(revision: str) -> str:
    if _HEX_REVISION_RE.fullmatch(revision):
        return "x" + _b64(bytes.fromhex(revision))
    return "r" + revision


def _decode_revision(text: str) -> str:
    kind, body = text[:1], text[1:]
    if kind == "x":
        raw = _unb64("revision", body)
        if not raw:
            raise CommitmentError("revision", "must not be empty")
        if len(raw) * 2 > REVISION_MAX:
            raise CommitmentError("revision", f"decodes to {len(raw)} bytes, at most 32 allowed")
        return raw.hex()
    if kind == "r":
        _check_text("revision", body, _REVISION_RE, REVISION_MAX)
        if _HEX_REVISION_RE.fullmatch(body):
            raise CommitmentError("revision", "non-canonical: hex revisions must use the 'x' form")
        return body
    raise CommitmentError(
        "revision", f"must start with 'x' (base64url hex) or 'r' (literal), got {_shorten(text)!r}"
    )
