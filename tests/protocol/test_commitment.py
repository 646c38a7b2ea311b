"""Commitment codec: round trips, canonical form, size budget, field-named errors."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinitro.protocol.commitment import (
    MAX_COMMITMENT_BYTES,
    Commitment,
    encode_commitment,
    parse_commitment,
)
from kinitro.protocol.common import ArtifactRef, ErrorCode
from kinitro.protocol.errors import (
    CommitmentError,
    CommitmentTooLongError,
    ProtocolError,
    UnsupportedCommitmentVersionError,
)

SHA = hashlib.sha256(b"bundle").hexdigest()
REV = "0123456789abcdef0123456789abcdef01234567"

# sizes chosen so every generated commitment fits: 51 fixed + 8 + 21 + 44 = 124 bytes
_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,9}", fullmatch=True)
_hex_rev = st.binary(min_size=1, max_size=32).map(bytes.hex)
_literal_rev = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)


@st.composite
def commitments(draw: st.DrawFn) -> Commitment:
    registry = draw(st.sampled_from(["hf", "local"]))
    if registry == "hf":
        revision = draw(st.binary(min_size=20, max_size=20)).hex()
    else:
        revision = draw(st.one_of(_hex_rev, _literal_rev))
    repo = draw(st.one_of(_name, st.tuples(_name, _name).map("/".join)))
    return Commitment(
        competition_id=draw(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,7}", fullmatch=True)),
        registry=registry,
        repo=repo,
        revision=revision,
        sha256=draw(st.binary(min_size=32, max_size=32)).hex(),
    )


@given(commitments())
def test_round_trip(c: Commitment) -> None:
    text = c.encode()
    assert len(text.encode()) <= MAX_COMMITMENT_BYTES
    assert parse_commitment(text) == c
    assert parse_commitment(text.encode()) == c
    assert parse_commitment(text).encode() == text


def test_realistic_hf_commitment_fits_with_room() -> None:
    text = encode_commitment(
        competition_id="mt10",
        registry="hf",
        repo="alice-robotics/kinitro-metaworld-agent",
        revision=REV,
        sha256=SHA,
    )
    assert text.startswith("k1:mt10:h:alice-robotics/kinitro-metaworld-agent:x")
    assert len(text) <= 128
    parsed = parse_commitment(text)
    assert parsed.revision == REV and parsed.sha256 == SHA and parsed.registry == "hf"


def test_artifact_helpers() -> None:
    art = ArtifactRef(registry="local", repo="agents/x", revision="v1", sha256=SHA, size_bytes=9)
    c = Commitment.from_artifact("mt1", art)
    assert c.pins(art)
    assert c.to_artifact(9) == art
    assert not c.pins(art.model_copy(update={"revision": "v2"}))


def test_too_long_names_field() -> None:
    with pytest.raises(CommitmentTooLongError) as info:
        encode_commitment(
            competition_id="mt10",
            registry="hf",
            repo="a-very-long-organisation-name/an-even-longer-repository-name-x",
            revision=REV,
            sha256=SHA,
        )
    assert info.value.field == "repo"
    assert info.value.code is ErrorCode.COMMITMENT_TOO_LONG
    assert "commitment field 'repo'" in str(info.value)
    assert "128" in str(info.value)


def test_parse_rejects_over_128_bytes() -> None:
    with pytest.raises(CommitmentTooLongError):
        parse_commitment("k1:" + "a" * 200)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"competition_id": "MT10"}, "competition_id"),
        ({"competition_id": ""}, "competition_id"),
        ({"competition_id": "a" * 33}, "competition_id"),
        ({"registry": "s3"}, "registry"),
        ({"repo": "a/b/c"}, "repo"),
        ({"repo": "has:colon"}, "repo"),
        ({"revision": "main"}, "revision"),
        ({"registry": "local", "revision": "a b"}, "revision"),
        ({"sha256": SHA.upper()}, "sha256"),
        ({"sha256": SHA[:-1]}, "sha256"),
    ],
)
def test_encode_rejects_bad_fields(kwargs: dict[str, str], field: str) -> None:
    args = {
        "competition_id": "mt10",
        "registry": "hf",
        "repo": "alice/agent",
        "revision": REV,
        "sha256": SHA,
    } | kwargs
    with pytest.raises(CommitmentError) as info:
        encode_commitment(**args)  # type: ignore[arg-type]
    assert info.value.field == field
    assert f"commitment field {field!r}" in str(info.value)


GOOD = encode_commitment(
    competition_id="mt10", registry="hf", repo="alice/agent", revision=REV, sha256=SHA
)


def _replace(index: int, value: str) -> str:
    parts = GOOD.split(":")
    parts[index] = value
    return ":".join(parts)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "version"),
        ("hello world", "version"),
        ("K1:mt10", "version"),
        (_replace(1, "Bad!"), "competition_id"),
        (_replace(2, "s"), "registry"),
        (_replace(3, ""), "repo"),
        (_replace(4, "main"), "revision"),
        (_replace(4, "x"), "revision"),
        (_replace(4, "x!!"), "revision"),
        (_replace(4, "r" + REV), "revision"),  # non-canonical
        (_replace(4, "rmain"), "revision"),  # hf must be pinned to a commit sha
        (_replace(5, "abc"), "sha256"),
        (_replace(5, GOOD.split(":")[5][:-1] + "B"), "sha256"),  # unused bits set
        (_replace(5, "A" * 42 + "="), "sha256"),
        (GOOD + ":extra", "sha256"),
        (":".join(GOOD.split(":")[:5]), "sha256"),
        (":".join(GOOD.split(":")[:3]), "repo"),
        ("k1", "competition_id"),
    ],
)
def test_parse_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(CommitmentError) as info:
        parse_commitment(text)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"commitment field {field!r}: ")
    assert info.value.code is ErrorCode.INVALID_COMMITMENT


def test_unsupported_version() -> None:
    with pytest.raises(UnsupportedCommitmentVersionError) as info:
        parse_commitment("k2:anything")
    assert info.value.field == "version"
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION


def test_invalid_utf8() -> None:
    with pytest.raises(CommitmentError) as info:
        parse_commitment(b"k1:\xff\xfe")
    assert info.value.field is None


@given(st.one_of(st.binary(max_size=160), st.text(max_size=160)))
def test_garbage_is_rejected_with_typed_error(data: bytes | str) -> None:
    try:
        parse_commitment(data)
    except ProtocolError as exc:
        assert isinstance(exc, CommitmentError)


@given(
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,31}", fullmatch=True),
    st.from_regex(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}/[A-Za-z0-9][A-Za-z0-9._-]{0,40}", fullmatch=True
    ),
    st.one_of(_hex_rev, _literal_rev),
)
def test_encode_fits_or_names_field(competition_id: str, repo: str, revision: str) -> None:
    try:
        text = encode_commitment(
            competition_id=competition_id,
            registry="local",
            repo=repo,
            revision=revision,
            sha256=SHA,
        )
    except CommitmentTooLongError as exc:
        assert exc.field in {"competition_id", "repo", "revision"}
    else:
        assert len(text.encode()) <= MAX_COMMITMENT_BYTES
        assert parse_commitment(text).repo == repo


@given(commitments(), st.data())
def test_mutations_never_escape(c: Commitment, data: st.DataObject) -> None:
    text = c.encode()
    i = data.draw(st.integers(0, len(text) - 1))
    ch = data.draw(st.characters(codec="utf-8"))
    mutated = text[:i] + ch + text[i + 1 :]
    try:
        again = parse_commitment(mutated)
    except CommitmentError:
        return
    # a successful parse of a mutated text is canonical and self-consistent
    assert again.encode() == mutated
