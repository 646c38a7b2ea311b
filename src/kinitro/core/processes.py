"""Child service processes: wait until one answers on HTTP, stop it politely.

Used by everything that starts a Kinitro service as a subprocess and must know when it is
ready (the LocalChain launcher, the devnet supervisor, end-to-end tests).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable

import httpx


class ProcessExited(Exception):
    """The process ended before it became ready."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"exited with code {returncode}")
        self.returncode = returncode


def wait_http_ok(
    url: str,
    timeout: float,
    *,
    alive: Callable[[], bool] | subprocess.Popen[bytes] | None = None,
    interval: float = 0.1,
) -> bool:
    """Poll ``GET url`` until it answers 200 (True) or ``timeout`` seconds pass (False).

    ``alive`` — the process itself or a callable — is checked before every attempt;
    :class:`ProcessExited` is raised as soon as it has ended, so a crashing service is
    reported at once instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(alive, subprocess.Popen):
            if alive.poll() is not None:
                raise ProcessExited(alive.returncode)
        elif alive is not None and not alive():
            raise ProcessExited(None)
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=min(2.0, max(0.1, timeout))).status_code == 200:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode
