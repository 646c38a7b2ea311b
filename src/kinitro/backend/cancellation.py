"""Cancelling jobs where they run: a superseded submission's jobs, or a job an operator
cancels (``POST /api/v1/admin/jobs/{id}/cancel``), stop on the validators.

Marking a job ``cancelled`` in the backend only stops new assignments; the validators
already holding it would play it to the end, for nothing. So every validator whose
assignment was unfinished gets a ``cancel_job`` (protocol 4) through the backend's durable
outbox (the one ``set_weights`` uses: resent on every reconnection until acked), and its
socket is woken on whichever replica holds it. The cancelled assignments stop counting
against the validator's in-flight cap at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend import events
from kinitro.backend.db import repo_jobs, repo_scoring
from kinitro.protocol.validator_ws import CancelJob


async def cancel_submissions_jobs(
    conn: AsyncConnection, submission_ids: list[int], reason: str
) -> list[str]:
    """Cancel the live jobs of ``submission_ids`` here and on their validators; returns
    the cancelled job ids."""
    jobs = await repo_jobs.live_jobs_of_submissions(conn, submission_ids)
    return await cancel_jobs_everywhere(conn, jobs, reason)


async def cancel_jobs_everywhere(
    conn: AsyncConnection, job_ids: list[str], reason: str
) -> list[str]:
    """Cancel the live ones of ``job_ids`` here and on the validators holding them;
    returns the cancelled job ids."""
    held = await repo_jobs.active_assignments(conn, job_ids)
    cancelled = set(await repo_jobs.cancel_jobs(conn, job_ids))
    hotkeys = set()
    for job_id, hotkey in held:
        if job_id not in cancelled:
            continue
        message = CancelJob(job_id=job_id, reason=reason[:128])
        await repo_scoring.enqueue(
            conn,
            hotkey=hotkey,
            message_id=message.id,
            type_=message.type,
            payload=message.model_dump(mode="json"),
        )
        hotkeys.add(hotkey)
    if hotkeys:
        await events.wake_validators(conn, hotkeys)
    return sorted(cancelled)
