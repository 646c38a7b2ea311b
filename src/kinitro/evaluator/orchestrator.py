"""``kinitro evaluator run``: consume evaluation jobs from the validator's pgqueuer queue.

Per job (``handle_job``)::

    queued ─▶ starting ─▶ running ─▶ completed | failed | timed_out
                 │            │
                 └── bundle fetched, Ray pool up, one sandbox per worker

* **Status** goes to the validator outbox (``JobQueue.report_status``), progress at most
  every ``PROGRESS_EVERY_S``; the terminal status is written *before* the ``eval_result``
  (the repository drops statuses after a result, and keeps only the first result).
* **Telemetry** (``episode`` + ``episode_steps``) is batched by a background thread
  (:class:`~kinitro.evaluator.episode_logger.TelemetryBatcher`) into
  ``append_outbox_many``. Message ids are derived from (job, episode, batch), so a re-run
  after a crash does not duplicate them in the outbox.
* **Deadline**: ``deadline_s`` of the job (or the ``job_deadline_s`` override) from the
  moment this run starts; on expiry the pool is stopped and the job ends ``timed_out``.
* **Recovery**: a crashed evaluator stops heart-beating its picked job; pgqueuer re-picks
  it after ``heartbeat_timeout`` (see :class:`kinitro.jobqueue.QueueTimers`) and the new run
  reports again. The repository keeps the first ``eval_result`` only, so the job reports
  once. A job whose result is already stored is skipped.
* **Infrastructure failures** of a whole job (Ray, registry unreachable, no episode could
  be scored) are retried through pgqueuer (``RetryRequested``) up to
  ``QueueTimers.max_attempts``, then reported ``failed`` with the cause — never scored.
* **Shutdown** (SIGINT/SIGTERM): running pools are stopped (sandboxes and actors closed)
  and their jobs re-queued for the next evaluator.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kinitro import __version__
from kinitro.core.runtime import local_runtime
from kinitro.evaluator.bundles import fetch_bundle
from kinitro.evaluator.envs import get_benchmark
from kinitro.evaluator.episode_logger import TelemetryBatcher
from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.results import EpisodeResult
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import Cancelled, ensure_ray
from kinitro.evaluator.runner import EvalOutcome, EvalRequest, evaluate
from kinitro.evaluator.settings import Settings

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0
SINK_TIMEOUT_S = 120.0


def message_id(*parts: object) -> str:
    """Deterministic 32-hex message id (stable across re-runs of the same job)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


class _Deadline(Exception):
    pass


