"""Sealed rounds: how every seed of a round derives from its secret, and the on-chain
commitment that binds the secret before the round.

Pure functions, shared by the backend (which knows the secrets), ``kinitro round verify``
and replay audits (which recompute everything after the reveal). The derivation, byte for
byte (``docs/protocol.md``, "Sealed rounds")::

    round_secret   = HMAC-SHA256(key=seed_secret, msg="kinitro-round-secret:" + round_id)
    validator_seed = u63(HMAC-SHA256(key=round_secret,
                                     msg="kinitro-validator-seed:" + validator_hotkey))
    episode_seed   = u63(SHA-256("kinitro-episode-seed-v1" 0x00 str(validator_seed) 0x00
                                 task 0x00 str(task_episode)))

where ``u63(d)`` is the first 8 bytes of ``d`` as a big-endian integer with the top bit
cleared, strings are UTF-8 and ``str(n)`` is the decimal form. The backend commits, before
any job of the round is dispatched, the chain commitment (:func:`encode_round_commitment`)::

    kr1:<round_id>:<base64url(SHA-256("kinitro-round:" + round_id + ":" + hex(round_secret)))>

(unpadded base64url of the 32-byte digest, 43 characters; the whole text at most 128
bytes, so ``round_id`` at most 80 characters). After the round it publishes
``round_secret``; :func:`check_reveal` is the test anyone can run against the chain.

Every miner evaluated by one validator in a round meets the same episodes (paired
comparison); two validators meet different ones (a validator that leaks its seeds helps
nobody elsewhere), and a validator never learns the round secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from kinitro.protocol.errors import CommitmentError, CommitmentTooLongError

ROUND_COMMITMENT_VERSION = "kr1"
MAX_ROUND_ID_CHARS = 80  # 128 - len("kr1:") - len(":") - 43
SECRET_BYTES = 32
EPISODE_SEED_DERIVATION = "kinitro-episode-seed-v1"
_U63 = (1 << 63) - 1
_ROUND_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,79}$")
_DIGEST = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _u63(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") & _U63


def round_secret(seed_secret: bytes, round_id: str) -> bytes:
    """The 32-byte secret of ``round_id``, from the backend's long-term ``seed_secret``."""
    return hmac.new(seed_secret, f"kinitro-round-secret:{round_id}".encode(), "sha256").digest()


def validator_seed(secret: bytes, validator_hotkey: str) -> int:
    """The base seed of every job ``validator_hotkey`` evaluates in the round (``EvalJob.seed``)."""
    message = f"kinitro-validator-seed:{validator_hotkey}".encode()
    return _u63(hmac.new(secret, message, "sha256").digest())


def episode_seed(base_seed: int, task: str, task_episode: int) -> int:
    """The simulator seed of episode ``task_episode`` of ``task`` in a job with ``base_seed``.

    sha256 over a versioned, unambiguous string: the same inputs give the same seed on every
    machine, different tasks / indices give independent seeds, and nothing about the base
    seed can be recovered from an episode seed.
    """
    material = f"{EPISODE_SEED_DERIVATION}\x00{int(base_seed)}\x00{task}\x00{int(task_episode)}"
    return _u63(hashlib.sha256(material.encode()).digest())


def commitment_digest(round_id: str, secret: bytes) -> bytes:
    """SHA-256 of ``"kinitro-round:" + round_id + ":" + hex(secret)``."""
    return hashlib.sha256(f"kinitro-round:{round_id}:{secret.hex()}".encode()).digest()


@dataclass(frozen=True, slots=True)
class RoundCommitment:
    """A parsed ``kr1`` chain commitment."""

    round_id: str
    digest: bytes

    def matches(self, secret: bytes) -> bool:
        """True when ``secret`` is the secret this commitment binds."""
        return hmac.compare_digest(commitment_digest(self.round_id, secret), self.digest)


def encode_round_commitment(round_id: str, secret: bytes) -> str:
    """The chain commitment of a round (≤ 128 bytes); refuses ids that would not fit."""
    check_round_id(round_id)
    digest = base64.urlsafe_b64encode(commitment_digest(round_id, secret)).rstrip(b"=")
    return f"{ROUND_COMMITMENT_VERSION}:{round_id}:{digest.decode()}"


def check_round_id(round_id: str) -> str:
    """``round_id`` if it can be committed: 1–80 chars of ``[A-Za-z0-9_.@-]``."""
    if len(round_id) > MAX_ROUND_ID_CHARS:
        raise CommitmentTooLongError(
            "round_id",
            f"round id is {len(round_id)} characters; a round commitment holds at most "
            f"{MAX_ROUND_ID_CHARS}",
        )
    if not _ROUND_ID.match(round_id):
        raise CommitmentError(
            "round_id",
            f"round id {round_id!r} must be characters of [A-Za-z0-9_.@-] starting with a "
            "letter or digit",
        )
    return round_id


def parse_round_commitment(text: str) -> RoundCommitment:
    """Parse a ``kr1:<round_id>:<digest>`` commitment; raise :class:`CommitmentError`."""
    version, _, rest = text.partition(":")
    if version != ROUND_COMMITMENT_VERSION:
        raise CommitmentError(
            "version",
            f"not a round commitment (version {version!r}, expected {ROUND_COMMITMENT_VERSION!r})",
        )
    round_id, _, digest = rest.rpartition(":")
    check_round_id(round_id)
    if not _DIGEST.match(digest):
        raise CommitmentError(
            "digest",
            "digest must be 43 characters of base64url",
        )
    raw = base64.urlsafe_b64decode(digest + "=")
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != digest:
        raise CommitmentError(
            "digest",
            "digest is not canonical base64url",
        )
    return RoundCommitment(round_id, raw)


def check_reveal(round_id: str, secret_hex: str, commitment_text: str) -> bytes:
    """The revealed secret, if it is the one ``commitment_text`` (read from the chain)
    binds for ``round_id``; otherwise raise :class:`CommitmentError` naming the field."""
    commitment = parse_round_commitment(commitment_text)
    if commitment.round_id != round_id:
        raise CommitmentError(
            "round_id",
            f"the commitment is for round {commitment.round_id!r}, not {round_id!r}",
        )
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        raise CommitmentError(
            "secret",
            "the revealed secret is not hex",
        ) from None
    if len(secret) != SECRET_BYTES:
        raise CommitmentError(
            "secret",
            f"the revealed secret has {len(secret)} bytes, expected {SECRET_BYTES}",
        )
    if not commitment.matches(secret):
        raise CommitmentError(
            "secret",
            "the revealed secret does not match the commitment on chain",
        )
    return secret
