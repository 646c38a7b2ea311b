"""Chain monitor: turns commitments on the chain into submissions and jobs.

Incremental and resumable: the last fully scanned block is kept in
``chain_scan_state``; each pass reads the block height, then every hotkey's current
commitment, and ingests those made after the saved block (a commitment seen twice is
deduplicated by ``(miner_hotkey, commitment_block)``). Commitments of hotkeys that are not
registered on the subnet are ignored, and so are the backend's own round commitments
(:mod:`.rounds`).

Each new submission is recorded as ``pending`` first, then processed (so a crash in
between is resumed on the next pass): a commitment that does not parse, names an unknown
or inactive competition, exceeds the miner's submission rate in that competition
(``submission_limit`` accepted per ``submission_window_s``: ``rate_limited``), or pins an
artifact that is too large, has another sha256 or is not a valid bundle is **rejected
with a reason**; otherwise the miner's older live submissions in that competition are
superseded (their jobs cancelled, on the validators too: :mod:`.cancellation`), the
earliest commitment of the same artifact is recorded as the credited one, and jobs are
scheduled.

**Commit before publish.** A miner commits while its repo is still private and publishes
it afterwards, and a private repo reads exactly like a missing one. So an artifact that is
not found, or a registry that does not answer, leaves the submission ``pending``: it is
tried again with a growing delay (``RETRY_MIN_S`` doubling to ``RETRY_MAX_S``) until
``artifact_deadline_s`` after the submission was first seen, then rejected with
``artifact_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from kinitro.backend import events
from kinitro.backend.artifacts import ArtifactRejected
from kinitro.backend.cancellation import cancel_submissions_jobs
from kinitro.backend.db import repo_chain, repo_competitions, repo_submissions
from kinitro.backend.db.common import utcnow
from kinitro.backend.locks import CHAIN_MONITOR, LeaderLock
from kinitro.backend.scheduler import schedule_submission
from kinitro.chain.errors import ChainError
from kinitro.core.db import dsn
from kinitro.protocol.commitment import Commitment, parse_commitment
from kinitro.protocol.errors import CommitmentError
from kinitro.protocol.realtime import SubmissionReceivedEvent, SubmissionRejectedEvent

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.chain.models import CommitmentRecord

log = logging.getLogger(__name__)

SCANNER = "commitments"
WAITABLE = frozenset({"artifact_unavailable", "artifact_not_found"})
"""Artifact failures that may end (a private repo published, a registry back)."""
RETRY_MIN_S = 2.0
RETRY_MAX_S = 120.0
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

        self.lock = LeaderLock(dsn(state.settings.database_url), CHAIN_MONITOR)
        self._failures: dict[int, int] = {}
        self._waits: dict[int, tuple[float, float]] = {}  # id -> (next try, current delay)

    async def tick(self) -> int:
        """One scan; returns the number of new submissions."""
        if not await self.lock.held():
            return 0
        chain = self.state.chain
        head = await chain.block()
        async with self.state.engine.connect() as conn:
            last = await repo_chain.last_block(conn, SCANNER)
        own = self.state.round_key.ss58_address if self.state.round_key else None
        records = [
            r
            for r in await chain.commitments()
            if (last is None or r.block > last) and r.hotkey != own  # own: round commitments
        ]
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
                SubmissionReceivedEvent(
                    at=utcnow(),
                    submission_id=str(submission_id),
                    competition_id=values.get("competition_id"),
                    miner_hotkey=record.hotkey,
                    miner_uid=record.uid,
                    commitment_block=record.block,
                ),
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
            SubmissionRejectedEvent(
                at=utcnow(),
                submission_id=str(submission_id),
                competition_id=sub.get("competition_id"),
                miner_hotkey=sub["miner_hotkey"],
                miner_uid=sub.get("miner_uid"),
                commitment_block=sub.get("commitment_block"),
                reason=reason,
                detail=detail,
            ),
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
        now = time.monotonic()
        for sub in sorted(pending, key=lambda s: s["id"]):
            if self._waits.get(sub["id"], (0.0, 0.0))[0] > now:
                continue  # waiting for its artifact: not yet time to look again
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
            accepted = (
                await repo_submissions.accepted_since(
                    conn,
                    miner_hotkey=sub["miner_hotkey"],
                    competition_id=competition["id"],
                    since=datetime.now(UTC) - timedelta(seconds=s.submission_window_s),
                    before_id=sub["id"],
                )
                if competition
                else 0
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
        elif accepted >= s.submission_limit:
            reason = (
                "rate_limited",
                f"{accepted} submissions to {competition['id']!r} accepted in the last "
                f"{s.submission_window_s:.0f}s (limit {s.submission_limit})",
            )
        else:
            try:
                size = await self.state.verifier.verify(commitment, s.artifact_max_bytes)
            except ArtifactRejected as exc:
                if exc.reason not in WAITABLE:
                    reason = (exc.reason, exc.detail)
                elif (waited := _age_s(sub)) < s.artifact_deadline_s:
                    self._wait(sub["id"], exc, waited, s.artifact_deadline_s)
                    return
                else:
                    reason = (
                        "artifact_unavailable",
                        f"not readable for {waited:.0f}s (deadline {s.artifact_deadline_s:.0f}s;"
                        f" a private repo must be published after its commitment): {exc.detail}",
                    )
        self._waits.pop(sub["id"], None)
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
            cancelled = await cancel_submissions_jobs(
                conn, superseded, f"superseded by submission {sub['id']}"
            )
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

    def _wait(
        self, submission_id: int, exc: ArtifactRejected, waited: float, deadline: float
    ) -> None:
        _, delay = self._waits.get(submission_id, (0.0, RETRY_MIN_S / 2))
        delay = min(RETRY_MAX_S, delay * 2)
        self._waits[submission_id] = (time.monotonic() + delay, delay)
        self.state.metrics.submissions.labels("awaiting_artifact").inc()
        log.info(
            "artifact of submission %s not readable yet (private or unavailable; %.0fs of "
            "%.0fs waited), next try in %.0fs: %s",
            submission_id,
            waited,
            deadline,
            delay,
            exc.detail,
        )

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


def _age_s(sub: dict[str, Any]) -> float:
    """Seconds since the backend first saw the submission."""
    created = sub.get("created_at")
    if not isinstance(created, datetime):
        return 0.0
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (datetime.now(UTC) - created).total_seconds()
