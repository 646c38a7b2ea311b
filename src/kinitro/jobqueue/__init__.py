"""The validator database, shared by ``kinitro validator run`` and ``kinitro evaluator run``.

Both processes of a validator node talk to one PostgreSQL database (separate from the
backend's). Roles may not import each other, so everything both need lives here, cut by
who uses it (:mod:`.ports`):

* :mod:`.ports`       the Protocols each user depends on: ``JobSource`` and ``ResultSink``
                      (evaluator); ``JobInbox``, ``OutboxFeed``, ``WeightsStore``,
                      ``NodeStatus`` (validator node); ``ValidatorDatabase`` (all).
* :mod:`.postgres`    :class:`JobQueue`, the production adapter: one module per user
                      (``jobs``, ``reports``, ``outbox``, ``weights``, ``status``), the
                      only SQL for this schema.
* :mod:`.memory`      :class:`MemoryJobQueue`, the in-memory twin (tests, drills), cut the
                      same way (``jobs``, ``outbox``, ``status``).
                      ``tests/jobqueue/test_conformance.py`` runs one suite on both.
* :mod:`.rules`       the outbox rules both adapters apply (first result wins, …).
* :mod:`.records`     the frozen values both adapters return.
* :mod:`.models`      SQLAlchemy models (``vq_jobs``, ``vq_outbox``, ``vq_outbox_dead``,
                      ``vq_weights``, ``vq_connection``).
* ``migrations/``     the Alembic tree, run by ``kinitro db upgrade --role validator --url …``.
                      Revision 0001 also installs pgqueuer 1.6's tables from pgqueuer's own
                      DDL (and drops them on downgrade).
* :mod:`.pgq`         pgqueuer glue: :data:`EVAL_JOB_ENTRYPOINT`, :class:`QueueTimers` and
                      the one consumer loop (:func:`consume_jobs`) both adapters run.

Queue contract (evaluator side)
-------------------------------
Every accepted job is one pgqueuer job with entrypoint ``"eval_job"``
(:data:`EVAL_JOB_ENTRYPOINT`), ``payload = job_id.encode()`` and ``dedupe_key = job_id``.
The evaluator consumes it through the ports::

    async def run(job_id: str, attempts: int) -> None:
        record = await source.get_job_record(job_id)       # the eval_job as received
        await sink.report_status(job_id, JobState.STARTING, episodes_total=…)
        …                               # sink.append_outbox_many([Episode, EpisodeSteps…])
        await sink.report_status(job_id, JobState.COMPLETED, …)   # terminal status first,
        await sink.append_outbox(EvalResult(...))                 # then the result
        # raise RetryJob(reason, delay=…) to run it again later (infrastructure trouble)

    await source.consume(run, concurrency=N, timers=QueueTimers(), stop=stop_event)

A crashed evaluator's picked jobs are re-picked after ``heartbeat_timeout``; the re-run
reports again and the effect stays single: the first ``eval_result`` of a job wins (later
ones are dropped, ``append_outbox`` returns ``False``), and non-terminal statuses after a
terminal one are dropped. Episodes/step batches are idempotent at the backend by their
natural key (and here by their message id).

Repository API (both adapters, all async)
-----------------------------------------
``JobQueue.connect(url)`` / ``JobQueue(engine)`` / ``MemoryJobQueue()``; ``close()``;
``check_schema()``.

Jobs (``JobInbox``, ``JobSource``): ``enqueue_job(eval_job) -> EnqueueOutcome`` (created |
duplicate | requeued: row and queue entry in one transaction; ack the backend only after
it returns) · ``get_job(job_id) -> EvalJob`` · ``get_job_record(job_id) -> JobRecord`` ·
``list_jobs(states=…)`` · ``consume(handler, concurrency=, timers=, stop=)``.

Reports (``ResultSink``): ``report_status(job_id, state, episodes_done=…,
episodes_total=…, detail=…) -> JobStatus | None`` (assigns the next ``seq``) ·
``append_outbox(msg) -> bool`` / ``append_outbox_many(msgs)`` for ``job_status``,
``eval_result``, ``episode``, ``episode_steps`` (idempotent on the message id; per-job
order = append order; a batch lands whole or not at all).

Outbox (``OutboxFeed``): ``pending_outbox(limit=, exclude=) -> [OutboxEntry]`` in send
order · ``outbox_listener(on_append)`` (PostgreSQL: LISTEN on :data:`OUTBOX_CHANNEL`; every
appending transaction NOTIFYs it at commit) · ``mark_sent(ids)`` · ``ack_outbox(message_id)``
/ ``ack_outbox_many(ids)`` (delete) · ``reject_outbox(message_id, error_code=, detail=)``
(move to dead letters) · ``dead_letters()`` · ``requeue_dead_letters(ids | None)``.

Weights (``WeightsStore``): ``record_weights(set_weights) -> bool`` ·
``next_pending_weights()`` · ``weights_set(weights_id, block)`` ·
``weights_attempt_failed(weights_id, error, give_up=)`` · ``last_weights_set()``.

Status (``NodeStatus``): ``set_connection(state, **fields)`` · ``connection()`` ·
``depths() -> QueueDepths`` · ``status() -> ValidatorStatus``.

Errors
------
::

    JobQueueError (KinitroError)
    ├── JobNotFoundError         no job with that id was received
    ├── UnsupportedMessageError  message type does not belong in the outbox
    ├── SchemaNotReadyError      database not migrated
    └── RetryJob                 raised by a job handler: run the job again later
"""

from kinitro.jobqueue.errors import (
    JobNotFoundError,
    JobQueueError,
    RetryJob,
    SchemaNotReadyError,
    UnsupportedMessageError,
)
from kinitro.jobqueue.memory import MemoryJobQueue
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT, QueueTimers, consume_jobs, job_id_from_payload
from kinitro.jobqueue.ports import (
    JobHandler,
    JobInbox,
    JobSource,
    NodeStatus,
    OutboxFeed,
    OutboxMessage,
    ResultSink,
    ValidatorDatabase,
    WeightsStore,
)
from kinitro.jobqueue.postgres import JobQueue
from kinitro.jobqueue.records import (
    OUTBOX_CHANNEL,
    OUTBOX_TYPES,
    ConnectionInfo,
    DeadLetter,
    EnqueueOutcome,
    JobRecord,
    OutboxEntry,
    QueueDepths,
    ValidatorStatus,
    WeightsEntry,
)

__all__ = [
    "EVAL_JOB_ENTRYPOINT",
    "OUTBOX_CHANNEL",
    "OUTBOX_TYPES",
    "ConnectionInfo",
    "DeadLetter",
    "EnqueueOutcome",
    "JobHandler",
    "JobInbox",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueError",
    "JobRecord",
    "JobSource",
    "MemoryJobQueue",
    "NodeStatus",
    "OutboxEntry",
    "OutboxFeed",
    "OutboxMessage",
    "QueueDepths",
    "QueueTimers",
    "ResultSink",
    "RetryJob",
    "SchemaNotReadyError",
    "UnsupportedMessageError",
    "ValidatorDatabase",
    "ValidatorStatus",
    "WeightsEntry",
    "WeightsStore",
    "consume_jobs",
    "job_id_from_payload",
]
