"""Bundle manifest, validation (clear errors), deterministic packaging, safe extraction."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from kinitro.storage.archive import extract_bundle, inspect_archive
from kinitro.storage.bundle import (
    package_bundle,
    parse_manifest,
    validate_bundle,
)
from kinitro.storage.errors import BundleError

MANIFEST = 'name = "t"\nentrypoint = "agent:Agent"\nspec_version = 1\n'
AGENT = "class Agent:\n    def reset(self, task): ...\n    def act(self, obs): return obs\n"


def make_bundle(root: Path, manifest: str = MANIFEST, agent: str = AGENT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "kinitro.toml").write_text(manifest)
    (root / "agent.py").write_text(agent)
    (root / "weights").mkdir(exist_ok=True)
    (root / "weights" / "w.bin").write_bytes(b"\x00\x01" * 100)
    return root


def problem(root: Path, **kwargs: int) -> str:
    with pytest.raises(BundleError) as info:
        validate_bundle(root, **kwargs)
    return f"{info.value.problem}: {info.value}"


def test_valid_bundle_report(tmp_path: Path) -> None:
    report = validate_bundle(make_bundle(tmp_path / "b"))
    assert [f.path for f in report.files] == ["agent.py", "kinitro.toml", "weights/w.bin"]
    assert report.entrypoint_file == "agent.py" and report.manifest.class_name == "Agent"


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ('name = "t"\n', "entrypoint"),
        ('name = "t"\nentrypoint = "agent.Agent"\n', "module:Class"),
        ('name = "t"\nentrypoint = "agent:Agent"\nspec_version = 9\n', "spec_version 9"),
        ('name = "t"\nentrypoint = "agent:Agent"\ntypo = 1\n', "typo"),
        ("name = [", "not valid TOML"),
        ('name = "bad name!"\nentrypoint = "agent:Agent"\n', "name"),
        ('name = "t"\nentrypoint = "agent:Agent"\nprofile = "cuda"\n', "profile"),
    ],
)
def test_bad_manifests(manifest: str, expected: str) -> None:
    with pytest.raises(BundleError, match=expected):
        parse_manifest(manifest)


def test_profile_defaults_to_base_and_names_a_known_environment() -> None:
    assert parse_manifest('name = "t"\nentrypoint = "agent:Agent"\n').profile == "base"
    m = parse_manifest('name = "t"\nentrypoint = "agent:Agent"\nprofile = "torch"\n')
    assert m.profile == "torch"


def test_missing_manifest_module_and_class(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    assert "missing_manifest" in problem(root)
    make_bundle(root, manifest='name = "t"\nentrypoint = "policy.net:Agent"\n')
    assert "policy/net.py or policy/net/__init__.py" in problem(root)
    make_bundle(root, agent="class Other:\n    pass\n")
    assert "does not define class 'Agent'" in problem(root)
    make_bundle(root, agent="class Agent(:\n")
    assert "syntax error" in problem(root)
    make_bundle(root, agent="class Agent:\n    def reset(self, t): ...\n")
    assert "no act(observation) method" in problem(root)


def test_package_module_entrypoint(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b", manifest='name = "t"\nentrypoint = "pkg.policy:Agent"\n')
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "policy.py").write_text(AGENT)
    assert validate_bundle(root).entrypoint_file == "pkg/policy.py"


def test_symlinks_forbidden_and_oversize(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "b")
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    (root / "link").symlink_to(outside)
    assert problem(root).startswith("symlink_escape")
    (root / "link").unlink()
    (root / "inner").symlink_to(root / "agent.py")  # inside the bundle: packaged as a file
    assert "inner" in {f.path for f in validate_bundle(root).files}
    (root / "id_rsa").write_text("key")
    assert problem(root).startswith("forbidden_file")
    (root / "id_rsa").unlink()
    (root / ".venv").mkdir()
    assert problem(root).startswith("forbidden_file")
    (root / ".venv").rmdir()
    assert problem(root, max_bytes=100).startswith("oversize")
    os.mkfifo(root / "fifo")
    assert "not a regular file" in problem(root)


def test_packaging_is_deterministic(tmp_path: Path) -> None:
    a = make_bundle(tmp_path / "a")
    b = make_bundle(tmp_path / "x" / "y" / "b")
    os.utime(b / "agent.py", (1, 1))
    (b / ".git").mkdir()
    (b / ".git" / "HEAD").write_text("ref")
    pa = package_bundle(a, tmp_path / "a.tar")
    pb = package_bundle(b, tmp_path / "b.tar")
    assert pa.sha256 == pb.sha256 and pa.path.read_bytes() == pb.path.read_bytes()
    with tarfile.open(pa.path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["agent.py", "kinitro.toml", "weights/w.bin"]
    assert all((m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "") for m in members)
    (b / "agent.py").write_text(AGENT + "# changed\n")
    assert package_bundle(b, tmp_path / "c.tar").sha256 != pa.sha256


def test_extract_roundtrip_and_hostile_archives(tmp_path: Path) -> None:
    packed = package_bundle(make_bundle(tmp_path / "a"), tmp_path / "a.tar")
    manifest = extract_bundle(packed.path, tmp_path / "out")
    assert manifest.entrypoint == "agent:Agent"
    assert (tmp_path / "out" / "weights" / "w.bin").read_bytes() == b"\x00\x01" * 100
    with pytest.raises(BundleError, match="not empty"):
        extract_bundle(packed.path, tmp_path / "out")
    with pytest.raises(BundleError, match="more than"):
        extract_bundle(packed.path, tmp_path / "small", max_bytes=10)

    def hostile(name: str, kind: bytes = tarfile.REGTYPE) -> Path:
        path = tmp_path / f"h{len(list(tmp_path.iterdir()))}.tar"
        with tarfile.open(path, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            info.size = 0
            tar.addfile(info, io.BytesIO(b""))
        return path

    with pytest.raises(BundleError, match="unsafe path"):
        extract_bundle(hostile("../escape.py"), tmp_path / "e1")
    with pytest.raises(BundleError, match="unsafe path"):
        extract_bundle(hostile("/abs.py"), tmp_path / "e2")
    with pytest.raises(BundleError, match="only regular files"):
        extract_bundle(hostile("link", tarfile.SYMTYPE), tmp_path / "e3")
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(BundleError, match="not a valid bundle archive"):
        extract_bundle(tmp_path / "garbage.tar", tmp_path / "e4")


def test_inspect_archive_checks_without_unpacking(tmp_path: Path) -> None:
    packed = package_bundle(make_bundle(tmp_path / "a"), tmp_path / "a.tar")
    assert inspect_archive(packed.path).entrypoint == "agent:Agent"
    with pytest.raises(BundleError, match="more than") as too_big:
        inspect_archive(packed.path, max_bytes=10)
    assert too_big.value.problem == "oversize"

    def archive(*members: tuple[str, bytes], size: int | None = None) -> Path:
        path = tmp_path / f"i{len(list(tmp_path.iterdir()))}.tar"
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data) if size is None else size
                tar.addfile(info, io.BytesIO(data) if size is None else None)
        return path

    manifest = ("kinitro.toml", b'name = "x"\nentrypoint = "agent:Agent"\nspec_version = 1\n')
    cases = {
        "bad_archive": archive(manifest, ("../../etc/evil.py", b"x")),
        "missing_manifest": archive(("agent.py", b"class Agent: pass\n")),
        "missing_entrypoint": archive(manifest),
        "bad_manifest": archive(("kinitro.toml", b"\xff\xfe"), ("agent.py", b"")),
    }
    for problem, path in cases.items():
        with pytest.raises(BundleError) as err:
            inspect_archive(path)
        assert err.value.problem == problem, (problem, err.value)
    declared = archive(manifest, size=10**12)  # a header claiming a terabyte, no data
    with pytest.raises(BundleError) as err:
        inspect_archive(declared)
    assert err.value.problem == "oversize"
