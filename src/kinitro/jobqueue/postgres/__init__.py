"""The PostgreSQL adapter of the validator database: :class:`JobQueue`.

One class per user of the database, each in its own module (every SQL statement of the
validator schema lives in this package); :class:`JobQueue` is all of them over one
engine:

* :mod:`.jobs`     ``vq_jobs`` + pgqueuer entries: enqueue (node), consume (evaluator)
* :mod:`.reports`  the evaluator's appends to ``vq_outbox`` (statuses, results, telemetry)
* :mod:`.outbox`   the node's outbox sender: pending, acks, dead letters, LISTEN
* :mod:`.weights`  ``vq_weights`` for the weight setter
* :mod:`.status`   ``vq_connection`` and queue depths (``kinitro validator status``)
"""

from kinitro.jobqueue.postgres.database import JobQueue

__all__ = ["JobQueue"]
