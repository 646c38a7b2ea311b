"""The agent environment: the one Python environment a sandbox lets the agent see.

Built by ``scripts/agent-env`` (``scripts/bootstrap`` puts the default one in
``<evaluator venv>/agent-envs/base``; container images in ``/opt/kinitro/agent-envs``), it
holds the ``kinitro-agent`` distribution (RPC codec + runtime) and numpy/msgpack, plus a
*profile*'s extras (``torch``: a CPU build of PyTorch) — never the simulator, Gymnasium,
Meta-World or the rest of Kinitro. A bundle picks its profile in ``kinitro.toml``
(``profile = "torch"``, default ``base``).

The sandbox binds the environment and the interpreter installation it runs on, and hides
every other package directory an interpreter could be pointed at (the base interpreter's
own ``site-packages``, Debian's ``dist-packages``, ``/usr/local``'s): see
:meth:`AgentEnvironment.hidden_package_dirs`.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import kinitro_agent
from kinitro.evaluator.sandbox.base import SandboxUnavailable
from kinitro_agent.profiles import DEFAULT_PROFILE, PROFILES

_PACKAGE_DIR_PATTERNS = (
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3*/dist-packages",
    "/usr/lib/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages",
)


AGENT_ENV_MOUNT = "/opt/kinitro/agent-env"
"""Where the agent environment appears inside a sandbox (and lies in the agent image)."""


def default_envs_dir() -> Path:
    """``agent-envs`` inside the evaluator's own environment (where bootstrap builds them)."""
    return Path(sys.prefix) / "agent-envs"


@dataclass(frozen=True, slots=True)
class AgentEnvironment:
    """One built agent environment (a virtualenv) and the interpreter it runs on."""

    profile: str
    root: Path
    base_prefix: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @classmethod
    def find(cls, profile: str = DEFAULT_PROFILE, envs_dir: Path | None = None) -> AgentEnvironment:
        """The environment of ``profile`` under ``envs_dir``; :class:`SandboxUnavailable`
        (an infrastructure fault) when it is not built here."""
        if profile not in PROFILES:
            raise SandboxUnavailable(
                f"unknown agent environment profile {profile!r}; known: {sorted(PROFILES)}"
            )
        root = (envs_dir or default_envs_dir()) / profile
        cfg = root / "pyvenv.cfg"
        if not cfg.is_file() or not (root / "bin" / "python").exists():
            hint = "scripts/bootstrap"
            if profile != DEFAULT_PROFILE:
                hint += f" with KINITRO_AGENT_PROFILES='base {profile}'"
            raise SandboxUnavailable(
                f"agent environment {profile!r} not found at {root}: build it with {hint} "
                f"(or scripts/agent-env --profile {profile} {root})"
            )
        home = _pyvenv_home(cfg)
        return cls(profile, root.resolve(), Path(home).resolve().parent)

    def hidden_package_dirs(self) -> list[Path]:
        """Package directories outside the environment that the sandbox covers with an
        empty read-only tmpfs: the agent could otherwise put them on ``sys.path`` and import
        whatever the host installed there."""
        found = set(self.base_prefix.glob("lib/python3*/site-packages"))
        for pattern in _PACKAGE_DIR_PATTERNS:
            found.update(Path("/").glob(pattern.removeprefix("/")))
        resolved = {p.resolve() for p in found}
        return sorted(p for p in resolved if p.is_dir() and not p.is_relative_to(self.root))

    def check_runtime(self) -> None:
        """Raise :class:`SandboxUnavailable` unless the environment's runtime is the
        evaluator's version (one codec on both sides of the RPC)."""
        found = self.root.glob("lib/python3*/site-packages/kinitro_agent-*.dist-info")
        versions = [d.name.removeprefix("kinitro_agent-").removesuffix(".dist-info") for d in found]
        if versions != [kinitro_agent.__version__]:
            raise SandboxUnavailable(
                f"agent environment {self.root} holds kinitro-agent {versions or 'nothing'}, "
                f"the evaluator runs {kinitro_agent.__version__}: rebuild it (scripts/bootstrap)"
            )


def _pyvenv_home(cfg: Path) -> str:
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return value.strip()
    raise SandboxUnavailable(f"{cfg} names no base interpreter ('home = …')")


def profile_of(bundle_dir: Path) -> str:
    """The profile a bundle's ``kinitro.toml`` asks for (``base`` when it names none or the
    manifest does not parse: the runtime then reports the broken manifest as the agent's
    fault)."""
    try:
        data = tomllib.loads((bundle_dir / "kinitro.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return DEFAULT_PROFILE
    table = data.get("agent", data)
    value = table.get("profile", data.get("profile")) if isinstance(table, dict) else None
    return value if isinstance(value, str) else DEFAULT_PROFILE
