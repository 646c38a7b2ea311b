"""The archive gate is the unpacker's own rule: an archive the backend accepts unpacks, and
one it refuses is refused by the unpacker too, as the bundle's fault (never an OSError the
evaluator would retry as infrastructure). One case per way an unpacker can fail, then a
property over arbitrary member lists built from hostile names."""

from __future__ import annotations

import errno
import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinitro.storage.archive import NAME_MAX_BYTES, PATH_MAX_BYTES, extract_bundle, inspect_archive
from kinitro.storage.errors import BundleError

MANIFEST = b'name = "x"\nentrypoint = "agent:Agent"\nspec_version = 1\n'
BASE = [("kinitro.toml", MANIFEST), ("agent.py", b"class Agent:\n    pass\n")]


def archive(path: Path, members: list[tuple[str, bytes]], **header: object) -> Path:
    fmt = tarfile.GNU_FORMAT if header.pop("gnu", False) else tarfile.PAX_FORMAT
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for key, value in header.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data))
    return path


def verdicts(tmp_path: Path, path: Path) -> tuple[str, str]:
    """(inspect, extract): 'ok' or the BundleError's problem; anything else propagates."""
    out = []
    for check in (inspect_archive, lambda p: extract_bundle(p, tmp_path / f"x-{p.stem}")):
        try:
            check(path)
            out.append("ok")
        except BundleError as exc:
            out.append(f"{exc.problem}: {exc}")
    return out[0], out[1]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ([("a" * (NAME_MAX_BYTES + 1) + ".py", b"x")], "longer than 255 bytes"),
        ([("é" * 128 + ".py", b"x")], "longer than 255 bytes"),  # 256 UTF-8 bytes
        ([("/".join(["d" * 200] * 6) + "/f", b"x")], f"longer than {PATH_MAX_BYTES} bytes"),
        ([("w", b"x"), ("w/x", b"y")], "needs 'w' to be a directory"),
        ([("w/x", b"y"), ("w", b"x")], "a file where 'w'/… needs a directory"),
        ([("W", b"x"), ("w/x", b"y")], "needs 'w' to be a directory"),
        ([("Lib/a.py", b"x"), ("lib/b.py", b"y")], "directory 'lib' beside 'Lib'"),
        ([("A.py", b"x"), ("a.py", b"y")], "beside 'A.py' (same name ignoring case)"),
        ([("caf\u00e9.py", b"x"), ("cafe\u0301.py", b"y")], "same name ignoring case"),
        ([("a.py", b"x"), ("a.py", b"y")], "listed twice"),
        ([("z.py", b"x"), ("./z.py", b"y")], "listed twice"),
        ([("kinitro.toml", b'name = "evil"\n')], "listed twice"),  # a second manifest
        ([("a\nb.py", b"x")], "control character"),
        ([("a\x7fb.py", b"x")], "control character"),
        ([("a//b.py", b"x")], "unsafe path"),
        ([("a/./b.py", b"x")], "unsafe path"),
        ([("a/", b"")], "unsafe path"),
        ([("../up.py", b"x")], "unsafe path"),
        ([("/abs.py", b"x")], "unsafe path"),
    ],
)
def test_every_unpack_failure_is_refused_by_the_gate(
    tmp_path: Path, extra: list[tuple[str, bytes]], needle: str
) -> None:
    path = archive(tmp_path / "b.tar", BASE + extra)
    inspected, extracted = verdicts(tmp_path, path)
    assert inspected.startswith("bad_archive") and needle in inspected, inspected
    assert extracted == inspected


def test_names_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = archive(tmp_path / "b.tar", [*BASE, ("caf\udce9.py", b"x")], gnu=True)
    inspected, extracted = verdicts(tmp_path, path)
    assert "not valid UTF-8" in inspected and extracted == inspected


@pytest.mark.parametrize(
    "header",
    [{"mtime": 10**20}, {"mtime": -(10**12)}, {"mode": 0}, {"mode": 0o7777}, {"uid": 2**21 - 1}],
)
def test_header_fields_the_unpacker_ignores_never_fail_it(
    tmp_path: Path, header: dict[str, int]
) -> None:
    """Times, modes and owners are not taken from the archive: 0, 0644/0755, the host's."""
    path = archive(tmp_path / "b.tar", [*BASE, ("w.bin", b"x")], **header)
    assert verdicts(tmp_path, path) == ("ok", "ok")
    unpacked = tmp_path / "x-b"
    for name in ("kinitro.toml", "agent.py", "w.bin"):
        st_ = (unpacked / name).stat()
        assert st_.st_mtime == 0 and st_.st_mode & 0o7777 in (0o644, 0o755)


def test_a_full_disk_is_the_hosts_fault_not_the_bundles(tmp_path: Path) -> None:
    """ENOSPC while unpacking stays an OSError: the evaluator retries it as infrastructure
    instead of charging the miner (a 64 KiB tmpfs plays the full disk)."""

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        path = archive(tmp_path / "b.tar", [*BASE, ("w.bin", bytes(256 * 1024))])
        assert inspect_archive(path).name == "x"  # nothing wrong with the archive
        with pytest.raises(OSError) as exc:
            extract_bundle(path, disk / "out")
        assert exc.value.errno == errno.ENOSPC and not isinstance(exc.value, BundleError)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


NAME = st.one_of(
    st.sampled_from(["a", "A", "b", "w", "W", "x.py", "X.PY", ".", "..", "", "é", "e\u0301"]),
    st.text(alphabet="aAbB/.\n\\é-_ ", min_size=1, max_size=6),
    st.integers(min_value=250, max_value=260).map(lambda n: "n" * n),
)
PATHS = st.lists(
    st.lists(NAME, min_size=1, max_size=4)
    .map("/".join)
    .map(lambda p: p if not p.startswith("/") else p[1:]),
    min_size=0,
    max_size=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(names=PATHS, prefix=st.booleans())
def test_the_gate_accepts_exactly_what_unpacks(
    tmp_path_factory: pytest.TempPathFactory, names: list[str], prefix: bool
) -> None:
    root = tmp_path_factory.mktemp("gate")
    members = BASE + [(("./" if prefix else "") + n, n.encode("utf-8", "replace")) for n in names]
    try:
        path = archive(root / "b.tar", members)
    except (ValueError, UnicodeError):  # tarfile cannot even write it
        return
    inspected, extracted = verdicts(root, path)
    assert (inspected == "ok") == (extracted == "ok"), (names, inspected, extracted)
    if extracted == "ok":  # and then every member is there with its bytes
        for name, data in members:
            assert (root / "x-b" / name.removeprefix("./")).read_bytes() == data
