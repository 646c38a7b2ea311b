"""The in-memory twin of the validator database: :class:`MemoryJobQueue`.

The same ports as :class:`~kinitro.jobqueue.postgres.JobQueue`, with the same rules
(:mod:`kinitro.jobqueue.rules`) and the same queue: pgqueuer's own in-memory adapter
(``InMemoryQueries``) driven by the same consumer loop
(:func:`~kinitro.jobqueue.pgq.consume_jobs`). ``tests/jobqueue/test_conformance.py`` runs
one suite against both, so logic built on the ports (the evaluator's lifecycle, deadlines,
retries, telemetry) is tested here without PostgreSQL while end-to-end tests keep the real
path.

An operation never yields to the event loop between its first read and its last write
(enqueue holds a lock around its one await): that is the twin's transaction, and a batch
append lands whole or not at all. Nothing outlives the process;
this is not a production store. :meth:`MemoryJobQueue.fail` simulates a database outage
for chosen operations (they raise :class:`ConnectionError`, like a dropped connection) so
callers' retry paths can be exercised.
"""

from __future__ import annotations

from kinitro.jobqueue.memory.jobs import MemoryJobs
from kinitro.jobqueue.memory.outbox import MemoryOutbox
from kinitro.jobqueue.memory.status import MemoryStatus


class MemoryJobQueue(MemoryJobs, MemoryOutbox, MemoryStatus):
    """The validator database in memory (tests, drills). All ports, no persistence."""

    async def check_schema(self) -> None:
        self._io("check_schema")

    async def close(self) -> None:
        pass


__all__ = ["MemoryJobQueue"]
