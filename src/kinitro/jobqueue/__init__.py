"""The validator database, shared by ``kinitro validator run`` and ``kinitro evaluator run``.

Both processes of a validator node talk to one PostgreSQL database (separate from the
backend's). Roles may not import each other, so everything both need lives here:

* :mod:`.models`      SQLAlchemy models (``vq_jobs``, ``vq_outbox``, ``vq_outbox_dead``,
                      ``vq_weights``, ``vq_connection``).
* ``migrations/``     the Alembic tree, run by ``kinitro db upgrade --role validator --url …``.
                      Revision 0001 also installs pgqueuer 1.6's tables from pgqueuer's own
                      DDL (and drops them on downgrade).
* :mod:`.pgq`         pgqueuer glue: :data:`EVAL_JOB_ENTRYPOINT` and :class:`QueueTimers`.
* :mod:`.repository`  :class:`JobQueue`, the only place with SQL for this schema.

Queue contract (evaluator side)
-------------------------------
Every accepted job is one pgqueuer job with entrypoint ``"eval_job"``
(:data:`EVAL_JOB_ENTRYPOINT`), ``payload = job_id.encode()`` and ``dedupe_key = job_id``.
The consumer does::

    conn = await asyncpg.connect(kinitro.core.db.dsn(url))   # a dedicated connection
    qm = QueueManager(Queries.from_asyncpg_connection(conn))
    timers = QueueTimers()              # QueueTimers.fast() in tests

    @qm.entrypoint(EVAL_JOB_ENTRYPOINT, concurrency_limit=N)
    async def run(job: Job) -> None:
        eval_job = await jq.get_job(job_id_from_payload(job.payload))
        await jq.report_status(eval_job.job_id, JobState.STARTING, episodes_total=…)
        …                               # jq.append_outbox(Episode(...)) per episode,
        …                               # jq.append_outbox_many([...EpisodeSteps...])
        await jq.append_outbox(EvalResult(...))       # terminal state goes here too
        await jq.report_status(eval_job.job_id, JobState.COMPLETED, ...)

    await qm.run(heartbeat_timeout=timers.heartbeat_timeout,
                 dequeue_timeout=timers.dequeue_timeout)

A crashed evaluator's picked jobs are re-picked after ``heartbeat_timeout``; the re-run
reports again and the repository keeps the effect single: the first ``eval_result`` of a
job wins (later ones are dropped, ``append_outbox`` returns ``False``), and non-terminal
statuses after a terminal one are dropped. Episodes/step batches are idempotent at the
backend by their natural key.

Repository API (:class:`JobQueue`, all async)
---------------------------------------------
``JobQueue.connect(url)`` / ``JobQueue(engine)``; ``close()``; ``check_schema()``.

Jobs: ``enqueue_job(eval_job) -> EnqueueOutcome`` (created | duplicate | requeued: row and
pgqueuer job in one transaction; ack the backend only after it returns) ·
``get_job(job_id) -> EvalJob`` · ``get_job_record(job_id) -> JobRecord`` ·
``list_jobs(states=…)``.

Outbox (evaluator → backend): ``report_status(job_id, state, episodes_done=…,
episodes_total=…, detail=…) -> JobStatus | None`` (assigns the next ``seq``) ·
``append_outbox(msg) -> bool`` / ``append_outbox_many(msgs)`` for ``job_status``,
``eval_result``, ``episode``, ``episode_steps`` (idempotent on the message id; per-job
order = append order) · ``pending_outbox(limit=, exclude=) -> [OutboxEntry]`` in send
order · ``outbox_listener(on_append)`` (LISTEN on :data:`OUTBOX_CHANNEL`; every
appending transaction NOTIFYs it at commit) · ``mark_sent(ids)`` ·
``ack_outbox(message_id)`` / ``ack_outbox_many(ids)`` (delete) ·
``reject_outbox(message_id, error_code=, detail=)`` (move to dead letters) ·
``dead_letters()`` · ``requeue_dead_letters(ids | None)`` (back into the outbox).

Weights: ``record_weights(set_weights) -> bool`` · ``next_pending_weights()`` ·
``weights_set(weights_id, block)`` · ``weights_attempt_failed(weights_id, error, give_up=)``
· ``last_weights_set()``.

Status: ``set_connection(state, **fields)`` · ``connection()`` · ``depths() ->
QueueDepths`` · ``status() -> ValidatorStatus``.

Errors
------
::

    JobQueueError (KinitroError)
    ├── JobNotFoundError         no job with that id was received
    ├── UnsupportedMessageError  message type does not belong in the outbox
    └── SchemaNotReadyError      database not migrated
"""

from kinitro.jobqueue.errors import (
    JobNotFoundError,
    JobQueueError,
    SchemaNotReadyError,
    UnsupportedMessageError,
)
from kinitro.jobqueue.pgq import EVAL_JOB_ENTRYPOINT, QueueTimers
from kinitro.jobqueue.repository import (
    OUTBOX_CHANNEL,
    OUTBOX_TYPES,
    ConnectionInfo,
    DeadLetter,
    EnqueueOutcome,
    JobQueue,
    JobRecord,
    OutboxEntry,
    QueueDepths,
    ValidatorStatus,
    WeightsEntry,
    job_id_from_payload,
)

__all__ = [
    "EVAL_JOB_ENTRYPOINT",
    "OUTBOX_CHANNEL",
    "OUTBOX_TYPES",
    "ConnectionInfo",
    "DeadLetter",
    "EnqueueOutcome",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueError",
    "JobRecord",
    "OutboxEntry",
    "QueueDepths",
    "QueueTimers",
    "SchemaNotReadyError",
    "UnsupportedMessageError",
    "ValidatorStatus",
    "WeightsEntry",
    "job_id_from_payload",
]
