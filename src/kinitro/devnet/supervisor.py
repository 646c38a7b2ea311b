"""Start, watch, restart and stop the devnet's child processes.

Each child runs ``python -m kinitro …`` in its own process group with stdout/stderr
appended to ``<data_dir>/logs/<name>.log``. A child that dies unexpectedly is restarted
with a growing delay (up to ``max_restarts`` times); ``stop_all`` sends SIGTERM to every
group, waits, then SIGKILLs what is left, so Ctrl-C never leaves orphans behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_restart_at: float | None = None
    history: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Owns every devnet child process (see module docstring)."""

    def __init__(self, log_dir: Path, *, max_restarts: int = 5) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.max_restarts = max_restarts
        self.children: dict[str, Child] = {}
        self._stopping = False

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """Start ``kinitro <args>`` as child ``name``."""
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        child = Child(
            name=name,
            argv=[sys.executable, "-m", "kinitro", *args],
            env=child_env,
            log_path=self.log_dir / f"{name}.log",
        )
        self.children[name] = child
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        with child.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"\n--- {stamp} starting {' '.join(child.argv[2:])}\n".encode())
            child.process = subprocess.Popen(
                child.argv,
                env=child.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        child.started_at = time.monotonic()
        child.next_restart_at = None
        self._write_pids()

    def _write_pids(self) -> None:
        """Record child pids in ``<log_dir>/../pids.json`` (for `devnet status` and tests)."""
        pids = {name: c.pid for name, c in self.children.items() if c.alive()}
        path = self.log_dir.parent / "pids.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids))
        tmp.replace(path)

    def poll(self) -> list[str]:
        """Restart children that died; return human-readable notes about what happened."""
        notes: list[str] = []
        if self._stopping:
            return notes
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None or child.alive():
                continue
            code = child.process.returncode
            if child.next_restart_at is None:
                child.history.append(code)
                if child.restarts >= self.max_restarts:
                    continue
                # Back off 1, 2, 4 … s; a child that ran a while gets a fresh budget.
                if now - child.started_at > 60:
                    child.restarts = 0
                child.next_restart_at = now + min(2**child.restarts, 30)
                notes.append(
                    f"{child.name} exited with code {code}; restarting (see {child.log_path})"
                )
            elif now >= child.next_restart_at:
                child.restarts += 1
                self._spawn(child)
        return notes

    def failed_for_good(self) -> list[Child]:
        return [
            c
            for c in self.children.values()
            if c.process is not None
            and not c.alive()
            and c.restarts >= self.max_restarts
            and c.next_restart_at is None
        ]

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a child's whole process group (used by crash tests)."""
        child = self.children[name]
        if child.alive() and child.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, sig)

    def stop(self, name: str, timeout: float = 15.0) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            _terminate([child], timeout)

    def stop_all(self, timeout: float = 20.0) -> None:
        self._stopping = True
        # Stop in reverse start order: evaluators before validators before the backend.
        _terminate(list(reversed(self.children.values())), timeout)
        (self.log_dir.parent / "pids.json").unlink(missing_ok=True)


def _terminate(children: list[Child], timeout: float) -> None:
    for child in children:
        if child.alive() and child.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        if child.process is None:
            continue
        remaining = max(0.1, deadline - time.monotonic())
        try:
            child.process.wait(remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait(5)
        # Reap stragglers left in the group (e.g. Ray workers, sandboxes).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
