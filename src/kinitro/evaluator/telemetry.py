"""Telemetry of a job: finished episodes → ``episode`` / ``episode_steps`` → the outbox.

:func:`episode_messages` builds an episode's wire messages with their *stable* ids,
derived from (job, episode, batch): a re-run after a crash produces the same ids, which
the outbox and the backend recognise, so nothing is counted twice.

:class:`TelemetryWriter` runs as a task on the orchestrator's event loop beside the
rollouts. ``add`` never blocks (the rollouts hand it each result as it comes); the task
writes whatever is ready as one batch (one transaction), so batches grow under load and
latency stays low when idle, then reports progress (``running``, at most every
``progress_every_s``, counting only episodes whose messages are in the outbox).

Nothing is dropped. A failing write is retried with backoff; if the outbox keeps failing
for ``retry_budget_s`` the writer raises :class:`~kinitro.evaluator.errors.TelemetryError`
and stops: the orchestrator then ends the job without completing it (it is re-queued,
and fails with that cause once its attempts are spent). A job therefore reaches
``completed`` only after every episode's telemetry is in the durable outbox.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TypeVar

from kinitro.evaluator.errors import TelemetryError
from kinitro.evaluator.results import EpisodeResult, StepSample
from kinitro.jobqueue import JobNotFoundError, OutboxMessage, ResultSink, UnsupportedMessageError
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import Episode, EpisodeSteps
from kinitro.protocol.validator_ws import StepSample as WireStepSample

log = logging.getLogger(__name__)

T = TypeVar("T")

SAMPLES_PER_MESSAGE = 50
"""Step samples per ``episode_steps`` message."""


def wire_samples(samples: Iterable[StepSample]) -> list[WireStepSample]:
    """Step samples as the ``episode_steps`` message carries them."""
    return [
        WireStepSample(
            step=s.step,
            observation=s.observation,
            action=s.action,
            reward=s.reward,
            success=s.success,
            info=s.info,
        )
        for s in samples
    ]


def message_id(*parts: object) -> str:
    """Deterministic 32-hex message id (stable across re-runs of the same job)."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def episode_messages(
    job_id: str, result: EpisodeResult, batch_size: int = SAMPLES_PER_MESSAGE
) -> list[OutboxMessage]:
    """Wire messages for one finished episode: ``episode`` then its ``episode_steps``."""
    messages: list[OutboxMessage] = [
        Episode(
            id=message_id(job_id, "episode", result.index),
            job_id=job_id,
            episode_index=result.index,
            task=result.task,
            task_episode=result.task_episode,
            seed=result.seed,
            success=result.success,
            total_reward=result.total_reward,
            steps=result.steps,
            steps_to_success=result.steps_to_success,
            terminated=result.terminated,
            truncated=result.truncated,
            failure_cause=result.failure_cause,
            failure_detail=result.failure_detail,
            actions_ref=result.actions_ref,
            action_fingerprint=result.action_fingerprint,
            media_refs=list(result.media_refs),
            duration_s=result.duration_s,
        )
    ]
    samples = result.samples
    size = max(1, batch_size)
    for batch_index, start in enumerate(range(0, len(samples), size)):
        messages.append(
            EpisodeSteps(
                id=message_id(job_id, "steps", result.index, batch_index),
                job_id=job_id,
                episode_index=result.index,
                batch_index=batch_index,
                samples=wire_samples(samples[start : start + size]),
            )
        )
    return messages


class TelemetryWriter:
    """Episode results in, their outbox messages out, on the event loop (see module)."""

    def __init__(
        self,
        job_id: str,
        sink: ResultSink,
        *,
        episodes_total: int,
        batch_messages: int = 64,
        progress_every_s: float = 2.0,
        retry_budget_s: float = 60.0,
    ) -> None:
        self.job_id = job_id
        self._sink = sink
        self._total = episodes_total
        self._batch = max(1, batch_messages)
        self._progress_every = progress_every_s
        self._budget = retry_budget_s
        self._queue: asyncio.Queue[EpisodeResult | None] = asyncio.Queue()
        self._last_progress = float("-inf")
        self.delivered = 0
        """Episodes whose messages are in the outbox."""
        self.messages = 0

    def add(self, result: EpisodeResult) -> None:
        """Queue a finished episode (never blocks). Every final result of the job passes
        here on the driver: the place for per-episode counters (steps, failure causes)."""
        self._queue.put_nowait(result)

    def close(self) -> None:
        """No more episodes: :meth:`run` returns once everything queued is written."""
        self._queue.put_nowait(None)

    async def run(self) -> None:
        """Write until :meth:`close`; raises :class:`TelemetryError` if the outbox fails."""
        closed = False
        while not closed:
            episodes = [await self._queue.get()]
            messages: list[OutboxMessage] = []
            while True:
                episode = episodes[-1]
                if episode is None:
                    closed = True
                    episodes.pop()
                    break
                messages += episode_messages(self.job_id, episode)
                if len(messages) >= self._batch or self._queue.empty():
                    break
                episodes.append(self._queue.get_nowait())
            if messages:
                await self._retrying(partial(self._sink.append_outbox_many, messages))
                self.messages += len(messages)
                self.delivered += len(episodes)
                await self._progress()

    async def _progress(self) -> None:
        now = asyncio.get_running_loop().time()
        if self.delivered < self._total and now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        await self._retrying(
            partial(
                self._sink.report_status,
                self.job_id,
                JobState.RUNNING,
                episodes_done=self.delivered,
                episodes_total=self._total,
            )
        )

    async def _retrying(self, write: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._budget
        delay = 0.1
        while True:
            try:
                return await write()
            except (JobNotFoundError, UnsupportedMessageError) as exc:  # retrying cannot help
                raise TelemetryError(f"telemetry of job {self.job_id} refused: {exc}") from exc
            except Exception as exc:
                if loop.time() + delay > give_up:
                    raise TelemetryError(
                        f"telemetry of job {self.job_id} not written for {self._budget:g}s "
                        f"({self.delivered} of {self._total} episodes delivered): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                log.warning("telemetry write failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
