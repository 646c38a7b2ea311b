"""A bounded pool of audit worker processes beside the backend.

Each worker is ``python -m kinitro.evaluator.audit_worker``: a separate process that
holds the simulator and answers one JSON line per request (the request and answer shapes
are documented there). The backend never imports the simulator; the roles meet in that
line format. At most ``size`` workers run, started on first use (a backend that never
audits never starts one) and kept for the next request; a worker that times out, dies
or answers out of turn is killed and replaced on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from typing import Any

from kinitro.backend.errors import BackendError

log = logging.getLogger(__name__)

WORKER_MODULE = "kinitro.evaluator.audit_worker"
ANSWER_LIMIT = 1 << 20


class LogMissing(BackendError):
    """An action log is not where its validator said (the validator's fault: an audit
    fails on it)."""


class AuditWorkerError(BackendError):
    """An audit worker did not answer (timed out, died, garbled): never the validator's
    fault, the audit is tried again."""


class AuditPool:
    def __init__(self, size: int, timeout_s: float) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self._idle: asyncio.Queue[asyncio.subprocess.Process] = asyncio.Queue()
        self._slots = asyncio.Semaphore(size)
        self._all: set[asyncio.subprocess.Process] = set()

    async def _start(self) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            WORKER_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=ANSWER_LIMIT,
        )
        self._all.add(proc)
        log.info("audit worker started (pid %s)", proc.pid)
        return proc

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        self._all.discard(proc)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(Exception):
            await proc.wait()

    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request answered by one worker (waits for a free one)."""
        async with self._slots:
            proc = self._idle.get_nowait() if not self._idle.empty() else await self._start()
            try:
                answer = await asyncio.wait_for(self._ask(proc, request), self.timeout_s)
            except (TimeoutError, OSError, ValueError, AuditWorkerError) as exc:
                await self._kill(proc)
                what = "timed out" if isinstance(exc, TimeoutError) else str(exc)
                raise AuditWorkerError(f"audit worker failed: {what}") from None
            except BaseException:
                await self._kill(proc)
                raise
            self._idle.put_nowait(proc)
            return answer

    @staticmethod
    async def _ask(proc: asyncio.subprocess.Process, request: dict[str, Any]) -> dict[str, Any]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise AuditWorkerError(f"worker exited ({await proc.wait()})")
        answer = json.loads(line)
        if not isinstance(answer, dict) or answer.get("id") != request["id"]:
            raise AuditWorkerError("worker answered out of turn")
        return answer

    async def close(self) -> None:
        for proc in list(self._all):
            await self._kill(proc)
