"""Sealed-round derivations: re-implemented here from the spec in docs/protocol.md (so a
change of the code that breaks what third parties compute fails), plus the commitment
codec and the reveal check."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinitro.protocol.errors import CommitmentError, CommitmentTooLongError
from kinitro.protocol.rounds import (
    MAX_ROUND_ID_CHARS,
    check_reveal,
    encode_round_commitment,
    episode_seed,
    parse_round_commitment,
    round_secret,
    validator_seed,
)

SEED_SECRET = b"backend long-term secret"
ROUND = "20260101T000000Z-mt10"
HOTKEYS = (
    "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
    "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
)


def _u63(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def test_derivation_matches_the_documented_spec() -> None:
    secret = hmac.new(SEED_SECRET, b"kinitro-round-secret:" + ROUND.encode(), "sha256").digest()
    assert round_secret(SEED_SECRET, ROUND) == secret and len(secret) == 32
    for hotkey in HOTKEYS:
        mac = hmac.new(secret, b"kinitro-validator-seed:" + hotkey.encode(), "sha256").digest()
        seed = validator_seed(secret, hotkey)
        assert seed == _u63(mac) and 0 <= seed < 2**63
        material = b"kinitro-episode-seed-v1\x00%d\x00reach-v3\x003" % seed
        assert episode_seed(seed, "reach-v3", 3) == _u63(hashlib.sha256(material).digest())
    digest = hashlib.sha256(f"kinitro-round:{ROUND}:{secret.hex()}".encode()).digest()
    text = encode_round_commitment(ROUND, secret)
    assert text == f"kr1:{ROUND}:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_seeds_differ_per_validator_and_per_round() -> None:
    a = round_secret(SEED_SECRET, ROUND)
    b = round_secret(SEED_SECRET, "20260102T000000Z-mt10")
    seeds = {validator_seed(s, h) for s in (a, b) for h in HOTKEYS}
    assert len(seeds) == 4
    assert validator_seed(a, HOTKEYS[0]) == validator_seed(a, HOTKEYS[0])  # paired per validator


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=32))
def test_the_longest_round_id_fits_the_chain_limit(competition_id: str) -> None:
    round_id = f"20260101T000000Z-{competition_id}"  # the backend's round id format
    text = encode_round_commitment(round_id, bytes(32))
    assert len(text.encode()) <= 128
    assert parse_round_commitment(text).round_id == round_id


def test_round_ids_that_cannot_be_committed_are_refused() -> None:
    assert len(encode_round_commitment("r" * MAX_ROUND_ID_CHARS, bytes(32)).encode()) == 128
    with pytest.raises(CommitmentTooLongError):
        encode_round_commitment("r" * (MAX_ROUND_ID_CHARS + 1), bytes(32))
    for bad in ("", "-r", "a:b", "a b", "é"):
        with pytest.raises(CommitmentError) as exc:
            encode_round_commitment(bad, bytes(32))
        assert exc.value.field == "round_id"


def test_reveal_is_checked_against_the_commitment() -> None:
    secret = round_secret(SEED_SECRET, ROUND)
    text = encode_round_commitment(ROUND, secret)
    assert check_reveal(ROUND, secret.hex(), text) == secret
    cases = {
        "secret": (ROUND, round_secret(b"other", ROUND).hex(), text),
        "round_id": ("other-round", secret.hex(), text),
    }
    for field, args in cases.items():
        with pytest.raises(CommitmentError) as exc:
            check_reveal(*args)
        assert exc.value.field == field
    with pytest.raises(CommitmentError, match="not hex"):
        check_reveal(ROUND, "zz", text)
    with pytest.raises(CommitmentError, match="16 bytes"):
        check_reveal(ROUND, secret.hex()[:32], text)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("k1:mt10:h:a/b:xx:" + "A" * 43, "version"),
        (f"kr1:{ROUND}:" + "A" * 42, "digest"),
        (f"kr1:{ROUND}:" + "A" * 42 + "B", "digest"),  # non-canonical trailing bits
        ("kr1::" + "A" * 43, "round_id"),
    ],
)
def test_malformed_round_commitments(text: str, field: str) -> None:
    with pytest.raises(CommitmentError) as exc:
        parse_round_commitment(text)
    assert exc.value.field == field
