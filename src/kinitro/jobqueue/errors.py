"""Errors of the validator database layer."""

from __future__ import annotations

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
