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

from sqlalchemy.exc import DBAPIError

from kinitro.backend import events
from kinitro.backend.artifacts import ArtifactRejected
from kinitro.backend.db import repo_chain, repo_competitions, repo_jobs, repo_submissions
from kinitro.backend.locks import CHAIN_MONITOR, LeaderLock
from kinitro.backend.scheduler import schedule_submission
from kinitro.chain.errors import ChainError
from kinitro.protocol.commitment import Commitment, parse_commitment
from kinitro.protocol.errors import CommitmentError

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.chain.models import CommitmentRecord

log = logging.getLogger(__name__)

SCANNER = "commitments"
TRANSIENT = frozenset({"artifact_unavailable"})
MAX_STORED_COMMITMENT = 512  # characters kept of a (necessarily invalid) oversize commitment
MAX_DETAIL = 400  # characters of a rejection detail (the event must fit a NOTIFY payload)
MAX_PROCESS_FAILURES = 3  # unexpected verification errors before a submission is rejected


def storable_commitment(data: str) -> tuple[str, str | None]:
    """The commitment text to store, and why it cannot be a valid commitment (or None).

    Chain data is untrusted: PostgreSQL text holds neither NUL characters nor unpaired
    surrogates, and an oversize value is kept only as a bounded, escaped excerpt.
    """
    problem = None
    text = data
    if "\x00" in text:
        problem = "the commitment contains NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problem = "the commitment is not valid Unicode (unpaired surrogates)"
    if problem is not None:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    if len(text) > MAX_STORED_COMMITMENT:
        size = len(data.encode("utf-8", "surrogatepass"))
        text = f"{text[:MAX_STORED_COMMITMENT]}… ({size} bytes)"
    return text, problem


class ChainMonitor:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        from kinitro.core.db import dsn

        self.lock = LeaderLock(dsn(state.settings.database_url), CHAIN_MONITOR)
        self._failures: dict[int, int] = {}

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
        stored, unstorable = storable_commitment(record.data)
        values: dict[str, Any] = dict(
            miner_hotkey=record.hotkey,
            miner_uid=record.uid,
            commitment=stored,
            commitment_block=record.block,
        )
        problem: CommitmentError | str | None = unstorable
        c: Commitment | None = None
        if problem is None:
            try:
                c = parse_commitment(record.data)
            except CommitmentError as exc:
                problem = exc
        if c is not None:
            values.update(
                artifact_registry=c.registry,
                artifact_repo=c.repo,
                artifact_revision=c.revision,
                artifact_sha256=c.sha256,
            )
        async with self.state.engine.begin() as conn:
            if c is not None:
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
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL - 1] + "…"
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
            detail=detail,
        )
        self.state.metrics.submissions.labels(f"rejected_{reason}").inc()
        log.info("submission %s rejected: %s (%s)", submission_id, reason, detail)

    async def process_pending(self) -> None:
        """Process pending submissions oldest first; one failing never blocks the others.

        A database outage stops the pass (everything is retried next tick). Any other
        unexpected error leaves the submission pending; after ``MAX_PROCESS_FAILURES`` it is
        rejected (``verification_failed``) so that it cannot be retried forever.
        """
        async with self.state.engine.connect() as conn:
            pending, _ = await repo_submissions.list_submissions(
                conn, status="pending", limit=100, offset=0
            )
        for sub in sorted(pending, key=lambda s: s["id"]):
            try:
                await self.process(sub)
                self._failures.pop(sub["id"], None)
            except (OSError, DBAPIError):
                raise
            except Exception as exc:
                self.state.metrics.task_errors.labels("chain_monitor").inc()
                failures = self._failures[sub["id"]] = self._failures.get(sub["id"], 0) + 1
                log.exception("verifying submission %s failed (%d)", sub["id"], failures)
                if failures >= MAX_PROCESS_FAILURES:
                    async with self.state.engine.begin() as conn:
                        await self._reject(
                            conn,
                            sub["id"],
                            sub,
                            "verification_failed",
                            f"verification failed {failures} times: {type(exc).__name__}: {exc}",
                        )
                    self._failures.pop(sub["id"], None)

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