class Orchestrator:
    def __init__(self, settings: Settings, jq: Any) -> None:
        from kinitro.jobqueue import QueueTimers

        self.settings = settings
        self.jq = jq
        self.timers = QueueTimers.fast() if settings.fast_timers else QueueTimers()
        self.stopping = threading.Event()
        self.in_flight: set[str] = set()

    # ------------------------------------------------------------------ job

    async def handle_job(self, job_id: str, attempts: int = 0) -> None:
        from kinitro.protocol.common import FailureCause, JobState

        jq = self.jq
        record = await jq.get_job_record(job_id)
        if record.has_result:
            log.info("job %s already has a result; skipping", job_id)
            return
        started_at = datetime.now(UTC)
        try:
            job = record.eval_job()
            request = EvalRequest.from_job(job)
            get_benchmark(request.benchmark_id, request.tasks or None)
        except Exception as exc:  # noqa: BLE001 - a job we cannot run as specified
            log.error("job %s: cannot be run: %s", job_id, exc)
            await self._finish(job_id, JobState.FAILED, started_at, error=f"invalid job: {exc}")
            return
        total = job.benchmark.total_episodes
        deadline_s = self.settings.job_deadline_s or job.deadline_s
        deadline = time.monotonic() + deadline_s
        self.in_flight.add(job_id)
        log.info("job %s: starting (%d episodes, attempt %d)", job_id, total, attempts + 1)
        await jq.report_status(job_id, JobState.STARTING, episodes_done=0, episodes_total=total)
        try:
            try:
                bundle = await asyncio.to_thread(
                    fetch_bundle,
                    job.artifact,
                    artifacts_dir=self.settings.artifacts_dir,
                    cache_dir=self.settings.bundle_cache_dir,
                    hf_token=(
                        self.settings.hf_token.get_secret_value()
                        if self.settings.hf_token
                        else None
                    ),
                    hf_endpoint=self.settings.hf_endpoint,
                )
            except Exception as exc:  # noqa: BLE001 - classified in _bundle_failed
                await self._bundle_failed(job_id, exc, started_at, attempts)
                return
            try:
                outcome = await self._evaluate(job_id, request, bundle, total, deadline)
            except _Deadline:
                await self._finish(
                    job_id,
                    JobState.TIMED_OUT,
                    started_at,
                    error=f"deadline of {deadline_s:.0f}s exceeded",
                )
                return
            except Cancelled:
                from pgqueuer import RetryRequested

                log.warning("job %s interrupted by shutdown; re-queued", job_id)
                raise RetryRequested(reason="evaluator shutting down") from None
            except EvaluatorError as exc:  # a job we cannot run as specified
                await self._finish(job_id, JobState.FAILED, started_at, error=str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - Ray/infra trouble: retry the job
                await self._infra_failure(job_id, exc, started_at, attempts)
                return
            if outcome.upload_failures:
                log.warning(
                    "job %s: %d media uploads failed (episodes keep their keys): %s",
                    job_id,
                    len(outcome.upload_failures),
                    outcome.upload_failures[0],
                )
            overall = outcome.metrics.overall
            if overall.episodes and not overall.scored_episodes:
                causes = sorted(overall.failures, key=lambda c: -overall.failures[c])
                err = RuntimeError(f"no episode could be scored: {dict(overall.failures)}")
                await self._infra_failure(
                    job_id, err, started_at, attempts, cause=FailureCause(causes[0])
                )
                return
            await self._finish(
                job_id,
                JobState.COMPLETED,
                started_at,
                metrics=outcome.metrics.to_protocol(),
                episodes_done=len(outcome.results),
                episodes_total=total,
            )
            log.info(
                "job %s: completed, success rate %.3f over %d scored episodes",
                job_id,
                overall.success_rate,
                overall.scored_episodes,
            )
        finally:
            self.in_flight.discard(job_id)

    async def _evaluate(
        self, job_id: str, request: EvalRequest, bundle: Path, total: int, deadline: float
    ) -> EvalOutcome:
        from kinitro.protocol.common import JobState

        jq = self.jq
        loop = asyncio.get_running_loop()
        s = self.settings

        def sink(batch: Sequence[Any]) -> None:
            ids = [_with_stable_id(m) for m in batch]
            fut = asyncio.run_coroutine_threadsafe(jq.append_outbox_many(ids), loop)
            fut.result(timeout=SINK_TIMEOUT_S)

        batcher = TelemetryBatcher(job_id, sink, batch_messages=s.telemetry_batch)
        done = 0
        last = 0.0
        status_futs: list[Future[Any]] = []

        def report(n: int) -> None:
            status_futs.append(
                asyncio.run_coroutine_threadsafe(
                    jq.report_status(
                        job_id, JobState.RUNNING, episodes_done=n, episodes_total=total
                    ),
                    loop,
                )
            )

        def on_result(result: EpisodeResult) -> None:
            nonlocal done, last
            done += 1
            batcher.submit(result)
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S or done == total:
                last = now
                report(done)

        timed_out = threading.Event()

        def should_stop() -> bool:
            if time.monotonic() > deadline:
                timed_out.set()
                return True
            return self.stopping.is_set()

        launcher = SandboxLauncher(
            str(bundle),
            backend=s.sandbox,
            limits={
                "memory_bytes": s.sandbox_memory_mb * 1024 * 1024,
                "cpu_seconds": s.sandbox_cpu_seconds,
            },
            kubernetes=s.kubernetes_options(),
            act_timeout_s=s.action_timeout_s,
            reset_timeout_s=s.reset_timeout_s,
        )
        report(0)
        try:
            return await asyncio.to_thread(
                evaluate,
                request,
                launcher,
                workers=s.workers_per_job,
                worker_cpus=s.worker_cpus,
                ray_address=s.ray_address,
                ray_num_cpus=s.ray_num_cpus,
                media_url=s.media_url,
                media_options=s.media_options(),
                frame_every=s.frame_every,
                max_infra_retries=s.max_infra_retries,
                pin_workers=s.pin_workers,
                env_slots=s.env_slots,
                on_result=on_result,
                should_stop=should_stop,
            )
        except Cancelled:
            if timed_out.is_set():
                raise _Deadline() from None
            raise
        finally:
            await asyncio.to_thread(batcher.close)
            for fut in status_futs:
                await asyncio.wrap_future(fut)

    async def _finish(
        self,
        job_id: str,
        state: Any,
        started_at: datetime,
        *,
        metrics: Any = None,
        error: str | None = None,
        cause: Any = None,
        episodes_done: int | None = None,
        episodes_total: int | None = None,
    ) -> None:
        from kinitro.protocol.validator_ws import EvalResult

        await self.jq.report_status(
            job_id,
            state,
            episodes_done=episodes_done,
            episodes_total=episodes_total,
            detail=(error or "")[:4096] or None,
        )
        appended = await self.jq.append_outbox(
            EvalResult(
                job_id=job_id,
                state=state,
                metrics=metrics,
                error=(error or "")[:4096] or None,
                failure_cause=cause,
                started_at=started_at,
                finished_at=datetime.now(UTC),
                evaluator_version=__version__,
                runtime=local_runtime(),  # Ray workers run this same environment
            )
        )
        if not appended:
            log.info("job %s: a result was already recorded; this run's is dropped", job_id)

    async def _bundle_failed(
        self, job_id: str, exc: Exception, started_at: datetime, attempts: int
    ) -> None:
        from kinitro.protocol.common import JobState
        from kinitro.storage.errors import RegistryError, StorageError

        if isinstance(exc, RegistryError) or not isinstance(exc, StorageError):
            await self._infra_failure(job_id, exc, started_at, attempts)
            return
        # Missing, tampered, oversized or invalid bundle: the submission's fault, final.
        log.warning("job %s: bundle rejected: %s", job_id, exc)
        await self._finish(job_id, JobState.FAILED, started_at, error=f"bundle: {exc}")

    async def _infra_failure(
        self,
        job_id: str,
        exc: BaseException,
        started_at: datetime,
        attempts: int,
        *,
        cause: Any = None,
    ) -> None:
        from pgqueuer import RetryRequested

        from kinitro.protocol.common import FailureCause, JobState

        if attempts + 1 < self.timers.max_attempts and not self.stopping.is_set():
            log.warning("job %s: infrastructure failure, retrying: %s", job_id, exc)
            raise RetryRequested(delay=self.timers.retry_delay, reason=str(exc)[:500])
        log.error("job %s: infrastructure failure, giving up: %s", job_id, exc)
        await self._finish(
            job_id,
            JobState.FAILED,
            started_at,
            error=f"infrastructure: {exc}"[:4096],
            cause=cause or FailureCause.INTERNAL,
        )

    # ------------------------------------------------------------------ loop

    async def serve(self) -> None:
        import asyncpg
        from pgqueuer.adapters.persistence.queries import Queries
        from pgqueuer.models import Job
        from pgqueuer.qm import QueueManager

        from kinitro.core.db import dsn
        from kinitro.jobqueue import EVAL_JOB_ENTRYPOINT, job_id_from_payload

        s = self.settings
        assert s.database_url is not None
        await asyncio.to_thread(ensure_ray, s.ray_address, num_cpus=s.ray_num_cpus)
        conn = await asyncpg.connect(dsn(s.database_url))
        try:
            qm = QueueManager(Queries.from_asyncpg_connection(conn))

            @qm.entrypoint(EVAL_JOB_ENTRYPOINT, concurrency_limit=max(1, s.concurrency))
            async def _run(job: Job) -> None:
                await self.handle_job(job_id_from_payload(job.payload), job.attempts)

            loop = asyncio.get_running_loop()

            def stop() -> None:
                log.info("stopping: interrupting %d job(s)", len(self.in_flight))
                self.stopping.set()
                qm.shutdown.set()

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop)
            log.info(
                "evaluator consuming %r (concurrency %d, %d worker(s)/job)",
                EVAL_JOB_ENTRYPOINT,
                s.concurrency,
                s.workers_per_job,
            )
            await qm.run(
                batch_size=1,
                heartbeat_timeout=self.timers.heartbeat_timeout,
                dequeue_timeout=self.timers.dequeue_timeout,
            )
        finally:
            await conn.close()


def _with_stable_id(message: Any) -> Any:
    kind = message.type
    if kind == "episode":
        return message.model_copy(
            update={"id": message_id(message.job_id, "episode", message.episode_index)}
        )
    if kind == "episode_steps":
        return message.model_copy(
            update={
                "id": message_id(
                    message.job_id, "steps", message.episode_index, message.batch_index
                )
            }
        )
    return message


def run_orchestrator(settings: Settings) -> None:
    """Blocking entry point of ``kinitro evaluator run``."""
    from sqlalchemy.exc import DBAPIError, InterfaceError

    from kinitro.core.db import safe_url
    from kinitro.jobqueue import JobQueue

    async def main() -> None:
        assert settings.database_url is not None
        jq = JobQueue.connect(settings.database_url)
        try:
            try:
                await jq.check_schema()
            except (OSError, DBAPIError, InterfaceError) as exc:
                raise EvaluatorError(
                    f"cannot reach the validator database {safe_url(settings.database_url)}: "
                    f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from exc
            await Orchestrator(settings, jq).serve()
        finally:
            await jq.close()

    asyncio.run(main())
