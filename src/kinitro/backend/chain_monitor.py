"""Chain monitor: turns commitments on the chain into submissions and jobs.

Incremental and resumable: the last fully scanned block is kept in
``chain_scan_state``; each pass reads the block height, then every hotkey's current
commitment, and ingests those made after the saved block (a commitment seen twice is
deduplicated by ``(miner_hotkey, commitment_block)``). Commitments of hotkeys that are not
registered on the subnet are ignored.

Each new submission is recorded as ``pending`` first, then processed (so a crash in
between is resumed on the next pass): a commitment that does not parse, names an unknown
or inactive competition, or pins an artifact the registry cannot deliver within the size
cap with the committed sha256 is **rejected with a reason**; otherwise the miner's older
live submissions in that competition are superseded (their jobs cancelled), the earliest
commitment of the same artifact is recorded as the credited one, and jobs are scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from kinitro.backend import events
from kinitro.backend.artifacts import ArtifactRejected
from kinitro.backend.db import repo_chain, repo_competitions, repo_jobs, repo_submissions
from kinitro.backend.locks import CHAIN_MONITOR, LeaderLock
from kinitro.backend.scheduler import schedule_submission
from kinitro.chain.errors import ChainError
from kinitro.protocol.commitment import parse_commitment
from kinitro.protocol.errors import CommitmentError

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.chain.models import CommitmentRecord

log = logging.getLogger(__name__)

SCANNER = "commitments"
TRANSIENT = frozenset({"artifact_unavailable"})


class ChainMonitor:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        from kinitro.core.db import dsn

        self.lock = LeaderLock(dsn(state.settings.database_url), CHAIN_MONITOR)

    async def tick(self) -> int:
        """One scan; returns the number of new submissions."""
        if not await self.lock.held():
            return 0
        chain = self.state.chain
        head = await chain.block()
        async with self.state.engine.connect() as conn:
            last = await repo_chain.last_block(conn, SCANNER)
        records = [r for r in await chain.commitments() if last is None or r.block > last]
        records.sort(key=lambda r: (r.block, r.hotkey))
        new = 0
        for record in records:
            if await self.record(record):
                new += 1
        await self.process_pending()
        # the head block may still receive commitments after we read them: it is scanned
        # again next time (dedup makes that harmless)
        async with self.state.engine.begin() as conn:
            await repo_chain.save_progress(conn, SCANNER, chain.netuid, head - 1)
        return new

    async def record(self, record: CommitmentRecord) -> bool:
        """Store a commitment as a pending submission; False when ignored or known."""
        if record.uid is None:
            self.state.metrics.submissions.labels("unregistered").inc()
            log.info("ignoring commitment of unregistered hotkey %s", record.hotkey)
            return False
        values: dict[str, Any] = dict(
            miner_hotkey=record.hotkey,
            miner_uid=record.uid,
            commitment=record.data,
            commitment_block=record.block,
        )
        problem: CommitmentError | None = None
        try:
            c = parse_commitment(record.data)
        except CommitmentError as exc:
            problem = exc
        else:
            values.update(
                artifact_registry=c.registry,
                artifact_repo=c.repo,
                artifact_revision=c.revision,
                artifact_sha256=c.sha256,
            )
        async with self.state.engine.begin() as conn:
            if problem is None:
                competition = await repo_competitions.get_competition(conn, c.competition_id)
                if competition is not None:
                    values["competition_id"] = c.competition_id
            submission_id = await repo_submissions.insert_submission(conn, values)
            if submission_id is None:
                return False
            await events.emit(
                conn,
                "submission_received",
                submission_id=str(submission_id),
                competition_id=values.get("competition_id"),
                miner_hotkey=record.hotkey,
                miner_uid=record.uid,
                commitment_block=record.block,
            )
            if problem is not None:
                await self._reject(conn, submission_id, values, "invalid_commitment", str(problem))
        self.state.metrics.submissions.labels("recorded").inc()
        return True

    async def _reject(
        self, conn: Any, submission_id: int, sub: dict[str, Any], reason: str, detail: str
    ) -> None:
        await repo_submissions.reject(conn, submission_id, reason, detail)
        await events.emit(
            conn,
            "submission_rejected",
            submission_id=str(submission_id),
            competition_id=sub.get("competition_id"),
            miner_hotkey=sub["miner_hotkey"],
            miner_uid=sub.get("miner_uid"),
            commitment_block=sub.get("commitment_block"),
            reason=reason,
            detail=detail[:4000],
        )
        self.state.metrics.submissions.labels(f"rejected_{reason}").inc()
        log.info("submission %s rejected: %s (%s)", submission_id, reason, detail)

    async def process_pending(self) -> None:
        async with self.state.engine.connect() as conn:
            pending, _ = await repo_submissions.list_submissions(
                conn, status="pending", limit=100, offset=0
            )
        for sub in sorted(pending, key=lambda s: s["id"]):
            await self.process(sub)

    async def process(self, sub: dict[str, Any]) -> None:
        """Verify a pending submission and schedule it, or reject it with a reason."""
        s = self.state.settings
        commitment = parse_commitment(sub["commitment"]) if sub["artifact_sha256"] else None
        async with self.state.engine.connect() as conn:
            competition = (
                await repo_competitions.get_competition(conn, commitment.competition_id)
                if commitment
                else None
            )
        size: int | None = None
        reason: tuple[str, str] | None = None
        if commitment is None:
            reason = ("invalid_commitment", "the commitment does not parse")
        elif competition is None:
            reason = (
                "unknown_competition",
                f"no competition {commitment.competition_id!r}",
            )
        elif not competition["active"]:
            reason = ("competition_inactive", f"competition {competition['id']!r} is not active")
        else:
            try:
                size = await self.state.verifier.verify(commitment, s.artifact_max_bytes)
            except ArtifactRejected as exc:
                if exc.reason in TRANSIENT:
                    log.warning(
                        "artifact of submission %s unavailable, retrying: %s", sub["id"], exc
                    )
                    return
                reason = (exc.reason, exc.detail)
        async with self.state.engine.begin() as conn:
            if reason is not None:
                await self._reject(conn, sub["id"], sub, *reason)
                return
            assert competition is not None and commitment is not None
            superseded = await repo_submissions.supersede_previous(
                conn,
                miner_hotkey=sub["miner_hotkey"],
                competition_id=competition["id"],
                newer_than_id=sub["id"],
            )
            cancelled = await repo_jobs.cancel_jobs_of_submissions(conn, superseded)
            if superseded:
                log.info(
                    "submission %s supersedes %s (%d jobs cancelled)",
                    sub["id"],
                    superseded,
                    len(cancelled),
                )
            credited = await repo_submissions.earliest_with_artifact(
                conn, competition_id=competition["id"], sha256=commitment.sha256
            )
            await repo_submissions.set_status(
                conn,
                sub["id"],
                "scheduled",
                artifact_size=size,
                credited_submission_id=credited,
            )
            await schedule_submission(conn, s, submission=sub, competition=competition)
        self.state.scheduler_wake.set()
        self.state.metrics.submissions.labels("scheduled").inc()

    async def run(self) -> None:
        interval = self.state.settings.chain_scan_interval_s
        try:
            while True:
                try:
                    await self.tick()
                except ChainError as exc:
                    log.warning("chain scan failed: %s", exc)
                    self.state.metrics.task_errors.labels("chain_monitor").inc()
                except Exception:
                    self.state.metrics.task_errors.labels("chain_monitor").inc()
                    log.exception("chain scan failed")
                await asyncio.sleep(interval)
        finally:
            await self.lock.release()
