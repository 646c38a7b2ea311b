"""Errors of the validator database layer (the tree is in :mod:`kinitro.jobqueue`)."""

from __future__ import annotations

from datetime import timedelta

from kinitro.core.errors import KinitroError


class JobQueueError(KinitroError):
    """Root of every error raised by :mod:`kinitro.jobqueue`."""


class JobNotFoundError(JobQueueError):
    """No job with that id was ever received by this validator."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job {job_id!r}")
        self.job_id = job_id


class UnsupportedMessageError(JobQueueError):
    """The message type does not belong in the outbox (only evaluator output does)."""


class SchemaNotReadyError(JobQueueError):
    """The validator database is not migrated (run ``kinitro db upgrade --role validator``)."""


class RetryJob(JobQueueError):
    """Raised by a job handler: put the job back in the queue, to run again after ``delay``.

    Not a failure of the queue: the consumer turns it into pgqueuer's retry (the queue
    row keeps the job, durably, and counts the attempt)."""

    def __init__(self, reason: str, *, delay: timedelta = timedelta(0)) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay
