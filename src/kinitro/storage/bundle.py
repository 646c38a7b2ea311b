"""Agent bundles: manifest, static validation, deterministic packaging.

Archives (the gate of what may be unpacked, and the unpacker) are
:mod:`kinitro.storage.archive`.

A bundle is a directory with a manifest ``kinitro.toml`` plus code and weights::

    name = "reach-agent"            # [A-Za-z0-9._-], 1-64 chars
    entrypoint = "agent:Agent"      # module:Class, module relative to the bundle root
    spec_version = 1                # agent contract version (see below)
    description = "optional"
    slots = 8                       # optional: concurrent episodes, one instance each
    profile = "base"                # optional: agent environment (kinitro_agent.profiles)
    deterministic = false           # optional: same observations → same actions (re-run audits)

    [resources]                     # optional, what the agent asks for
    cpus = 1.0
    memory_mb = 2048

Agent contract (spec version 1): ``Class()`` takes no arguments; ``reset(task: dict)``,
``act(observation: numpy.ndarray) -> numpy.ndarray`` and optional ``close()``.

Validation is **static**: the manifest is parsed, the entrypoint module file must exist and
its source must define the class (checked by parsing the source with :mod:`ast`, never by
importing it). Miner code is only ever imported by the agent runtime inside the sandbox.

Packaging writes an uncompressed POSIX tar with entries sorted by path, regular files only,
``mtime=0``, ``uid=gid=0``, empty owner names and modes normalised to 0644/0755, so the same
bundle gives the same bytes — and the same sha256 — wherever it is packaged.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import io
import os
import re
import stat
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kinitro.storage.errors import BundleError
from kinitro_agent.profiles import DEFAULT_PROFILE, PROFILES

MANIFEST_NAME = "kinitro.toml"
ARCHIVE_NAME = "bundle.tar"
SPEC_VERSIONS = (1,)
DEFAULT_MAX_BUNDLE_BYTES = 512 * 1024 * 1024
MAX_FILES = 10_000

_ENTRYPOINT = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):([A-Za-z_][A-Za-z0-9_]*)$"
)

# Skipped silently: build noise that never belongs in a bundle.
IGNORED_DIRS = frozenset(
    {".git", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".kinitro"}
)
IGNORED_FILES = ("*.pyc", "*.pyo", ".DS_Store")
# Refused: secrets that must never be uploaded, and whole virtualenvs.
FORBIDDEN_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "coldkey",
)
FORBIDDEN_DIRS = frozenset({".ssh", ".aws", ".venv", "venv", "wallets", ".bittensor"})


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float | None = Field(default=None, gt=0, le=64)
    memory_mb: int | None = Field(default=None, gt=0, le=262_144)
    gpu: bool = False


class BundleManifest(BaseModel):
    """The parsed ``kinitro.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    entrypoint: str
    spec_version: int = 1
    description: str = Field(default="", max_length=1000)
    slots: int = Field(default=1, ge=1, le=64)
    """Agent instances the runtime may create, one per concurrent episode (the evaluator
    then steps them together, one round trip per step for all). Raise it for small
    policies; keep 1 when one instance needs most of the sandbox's memory."""
    profile: str = DEFAULT_PROFILE
    """The agent environment the sandbox runs the bundle on: ``base`` (numpy, msgpack) or
    an optional profile such as ``torch`` (CPU build); see ``kinitro_agent.profiles``."""
    resources: Resources = Resources()
    deterministic: bool = False
    """The agent always answers the same observations with the same actions. Such a
    bundle gets the strongest audit: after a round's reveal, other validators re-run it on
    an audited episode's seed and their actions must match the logged ones (a validator
    cannot pass off a stronger policy's episodes as this agent's). Leave it false for an
    agent that samples, or whose numerics vary between runs: re-runs that disagree with
    each other only switch the check off for the bundle."""

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if value not in PROFILES:
            raise ValueError(f"unknown agent environment profile; known: {sorted(PROFILES)}")
        return value

    @property
    def module(self) -> str:
        return self.entrypoint.partition(":")[0]

    @property
    def class_name(self) -> str:
        return self.entrypoint.partition(":")[2]


@dataclass(frozen=True, slots=True)
class BundleFile:
    path: str  # relative POSIX path inside the bundle
    size: int
    executable: bool


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What validation found: the manifest, the files to package and their total size."""

    root: Path
    manifest: BundleManifest
    files: tuple[BundleFile, ...]
    total_bytes: int
    entrypoint_file: str


@dataclass(frozen=True, slots=True)
class PackagedBundle:
    path: Path
    sha256: str
    size_bytes: int
    manifest: BundleManifest
    files: int


def parse_manifest(text: str, *, source: str = MANIFEST_NAME) -> BundleManifest:
    """Parse manifest text; errors name the bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError("bad_manifest", f"{source} is not valid TOML: {exc}") from None
    try:
        manifest = BundleManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise BundleError("bad_manifest", f"{source}: {problems}") from None
    if not _ENTRYPOINT.fullmatch(manifest.entrypoint):
        raise BundleError(
            "bad_entrypoint",
            f"{source}: entrypoint {manifest.entrypoint!r} must look like 'module:Class' "
            "(e.g. 'agent:Agent' or 'my_pkg.policy:Policy')",
        )
    if manifest.spec_version not in SPEC_VERSIONS:
        raise BundleError(
            "bad_manifest",
            f"{source}: spec_version {manifest.spec_version} is not supported "
            f"(supported: {', '.join(map(str, SPEC_VERSIONS))})",
        )
    return manifest


