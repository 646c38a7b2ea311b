"""Bundle archives: the gate that decides what may be unpacked, and the unpacker.

The gate (:class:`ArchiveGate`) is the single definition of a valid archive, used by both
sides: the backend inspects a submitted archive with :func:`inspect_archive` (tar headers
and the manifest only; nothing is written) and the evaluator unpacks with
:func:`extract_bundle`, which runs the same gate first. So whatever the backend accepts
unpacks, and an archive the unpacker would choke on is refused at submission as
``invalid_bundle``. An archive must be an uncompressed tar of at most :data:`MAX_FILES`
regular files, at most ``max_bytes`` unpacked, each with a path that

* is relative, without ``..``, ``.`` or empty components (one leading ``./`` is allowed),
* is valid UTF-8 without control characters,
* has components of at most :data:`NAME_MAX_BYTES` and a total of at most
  :data:`PATH_MAX_BYTES` (UTF-8 bytes), within every filesystem's limits,
* names no other member once case and Unicode normalisation are ignored (duplicates,
  ``Agent.py`` beside ``agent.py``: one would silently replace the other on a
  case-insensitive filesystem), and is neither a file where another member needs a
  directory nor the reverse (``w`` and ``w/x``).

The unpacker takes nothing else from the headers: modes become 0644/0755, times 0, owners
the evaluator's. An ``OSError`` that still occurs while unpacking is the host's when its
errno says so (disk full, I/O error, read-only or out of descriptors: re-raised, retried as
infrastructure) and the bundle's otherwise.
"""

from __future__ import annotations

import errno
import tarfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from kinitro.storage.bundle import (
    DEFAULT_MAX_BUNDLE_BYTES,
    MANIFEST_NAME,
    MAX_FILES,
    BundleManifest,
    entrypoint_file,
    human_bytes,
    load_manifest,
    parse_manifest,
)
from kinitro.storage.errors import BundleError

MAX_MANIFEST_BYTES = 64 * 1024
NAME_MAX_BYTES = 255
"""Longest path component (Linux ``NAME_MAX``, and most other filesystems')."""
PATH_MAX_BYTES = 1024
"""Longest member path: far below ``PATH_MAX`` (4096) once under a cache directory."""

HOST_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE, errno.ENFILE}
)
"""Errors of the unpacking host, not of the archive."""


def _fold(path: str) -> str:
    return unicodedata.normalize("NFC", path).casefold()


@dataclass(slots=True)
class ArchiveGate:
    """Admits the members of one archive, in order; raises :class:`BundleError`."""

    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
    total: int = 0
    files: dict[str, str] = field(default_factory=dict)
    """Folded path → member path of every file admitted so far."""
    dirs: dict[str, str] = field(default_factory=dict)
    """Folded path → path of every directory the files so far need."""

    def admit(self, member: tarfile.TarInfo) -> str:
        """Check ``member``; return its path relative to the bundle root."""
        if len(self.files) >= MAX_FILES:
            raise BundleError("oversize", f"archive has more than {MAX_FILES} files")
        rel = self._path(member.name)
        if not member.isreg() or member.issparse():
            raise BundleError("bad_archive", f"{rel!r}: only regular files allowed")
        self.total += member.size
        if member.size < 0 or self.total > self.max_bytes:
            raise BundleError(
                "oversize", f"archive unpacks to more than {human_bytes(self.max_bytes)}"
            )
        key = _fold(rel)
        if key in self.files:
            other = self.files[key]
            same = "twice" if other == rel else f"beside {other!r} (same name ignoring case)"
            raise BundleError("bad_archive", f"{rel!r}: listed {same}")
        if key in self.dirs:
            raise BundleError(
                "bad_archive", f"{rel!r}: a file where {self.dirs[key]!r}/… needs a directory"
            )
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            folded = _fold(parent)
            if folded in self.files:
                raise BundleError(
                    "bad_archive",
                    f"{rel!r}: needs {parent!r} to be a directory, but it is a file "
                    f"({self.files[folded]!r})",
                )
            known = self.dirs.setdefault(folded, parent)
            if known != parent:
                raise BundleError(
                    "bad_archive", f"{rel!r}: directory {parent!r} beside {known!r} (same name)"
                )
        self.files[key] = rel
        return rel

    @staticmethod
    def _path(name: str) -> str:
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")[:300]
        try:
            raw = name.encode("utf-8")
        except UnicodeEncodeError:
            raise BundleError("bad_archive", f"{shown!r}: name is not valid UTF-8") from None
        if any(c < 0x20 or c == 0x7F for c in raw):
            raise BundleError("bad_archive", f"{shown!r}: control character in name")
        rel = name.removeprefix("./")
        parts = rel.split("/")
        if PurePosixPath(name).is_absolute() or any(p in ("", ".", "..") for p in parts):
            raise BundleError("bad_archive", f"{shown!r}: unsafe path")
        if len(raw) > PATH_MAX_BYTES:
            raise BundleError(
                "bad_archive", f"{shown[:60]!r}…: path longer than {PATH_MAX_BYTES} bytes"
            )
        for part in parts:
            if len(part.encode("utf-8")) > NAME_MAX_BYTES:
                raise BundleError(
                    "bad_archive",
                    f"{shown[:60]!r}…: a name longer than {NAME_MAX_BYTES} bytes",
                )
        return rel


