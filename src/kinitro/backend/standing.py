"""Validator standing: strikes, suspension and reinstatement.

A validator is struck, at most once per job, when a report of it is refused by a
cross-check (:mod:`.crosscheck`: wrong seeds, missing episodes, inflated metrics, a job it
was not assigned …) or an audit of it fails after the round's reveal (a replay,
:mod:`.audits`, or an agent re-run, :mod:`.reruns`). The struck report never counts: the
assignment becomes ``rejected`` (an audited result is discarded) and the job goes to
another validator, so the honest quorum still forms.

``strike_threshold`` strikes since its standing began suspend the validator for
``suspension_rounds`` round lengths (``round_duration_s``): it gets no new assignments,
its unfinished ones are revoked and handed to others, its results are left out of every
quorum and median, and whatever it reports meanwhile is refused (``not_permitted``)
without further strikes. When the suspension ends — or an admin reinstates it
(``POST /api/v1/admin/validators/{hotkey}/reinstate``) — its strikes count afresh.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kinitro.backend.db import repo_jobs, repo_standing
from kinitro.backend.db.common import utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.crosscheck import Refusal
    from kinitro.backend.settings import Settings

log = logging.getLogger(__name__)


async def with_standing(
    conn: AsyncConnection, validators: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Validator rows with their standing figures (see ``GET /api/v1/validators``)."""
    figures = await repo_standing.standing(conn)
    now = utcnow()
    out = []
    for v in validators:
        f = figures.get(v["hotkey"], {})
        until = v.get("suspended_until")
        out.append(
            {
                **v,
                "strikes": f.get("strikes", 0),
                "counting_strikes": f.get("counting_strikes", 0),
                "suspended": until is not None and until > now,
                "disagreement": f.get("disagreement"),
                "compared_jobs": f.get("compared_jobs", 0),
                "audits_passed": f.get("audits_passed", 0),
                "audits_failed": f.get("audits_failed", 0),
                "audit_pass_rate": f.get("audit_pass_rate"),
            }
        )
    return out


async def strike(
    conn: AsyncConnection, settings: Settings, hotkey: str, job_id: str, refusal: Refusal
) -> bool:
    """Refuse ``hotkey``'s report on ``job_id`` for good and count it; suspend the
    validator once over the threshold. False when it was already struck for this job."""
    new = await repo_standing.add_strike(
        conn, hotkey=hotkey, job_id=job_id, reason=refusal.reason.value, detail=refusal.detail
    )
    await repo_jobs.reject_assignment(conn, job_id, hotkey)
    if not new:
        return False
    log.warning("validator %s struck on job %s: %s", hotkey, job_id, refusal.message())
    count = await repo_standing.counting_strikes(conn, hotkey)
    if count >= settings.strike_threshold:
        until = utcnow() + timedelta(seconds=settings.suspension_rounds * settings.round_duration_s)
        await repo_standing.suspend(conn, hotkey, until)
        revoked = await repo_jobs.revoke_assignments(conn, hotkey)
        log.warning(
            "validator %s suspended until %s after %d strikes (%d assignments handed over)",
            hotkey,
            until.isoformat(),
            count,
            len(revoked),
        )
    return True
