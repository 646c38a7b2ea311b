"""``kinitro evaluator run``: consume evaluation jobs from the validator database.

One event loop carries a job from the queue to its result, with no thread in between::

    JobSource.consume ─▶ handle_job ─▶ fetch bundle (a thread: registry/Hub I/O)
        ─▶ evaluate(): Ray actors play the episodes; each result is awaited on the loop
        ─▶ TelemetryWriter (a task): episode + step messages ─▶ ResultSink (the outbox)
        ─▶ terminal job_status, then eval_result

Per job (:meth:`Orchestrator.handle_job`)::

    queued ─▶ starting ─▶ running ─▶ completed | failed | timed_out
                 │            │
                 └── bundle fetched, Ray pool up, one sandbox per worker

* **Status** goes to the outbox through the :class:`~kinitro.jobqueue.ResultSink`;
  progress counts episodes whose telemetry is stored, at most every
  ``PROGRESS_EVERY_S``; the terminal status is written *before* the ``eval_result`` (the
  database drops statuses after a result, and keeps only the first result).
* **Telemetry** (``episode`` + ``episode_steps``, ids derived from job/episode/batch) is
  written by :class:`~kinitro.evaluator.telemetry.TelemetryWriter`; a job is completed
  only once all of it is stored. If the outbox keeps refusing it, the job is an
  infrastructure failure (re-queued, then ``failed`` with the cause) — never completed.
* **Deadline**: ``deadline_s`` of the job (or the ``job_deadline_s`` override) from the
  moment this run starts; on expiry the rollouts are cancelled and the job ends
  ``timed_out`` with the infrastructure cause ``host_timeout`` (the agent is held to its
  compute budget, :mod:`kinitro.protocol.compute`, so the time went to this host;
  telemetry of the finished episodes is still written).
* **Recovery**: a crashed evaluator stops heart-beating its picked job; the queue hands it
  out again after ``heartbeat_timeout`` (see :class:`kinitro.jobqueue.QueueTimers`) and the
  new run reports again; the first ``eval_result`` wins. A job whose result is stored is
  skipped.
* **Infrastructure failures** of a whole job (Ray, registry unreachable, fewer than
  ``min_scored_share`` of the episodes scored — :mod:`kinitro.protocol.coverage` —,
  telemetry not stored) are retried through the queue (``RetryJob``) up to
  ``QueueTimers.max_attempts``, then reported ``failed`` with the cause — never scored.
* **Shutdown** (SIGINT/SIGTERM) and :meth:`Orchestrator.cancel`: the job's rollouts task is
  cancelled (actors stop within a few steps and are closed), and the job re-queued.
* **Cancelled by the backend** (``cancel_job``: the submission was superseded): the
  validator node marks the job ``cancelled``; a queued job is skipped, a running one is
  seen within ``CANCEL_POLL_S`` and stopped the same way, then dropped — no status, no
  result — so its workers are free for the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError, InterfaceError

from kinitro import __version__
from kinitro.core.db import safe_url
from kinitro.core.prometheus import MetricsServer
from kinitro.core.runtime import local_runtime
from kinitro.evaluator.bundles import fetch_bundle
from kinitro.evaluator.calibration import calibrate
from kinitro.evaluator.envs import get_benchmark
from kinitro.evaluator.errors import EvaluatorError, TelemetryError
from kinitro.evaluator.progress import EvalProgress
from kinitro.evaluator.prometheus import EvaluatorMetrics
from kinitro.evaluator.results import EpisodeResult
from kinitro.evaluator.rollout import warm
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import RolloutPool, ensure_ray
from kinitro.evaluator.rollout.port import RolloutsFactory
from kinitro.evaluator.runner import EvalOutcome, EvalRequest, evaluate
from kinitro.evaluator.sandbox.host import prepare_host
from kinitro.evaluator.settings import Settings
from kinitro.evaluator.telemetry import TelemetryWriter
from kinitro.jobqueue import JobQueue, JobSource, QueueTimers, ResultSink, RetryJob
from kinitro.protocol.common import ArtifactRef, EvalMetrics, FailureCause, JobState
from kinitro.protocol.coverage import shortfall
from kinitro.protocol.validator_ws import EvalResult
from kinitro.storage.errors import RegistryError, StorageError

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0
CANCEL_POLL_S = 1.0
"""How often a running job's record is read for the backend's cancellation."""


@dataclass(slots=True)
class _Ending:
    """How a job ends (``_finish`` writes it)."""

    state: JobState
    error: str | None = None
    cause: FailureCause | None = None
    metrics: EvalMetrics | None = None
    episodes_done: int | None = None
    episodes_total: int | None = None


class Orchestrator:
    """Runs queued jobs: ``jobs`` hands them out, ``results`` stores what they produce,
    ``rollouts`` plays their episodes (the Ray pool unless a test swaps it)."""

    def __init__(
        self,
        settings: Settings,
        jobs: JobSource,
        results: ResultSink,
        *,
        rollouts: RolloutsFactory = RolloutPool,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.results = results
        self.rollouts = rollouts
        self.timers = QueueTimers.fast() if settings.fast_timers else QueueTimers()
        self.stopping = asyncio.Event()
        self._running: dict[str, asyncio.Task[EvalOutcome]] = {}
        self._withdrawn: set[str] = set()  # jobs the backend cancelled while they ran
        self.metrics = EvaluatorMetrics(
            concurrency=max(1, settings.concurrency), workers_per_job=settings.workers_per_job
        )

    @property
    def in_flight(self) -> set[str]:
        """Jobs whose episodes are being played."""
        return set(self._running)

    def cancel(self, job_id: str) -> bool:
        """Stop ``job_id``'s rollouts now; its handler re-queues it. ``False`` if not running."""
        task = self._running.get(job_id)
        if task is None:
            return False
        task.cancel()
        return True

    def stop(self) -> None:
        """Shutdown: take no new job, cancel the running ones (they are re-queued)."""
        log.info("stopping: interrupting %d job(s)", len(self._running))
        self.stopping.set()
        for job_id in list(self._running):
            self.cancel(job_id)

    # ------------------------------------------------------------------ job

    async def handle_job(self, job_id: str, attempts: int = 0) -> None:
        if self.stopping.is_set():  # handed out while shutting down: leave it to the next
            raise RetryJob("evaluator shutting down")
        record = await self.jobs.get_job_record(job_id)
        if record.has_result:
            log.info("job %s already has a result; skipping", job_id)
            return
        if record.state is JobState.CANCELLED:
            log.info("job %s was cancelled by the backend (%s); skipping", job_id, record.detail)
            return
        started_at = datetime.now(UTC)
        try:
            job = record.eval_job()
            request = EvalRequest.from_job(job)
            get_benchmark(request.benchmark_id, request.tasks or None)
        except Exception as exc:  # noqa: BLE001 - a job we cannot run as specified
            log.error("job %s: cannot be run: %s", job_id, exc)
            await self._finish(job_id, started_at, _Ending(JobState.FAILED, f"invalid job: {exc}"))
            return
        total = job.benchmark.total_episodes
        deadline_s = self.settings.job_deadline_s or job.deadline_s
        deadline = time.monotonic() + deadline_s
        log.info("job %s: starting (%d episodes, attempt %d)", job_id, total, attempts + 1)
        await self.results.report_status(
            job_id, JobState.STARTING, episodes_done=0, episodes_total=total
        )
        try:
            bundle = await asyncio.to_thread(self._fetch_bundle, job.artifact)
        except Exception as exc:  # noqa: BLE001 - classified in _bundle_failed
            await self._finish(job_id, started_at, self._bundle_failed(job_id, exc, attempts))
            return
        ending = await self._play(job_id, request, bundle, total, deadline, attempts)
        if ending.state is JobState.CANCELLED:  # the backend withdrew it: nothing reported
            self.metrics.job_finished(ending.state, _since(started_at))
            return
        if ending.state is JobState.TIMED_OUT:  # the agent is held to its budget: the host's
            ending.cause = FailureCause.HOST_TIMEOUT
            ending.error = (
                f"deadline of {deadline_s:.0f}s exceeded with the agent within its compute "
                "budget: this host was too slow for the job"
            )
        await self._finish(job_id, started_at, ending)

    def _fetch_bundle(self, artifact: ArtifactRef) -> Path:
        s = self.settings
        return fetch_bundle(
            artifact,
            artifacts_dir=s.artifacts_dir,
            cache_dir=s.bundle_cache_dir,
            hf_token=s.hf_token.get_secret_value() if s.hf_token else None,
            hf_endpoint=s.hf_endpoint,
        )

    async def _play(
        self,
        job_id: str,
        request: EvalRequest,
        bundle: Path,
        total: int,
        deadline: float,
        attempts: int,
    ) -> _Ending:
        """Play the job's episodes under its deadline; how the job ends."""
        if self.stopping.is_set():  # stopped while the bundle was fetched
            raise RetryJob("evaluator shutting down")
        run = asyncio.create_task(self._rollouts(request, bundle, total), name=f"job-{job_id}")
        self._running[job_id] = run
        self.metrics.running(len(self._running))
        watch = asyncio.create_task(self._watch_cancel(job_id, run), name=f"cancel-{job_id}")
        try:
            done, _ = await asyncio.wait({run}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                log.warning("job %s: deadline exceeded", job_id)
                return _Ending(JobState.TIMED_OUT)
            outcome = run.result()
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if job_id in self._withdrawn and current is not None and not current.cancelling():
                self._withdrawn.discard(job_id)
                log.warning("job %s: cancelled by the backend; stopped", job_id)
                return _Ending(JobState.CANCELLED)
            if run.cancelled() and current is not None and not current.cancelling():
                log.warning("job %s interrupted (shutdown or cancel); re-queued", job_id)
                raise RetryJob("evaluator interrupted the job") from None
            raise
        except TelemetryError as exc:  # the outbox kept failing: never completed
            return self._infra_failure(job_id, exc, attempts)
        except EvaluatorError as exc:  # a job we cannot run as specified
            return _Ending(JobState.FAILED, str(exc))
        except Exception as exc:  # noqa: BLE001 - Ray/infra trouble: retry the job
            return self._infra_failure(job_id, exc, attempts)
        finally:
            watch.cancel()
            self._running.pop(job_id, None)
            self.metrics.running(len(self._running))
            if not run.done():
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await run
        return self._judge(job_id, outcome, total, attempts)

    async def _watch_cancel(self, job_id: str, run: asyncio.Task[EvalOutcome]) -> None:
        """Stop ``run`` once the validator node has marked the job cancelled (the backend's
        ``cancel_job``): polled every ``CANCEL_POLL_S`` while it runs."""
        while not run.done():
            await asyncio.sleep(CANCEL_POLL_S)
            try:
                record = await self.jobs.get_job_record(job_id)
            except Exception as exc:  # noqa: BLE001 - a database hiccup: look again later
                log.debug("job %s: cancellation check failed: %s", job_id, exc)
                continue
            if record.state is JobState.CANCELLED:
                self._withdrawn.add(job_id)
                run.cancel()
                return

    async def _rollouts(self, request: EvalRequest, bundle: Path, total: int) -> EvalOutcome:
        """The rollouts and the telemetry writer side by side; done when both are."""
        s = self.settings
        job_id = request.job_id
        await self.results.report_status(
            job_id, JobState.RUNNING, episodes_done=0, episodes_total=total
        )
        writer = TelemetryWriter(
            job_id,
            self.results,
            episodes_total=total,
            batch_messages=s.telemetry_batch,
            progress_every_s=PROGRESS_EVERY_S,
            retry_budget_s=s.telemetry_retry_s,
        )
        writing = asyncio.create_task(writer.run(), name=f"telemetry-{job_id}")

        progress = EvalProgress(total)

        def on_result(result: EpisodeResult) -> None:
            self.metrics.episode(result)
            writer.add(result)
            progress.add(result)
            if progress.log_due():
                log.info("job %s: %s", job_id, progress.line())

        playing = asyncio.create_task(
            evaluate(
                request,
                self._launcher(bundle),
                s.rollout_options(),
                on_result=on_result,
                rollouts=self.rollouts,
            ),
            name=f"rollouts-{job_id}",
        )
        try:
            await asyncio.wait({writing, playing}, return_when=asyncio.FIRST_COMPLETED)
            if writing.done():  # it only stops early when the outbox failed: raise that
                writing.result()
            outcome = await playing
        finally:
            if not playing.done():
                playing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await playing
            writer.close()  # what finished is still written (deadline, shutdown)
            await asyncio.shield(writing)
        log.info("job %s: %d telemetry messages stored", job_id, writer.messages)
        return outcome

    def _launcher(self, bundle: Path) -> SandboxLauncher:
        s = self.settings
        return SandboxLauncher(
            str(bundle),
            backend=s.sandbox,
            limits=s.sandbox_limits(),
            bubblewrap=s.bubblewrap_options(),
            kubernetes=s.kubernetes_options(),
            act_timeout_s=s.action_timeout_s * (s.host_factor or 1.0),
            reset_timeout_s=s.reset_timeout_s * (s.host_factor or 1.0),
        )

    def _judge(self, job_id: str, outcome: EvalOutcome, total: int, attempts: int) -> _Ending:
        if outcome.upload_failures:
            log.warning(
                "job %s: %d media uploads failed (episodes keep their keys): %s",
                job_id,
                len(outcome.upload_failures),
                outcome.upload_failures[0],
            )
        overall = outcome.metrics.overall
        short = shortfall(
            overall.scored_episodes, total, overall.failures, self.settings.min_scored_share
        )
        if short is not None:  # the coverage rule: too few episodes to judge the miner
            err = RuntimeError(short.describe())
            return self._infra_failure(job_id, err, attempts, cause=short.cause)
        log.info(
            "job %s: completed, success rate %.3f over %d scored episodes",
            job_id,
            overall.success_rate,
            overall.scored_episodes,
        )
        return _Ending(
            JobState.COMPLETED,
            metrics=outcome.metrics.to_protocol().model_copy(update={"compute": outcome.compute}),
            episodes_done=len(outcome.results),
            episodes_total=total,
        )

    async def _finish(self, job_id: str, started_at: datetime, ending: _Ending) -> None:
        self.metrics.job_finished(ending.state, _since(started_at))
        error = (ending.error or "")[:4096] or None
        await self.results.report_status(
            job_id,
            ending.state,
            episodes_done=ending.episodes_done,
            episodes_total=ending.episodes_total,
            detail=error,
        )
        appended = await self.results.append_outbox(
            EvalResult(
                job_id=job_id,
                state=ending.state,
                metrics=ending.metrics,
                error=error,
                failure_cause=ending.cause,
                started_at=started_at,
                finished_at=datetime.now(UTC),
                evaluator_version=__version__,
                runtime=local_runtime(),  # Ray workers run this same environment
            )
        )
        if not appended:
            log.info("job %s: a result was already recorded; this run's is dropped", job_id)

    def _bundle_failed(self, job_id: str, exc: Exception, attempts: int) -> _Ending:
        if isinstance(exc, RegistryError) or not isinstance(exc, StorageError):
            return self._infra_failure(job_id, exc, attempts)
        # Missing, tampered, oversized or not unpackable: the submission's fault, final.
        log.warning("job %s: bundle rejected: %s", job_id, exc)
        return _Ending(JobState.FAILED, f"bundle: {exc}", FailureCause.INVALID_BUNDLE)

    def _infra_failure(
        self,
        job_id: str,
        exc: BaseException,
        attempts: int,
        *,
        cause: FailureCause = FailureCause.INTERNAL,
    ) -> _Ending:
        """Re-queue the job (raises :class:`RetryJob`) or, attempts spent, fail it."""
        if attempts + 1 < self.timers.max_attempts and not self.stopping.is_set():
            log.warning("job %s: infrastructure failure, retrying: %s", job_id, exc)
            self.metrics.job_finished("retried", None)
            raise RetryJob(str(exc)[:500], delay=self.timers.retry_delay)
        log.error("job %s: infrastructure failure, giving up: %s", job_id, exc)
        return _Ending(JobState.FAILED, f"infrastructure: {exc}", cause)

    # ------------------------------------------------------------------ loop

    async def serve(self) -> None:
        """Consume jobs until SIGINT/SIGTERM (or :meth:`stop`)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop)
        log.info(
            "evaluator consuming jobs (concurrency %d, %d worker(s)/job)",
            s.concurrency,
            s.workers_per_job,
        )
        await self.jobs.consume(
            self.handle_job,
            concurrency=max(1, s.concurrency),
            timers=self.timers,
            stop=self.stopping,
        )


def _since(started_at: datetime) -> float:
    return (datetime.now(UTC) - started_at).total_seconds()


def run_orchestrator(settings: Settings) -> None:
    """Blocking entry point of ``kinitro evaluator run``."""

    if settings.host_factor is None:  # the agents' allowance on this host (#16)
        calibration = calibrate()
        log.info(
            "host calibration: reference workload %.1f ms (reference host %.1f ms), factor %.3f",
            calibration.measured_s * 1000,
            calibration.reference_s * 1000,
            calibration.factor,
        )
        settings = settings.model_copy(update={"host_factor": calibration.factor})
    # Refuse a host that cannot contain agents before taking any job (#18).
    prepare_host(
        settings.sandbox,
        agent_envs=settings.agent_envs_dir,
        allow_no_cgroup=settings.sandbox_allow_no_cgroup,
    )

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
            # Ray starts once, before the first job (seconds; a thread keeps the loop free).
            await asyncio.to_thread(
                ensure_ray, settings.ray_address, num_cpus=settings.ray_num_cpus
            )
            orchestrator = Orchestrator(settings, jq, jq)
            server = None
            if settings.metrics_port is not None:
                server = MetricsServer(
                    orchestrator.metrics.registry,
                    host=settings.metrics_host,
                    port=settings.metrics_port,
                    path=settings.metrics_path,
                )
                log.info("serving metrics on %s", server.url)
            try:
                await orchestrator.serve()
            finally:
                warm.drop_all()  # the actors kept warm between jobs
                if server is not None:
                    server.close()
        finally:
            await jq.close()

    asyncio.run(main())
