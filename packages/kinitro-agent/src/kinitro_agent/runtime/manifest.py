"""The bundle manifest as far as the runtime needs it (``kinitro.toml``).

Accepts the fields at the top level or under an ``[agent]`` table. The runtime parses it
itself with the standard library: the evaluator's validation (``kinitro.storage.bundle``)
does not exist in the agent environment.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from kinitro_agent.rpc.wire import MAX_SLOTS

MANIFEST_NAME = "kinitro.toml"
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_CLASS = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ManifestError(Exception):
    """The manifest is missing or invalid; the message names the field."""


@dataclass(frozen=True, slots=True)
class RuntimeManifest:
    name: str
    module: str
    class_name: str
    spec_version: int
    slots: int = 1
    """Agent instances the runtime may hold at once, one per concurrent episode."""


def load_manifest(bundle_dir: Path) -> RuntimeManifest:
    path = bundle_dir / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{MANIFEST_NAME} not found in the bundle") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{MANIFEST_NAME} cannot be read: {exc}") from None
    table = data.get("agent", data)
    if not isinstance(table, dict):
        raise ManifestError("[agent] must be a table")
    name = table.get("name", data.get("name", ""))
    entry = table.get("entrypoint", data.get("entrypoint"))
    version = table.get("spec_version", data.get("spec_version", 1))
    if not isinstance(name, str):
        raise ManifestError("name must be a string")
    if not isinstance(entry, str) or entry.count(":") != 1:
        raise ManifestError('entrypoint must be "module:Class"')
    module, cls = entry.split(":")
    if not _MODULE.match(module) or not _CLASS.match(cls):
        raise ManifestError(f"entrypoint {entry!r} is not a valid 'module:Class'")
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError("spec_version must be an integer")
    slots = table.get("slots", data.get("slots", 1))
    if not isinstance(slots, int) or isinstance(slots, bool) or not 1 <= slots <= MAX_SLOTS:
        raise ManifestError(f"slots must be an integer from 1 to {MAX_SLOTS}")
    return RuntimeManifest(name or cls, module, cls, version, slots)