def inspect_archive(archive: Path, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> BundleManifest:
    """Check a bundle archive without unpacking it and return its manifest.

    The gate of the module docstring, plus a valid ``kinitro.toml`` whose entrypoint module
    is in the archive. Only tar headers and the manifest are read: nothing is written,
    imported or executed. Raises :class:`BundleError` (``bad_archive``, ``oversize``,
    ``missing_manifest``, ``bad_manifest``, ``missing_entrypoint``).
    """
    gate = ArchiveGate(max_bytes)
    try:
        with tarfile.open(archive, mode="r:") as tar:
            manifest_member: tarfile.TarInfo | None = None
            for member in tar:
                if gate.admit(member) == MANIFEST_NAME:
                    manifest_member = member
            if manifest_member is None:
                raise BundleError("missing_manifest", f"no {MANIFEST_NAME} in the archive")
            if manifest_member.size > MAX_MANIFEST_BYTES:
                raise BundleError("bad_manifest", f"{MANIFEST_NAME} is over 64 KiB")
            fh = tar.extractfile(manifest_member)
            raw = fh.read() if fh is not None else b""
    except tarfile.TarError as exc:
        raise BundleError("bad_archive", f"not a valid bundle archive: {exc}") from None
    except (OSError, EOFError) as exc:
        raise BundleError("bad_archive", f"unreadable bundle archive: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("bad_manifest", f"{MANIFEST_NAME} is not UTF-8") from None
    manifest = parse_manifest(text)
    entrypoint_file(manifest, set(gate.files.values()))
    return manifest


def _unpacked(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """The extraction filter: tarfile's ``data`` filter, then nothing else from the header
    (mode 0644/0755, time 0; the data filter already drops owners)."""
    safe = tarfile.data_filter(member, dest)
    return safe.replace(mode=0o755 if member.mode & 0o100 else 0o644, mtime=0, deep=False)


def extract_bundle(
    archive: Path, dest: Path, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
) -> BundleManifest:
    """Unpack a bundle archive into an empty ``dest`` and return its manifest.

    Every member passes the :class:`ArchiveGate` before anything is written; nothing is
    executed or imported. Raises :class:`BundleError` for anything the archive is to
    blame for, and ``OSError`` only for the host's own trouble (:data:`HOST_ERRNOS`).
    """
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BundleError("not_empty", f"extraction directory {dest} is not empty")
    gate = ArchiveGate(max_bytes)
    try:
        with tarfile.open(archive, mode="r:") as tar:
            members = tar.getmembers()
            for member in members:
                gate.admit(member)
            tar.extractall(dest, members=members, filter=_unpacked)  # noqa: S202 - gated, data filter
    except tarfile.TarError as exc:
        raise BundleError(
            "bad_archive", f"{archive} is not a valid bundle archive: {exc}"
        ) from None
    except OSError as exc:
        if exc.errno in HOST_ERRNOS:
            raise
        raise BundleError("bad_archive", f"cannot unpack the archive: {exc}") from None
    except (ValueError, OverflowError, UnicodeError) as exc:
        raise BundleError("bad_archive", f"cannot unpack the archive: {exc}") from None
    return load_manifest(dest)
