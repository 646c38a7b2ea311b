"""Start a LocalChain service as a child process and wait until it answers.

Used by tests (of every role) and handy for scripts::

    with LocalChainProcess(tmp_path / "chain", block_interval=0.2) as proc:
        chain = LocalChain(proc.url, netuid=1)

The process is always terminated (then killed) on exit.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from kinitro.chain.errors import ChainUnavailableError
from kinitro.core.processes import ProcessExited, stop_process, wait_http_ok


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalChainProcess:
    """``python -m kinitro chain run …`` on a free loopback port."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        block_interval: float = 1.0,
        tempo: int = 360,
        commit_space: int = 3100,
        weights_rate_limit: int = 100,
        min_validator_stake: float = 1000.0,
        commit_reveal_epochs: int = 0,
        weights_version_key: int = 0,
        log_path: Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or data_dir.parent / f"{data_dir.name}.log"
        self.startup_timeout = startup_timeout
        self.argv = [
            sys.executable,
            "-m",
            "kinitro",
            "chain",
            "run",
            "--data-dir",
            str(data_dir),
            "--port",
            str(self.port),
            "--block-interval",
            str(block_interval),
            "--tempo",
            str(tempo),
            "--commit-space",
            str(commit_space),
            "--weights-rate-limit",
            str(weights_rate_limit),
            "--min-validator-stake",
            str(min_validator_stake),
            "--commit-reveal-epochs",
            str(commit_reveal_epochs),
            "--weights-version-key",
            str(weights_version_key),
            "--log-level",
            "warning",
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalChainProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(self.argv, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            if wait_http_ok(f"{self.url}/health", self.startup_timeout, alive=self.proc):
                return self
        except ProcessExited as exc:
            raise ChainUnavailableError(f"LocalChain {exc}; see {self.log_path}") from None
        self.stop()
        raise ChainUnavailableError(f"LocalChain did not start in time; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> LocalChainProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