def load_manifest(root: Path) -> BundleManifest:
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise BundleError("missing_manifest", f"no {MANIFEST_NAME} in {root}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError("bad_manifest", f"cannot read {path}: {exc}") from None
    return parse_manifest(text, source=str(path))


def _is_forbidden(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in FORBIDDEN_PATTERNS)


def _is_ignored(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED_FILES)


def _collect(root: Path, max_bytes: int) -> tuple[list[BundleFile], int]:
    files: list[BundleFile] = []
    total = 0
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(dirpath)
        kept_dirs = []
        for d in sorted(dirnames):
            rel = (current / d).relative_to(root).as_posix()
            if d in IGNORED_DIRS:
                continue
            if d in FORBIDDEN_DIRS:
                raise BundleError("forbidden_file", f"{rel}/ must not be in a bundle")
            if (current / d).is_symlink():
                _check_symlink(current / d, real_root, rel)
                raise BundleError(
                    "symlink", f"{rel} is a symlink to a directory; copy the files instead"
                )
            kept_dirs.append(d)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            path = current / name
            rel = path.relative_to(root).as_posix()
            if _is_ignored(name):
                continue
            if _is_forbidden(name):
                raise BundleError(
                    "forbidden_file", f"{rel} looks like a secret and must not be in a bundle"
                )
            if path.is_symlink():
                _check_symlink(path, real_root, rel)
            try:
                info = path.stat()
            except OSError as exc:
                raise BundleError("unreadable", f"cannot read {rel}: {exc}") from None
            if not stat.S_ISREG(info.st_mode):
                raise BundleError("forbidden_file", f"{rel} is not a regular file")
            if not os.access(path, os.R_OK):
                raise BundleError("unreadable", f"{rel} is not readable")
            total += info.st_size
            if total > max_bytes:
                raise BundleError(
                    "oversize",
                    f"bundle is larger than the {human_bytes(max_bytes)} limit (reached at {rel}); "
                    "move large weights out or shrink them",
                )
            files.append(BundleFile(rel, info.st_size, bool(info.st_mode & stat.S_IXUSR)))
            if len(files) > MAX_FILES:
                raise BundleError("oversize", f"bundle has more than {MAX_FILES} files")
    files.sort(key=lambda f: f.path)
    return files, total


def _check_symlink(path: Path, real_root: Path, rel: str) -> None:
    target = path.resolve()
    if not target.is_relative_to(real_root):
        raise BundleError(
            "symlink_escape", f"{rel} is a symlink pointing outside the bundle ({target})"
        )


def entrypoint_file(manifest: BundleManifest, names: set[str]) -> str:
    """The entrypoint module's file among ``names``; raises ``missing_entrypoint``."""
    parts = manifest.module.split(".")
    candidates = ["/".join(parts) + ".py", "/".join([*parts, "__init__.py"])]
    for candidate in candidates:
        if candidate in names:
            return candidate
    raise BundleError(
        "missing_entrypoint",
        f"entrypoint module {manifest.module!r} not found: expected "
        f"{' or '.join(candidates)} in the bundle",
    )


def _check_class(root: Path, rel: str, manifest: BundleManifest) -> None:
    """Parse (never import) the module and look for the class and its ``act`` method."""
    path = root / rel
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except SyntaxError as exc:
        raise BundleError(
            "bad_entrypoint", f"{rel} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError("bad_entrypoint", f"cannot parse {rel}: {exc}") from None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == manifest.class_name:
            methods = {
                n.name for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if "act" not in methods and not node.bases:
                raise BundleError(
                    "bad_entrypoint",
                    f"class {manifest.class_name} in {rel} has no act(observation) method",
                )
            return
        if isinstance(node, ast.Assign | ast.ImportFrom) and _binds(node, manifest.class_name):
            return  # re-exported or aliased: accept, the runtime resolves it
    raise BundleError("missing_entrypoint", f"{rel} does not define class {manifest.class_name!r}")


def _binds(node: ast.Assign | ast.ImportFrom, name: str) -> bool:
    if isinstance(node, ast.ImportFrom):
        return any((alias.asname or alias.name) == name for alias in node.names)
    return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)


def validate_bundle(root: Path, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> BundleReport:
    """Check a bundle directory; raise :class:`BundleError` naming the first problem."""
    if not root.is_dir():
        raise BundleError("not_a_directory", f"bundle directory not found: {root}")
    manifest = load_manifest(root)
    files, total = _collect(root, max_bytes)
    entry = entrypoint_file(manifest, {f.path for f in files})
    _check_class(root, entry, manifest)
    return BundleReport(root, manifest, tuple(files), total, entry)


def _tarinfo(file: BundleFile) -> tarfile.TarInfo:
    info = tarfile.TarInfo(file.path)
    info.size = file.size
    info.mtime = 0
    info.mode = 0o755 if file.executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def package_bundle(
    root: Path, out: Path, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
) -> PackagedBundle:
    """Validate ``root`` and write its deterministic tar to ``out`` (atomically)."""
    report = validate_bundle(root, max_bytes=max_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with (
            tmp.open("wb") as raw,
            tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for file in report.files:
                with (root / file.path).open("rb") as fh:
                    data = fh.read()
                if len(data) != file.size:
                    raise BundleError("changed", f"{file.path} changed while packaging")
                tar.addfile(_tarinfo(file), io.BytesIO(data))
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return PackagedBundle(out, digest, size, report.manifest, len(report.files))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def human_bytes(n: int) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def manifest_to_dict(manifest: BundleManifest) -> dict[str, Any]:
    return manifest.model_dump(mode="json")
