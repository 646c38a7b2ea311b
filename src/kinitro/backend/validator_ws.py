"""``/ws/validator``: authenticated validator sessions, job delivery and ingestion.

Session: the backend sends ``auth_challenge`` (a single-use nonce stored in the DB);
the validator answers ``auth_response`` signed by its hotkey; the signature is verified
and the hotkey must be registered on the subnet with a validator permit or at least
``min_validator_stake``; its protocol version and evaluator runtime must be accepted
(:mod:`.runtimes`, close code 4426). Refusals get a typed ``error`` and the socket is
closed with the reason.

Authenticated, the session runs two loops:

* **reader** — frames are parsed once and dispatched with ``match``; state-changing
  messages are upserted by their natural key and acked (a duplicate is acked again,
  never fatal); a bad frame gets a typed ``error`` / negative ``ack`` and the socket
  survives, unless the peer sends more than ``max_bad_frames`` of them. Messages are
  stored one at a time per socket and through a process-wide pool of ``ingest_slots``:
  a fast sender is slowed down by TCP (backpressure) instead of growing our memory.
  No frame for ``heartbeat_timeout_s`` closes the session.
* **sender** — every unacknowledged job assignment and outbox message (``set_weights``)
  of this validator is sent once per session: on connect (replay after a reconnect)
  and whenever the scheduler wakes it (NOTIFY, so it works across replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from kinitro import __version__
from kinitro.backend import embargo, events, rounds, runtimes
from kinitro.backend.coverage import apply_coverage_rule
from kinitro.backend.db import (
    repo_admin,
    repo_competitions,
    repo_ingest,
    repo_jobs,
    repo_rounds,
    repo_scoring,
    repo_validators,
)
from kinitro.backend.limits import client_address
from kinitro.backend.score_engine import set_weights_payload
from kinitro.backend.vetting import Verdict, vet
from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.validator_ws import (
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    CancelJob,
    Episode,
    EpisodeSteps,
    ErrorMessage,
    EvalJob,
    EvalResult,
    Heartbeat,
    JobStatus,
    SetWeights,
    StepSample,
    dump_message,
    parse_validator_message,
)

if TYPE_CHECKING:
    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

CLOSE_AUTH_FAILED = 4401
CLOSE_NOT_PERMITTED = 4403
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_INCOMPATIBLE = 4426  # protocol or evaluator runtime not accepted ("upgrade required")
CLOSE_ABUSIVE = 1008
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN_LATER = 1013

INBOX_SIZE = 64  # parsed messages waiting to be stored, per socket
INGEST_BATCH = 32  # messages stored per transaction at most

_SAMPLES: TypeAdapter[list[StepSample]] = TypeAdapter(list[StepSample])

_MESSAGE_ID_LEN = 32


class SessionClosed(Exception):
    """Internal: the session ends (closed by the peer or by us)."""


class ValidatorHub:
    """Sessions connected to this replica, by hotkey."""

    def __init__(self) -> None:
        self.sessions: dict[str, ValidatorSession] = {}
        self.signing_in = 0

    def wake(self, hotkey: str) -> None:
        session = self.sessions.get(hotkey)
        if session is not None:
            session.wake.set()

    def wake_all(self) -> None:
        for session in self.sessions.values():
            session.wake.set()

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await session.close(CLOSE_GOING_AWAY, "backend shutting down")


def _ref(message_id: str | None) -> str | None:
    if (
        message_id
        and len(message_id) == _MESSAGE_ID_LEN
        and all(c in "0123456789abcdef" for c in message_id)
    ):
        return message_id
    return None


class ValidatorSession:
    def __init__(self, ws: WebSocket, state: BackendState) -> None:
        self.ws = ws
        self.state = state
        self.settings = state.settings
        self.hotkey: str | None = None
        self.uid: int | None = None
        self.session_id = uuid.uuid4().hex
        self.wake = asyncio.Event()
        self.sent: set[str] = set()
        self.bad_frames = 0
        self._send_lock = asyncio.Lock()
        self._closed = False
        # parsed messages with their frame (step batches are stored from it verbatim)
        self.inbox: asyncio.Queue[tuple[Stored, str | bytes]] = asyncio.Queue(maxsize=INBOX_SIZE)
        self.close_reason = "connection closed"

    # ------------------------------------------------------------ plumbing

    async def send(self, message: Any) -> None:
        if self._closed:
            raise SessionClosed
        text = dump_message(message)
        async with self._send_lock:
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self._closed = True
                raise SessionClosed from exc

    async def error(self, code: ErrorCode, message: str, ref_id: str | None = None) -> None:
        await self.send(ErrorMessage(code=code, message=message[:4000], ref_id=_ref(ref_id)))

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self.close_reason = reason
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason[:120])

    async def _receive(self, wait_s: float) -> str | bytes:
        frame = await asyncio.wait_for(self.ws.receive(), timeout=wait_s)
        if frame["type"] == "websocket.disconnect":
            self._closed = True
            raise SessionClosed
        if frame.get("text") is not None:
            return str(frame["text"])
        return bytes(frame.get("bytes") or b"")

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            if not await self._admitted():
                return
            self.state.hub.signing_in += 1
            try:
                authenticated = await self._authenticate()
            finally:
                self.state.hub.signing_in -= 1
            if authenticated:
                await self._serve()
        except SessionClosed:
            pass
        finally:
            await self._cleanup()

    async def _admitted(self) -> bool:
        """Before the challenge (a database write): at most ``max_pending_auth`` sockets
        signing in at once, and connection attempts count against the address's REST
        budget (backend.limits). Refused: ``error`` then close 1013 (retry later)."""
        wait = self.state.rest_buckets.take(client_address(self.ws.scope))
        if wait > 0:
            message = f"too many connection attempts from your address; retry in {wait:.1f}s"
        elif self.state.hub.signing_in >= self.settings.max_pending_auth:
            message = "too many validators are signing in; retry in a few seconds"
        else:
            return True
        self.state.metrics.auth_failures.labels(ErrorCode.RATE_LIMITED.value).inc()
        with contextlib.suppress(SessionClosed):
            await self.error(ErrorCode.RATE_LIMITED, message)
        await self.close(CLOSE_TRY_AGAIN_LATER, "try again later")
        return False

    async def _refuse(
        self, code: ErrorCode, message: str, close_code: int, ref: str | None
    ) -> bool:
        self.state.metrics.auth_failures.labels(code.value).inc()
        log.info("validator refused: %s (%s)", message, code.value)
        with contextlib.suppress(SessionClosed):
            await self.error(code, message, ref)
        reason = f"{code.value}: {message}" if close_code == CLOSE_INCOMPATIBLE else code.value
        await self.close(close_code, reason)
        return False

    async def _authenticate(self) -> bool:
        s = self.settings
        nonce = secrets.token_hex(32)
        expires = datetime.now(UTC) + timedelta(seconds=s.auth_timeout_s)
        async with self.state.engine.begin() as conn:
            await repo_admin.issue_nonce(conn, nonce, expires)
        await self.send(AuthChallenge(nonce=nonce, backend_version=__version__, expires_at=expires))
        try:
            raw = await self._receive(s.auth_timeout_s)
        except TimeoutError:
            return await self._refuse(
                ErrorCode.AUTH_EXPIRED,
                "no auth_response before the challenge expired",
                CLOSE_AUTH_FAILED,
                None,
            )
        try:
            message = parse_validator_message(raw)
        except ProtocolError as exc:
            version = runtimes.peek_protocol_version(raw)
            problem = runtimes.protocol_problem(version) if version is not None else None
            if problem:  # a peer of another protocol: say so, not "invalid message"
                return await self._refuse(
                    ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, exc.message_id
                )
            return await self._refuse(
                ErrorCode.AUTH_REQUIRED,
                f"expected auth_response: {exc.message}",
                CLOSE_AUTH_FAILED,
                exc.message_id,
            )
        if isinstance(message, AuthResponse) and (
            problem := runtimes.protocol_problem(message.protocol_version)
        ):
            return await self._refuse(
                ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, message.id
            )
        if not isinstance(message, AuthResponse):
            return await self._refuse(
                ErrorCode.AUTH_REQUIRED,
                f"expected auth_response, got {message.type}",
                CLOSE_AUTH_FAILED,
                message.id,
            )
        if message.nonce != nonce:
            return await self._refuse(
                ErrorCode.AUTH_FAILED,
                "nonce is not the one issued to this connection",
                CLOSE_AUTH_FAILED,
                message.id,
            )
        async with self.state.engine.begin() as conn:
            outcome = await repo_admin.consume_nonce(conn, nonce)
        if outcome != "ok":
            code = ErrorCode.AUTH_EXPIRED if outcome == "expired" else ErrorCode.AUTH_FAILED
            return await self._refuse(code, f"challenge {outcome}", CLOSE_AUTH_FAILED, message.id)
        if not self.state.chain.verify_signature(
            message.hotkey, message.signed_payload(), message.signature
        ):
            return await self._refuse(
                ErrorCode.AUTH_FAILED,
                "signature does not verify for this hotkey",
                CLOSE_AUTH_FAILED,
                message.id,
            )

        def permitted(neuron: Any) -> bool:
            return neuron is not None and (
                neuron.validator_permit or neuron.stake >= s.min_validator_stake
            )

        metagraph = await self.state.metagraph()
        neuron = metagraph.by_hotkey(message.hotkey)
        if not permitted(neuron):  # the cached metagraph may predate a registration
            metagraph = await self.state.metagraph(fresh=True)
            neuron = metagraph.by_hotkey(message.hotkey)
        if neuron is None:
            return await self._refuse(
                ErrorCode.NOT_PERMITTED,
                f"hotkey is not registered on subnet {metagraph.netuid}",
                CLOSE_NOT_PERMITTED,
                message.id,
            )
        if not permitted(neuron):
            return await self._refuse(
                ErrorCode.NOT_PERMITTED,
                f"hotkey has no validator permit and stake {neuron.stake} < "
                f"{s.min_validator_stake}",
                CLOSE_NOT_PERMITTED,
                message.id,
            )
        async with self.state.engine.connect() as conn:
            in_use = runtimes.series_of(
                await repo_competitions.list_competitions(conn, active=True)
            )
        problem = runtimes.check_handshake(message, self._policy(), in_use)
        if problem:
            return await self._refuse(
                ErrorCode.UNSUPPORTED_VERSION, problem, CLOSE_INCOMPATIBLE, message.id
            )
        self.hotkey, self.uid = message.hotkey, neuron.uid
        previous = self.state.hub.sessions.get(self.hotkey)
        if previous is not None:
            await previous.close(CLOSE_REPLACED, "replaced by a newer session")
        self.state.hub.sessions[self.hotkey] = self
        self.state.metrics.validators_connected.set(len(self.state.hub.sessions))
        async with self.state.engine.begin() as conn:
            await repo_validators.connected(
                conn,
                hotkey=self.hotkey,
                uid=neuron.uid,
                session_id=self.session_id,
                replica_id=s.replica_id,
                version=message.validator_version,
                lite=message.lite,
                runtime=message.runtime.model_dump(mode="json") if message.runtime else None,
            )
            latest = await repo_scoring.latest_weights(conn)
            if latest is not None:
                await repo_scoring.enqueue(
                    conn,
                    hotkey=self.hotkey,
                    message_id=latest["weights_id"],
                    type_="set_weights",
                    payload=set_weights_payload(latest),
                    reset=True,
                )
            await events.emit(
                conn,
                "validator_connected",
                validator_hotkey=self.hotkey,
                uid=neuron.uid,
                lite=message.lite,
            )
        await self.send(
            AuthOk(
                hotkey=self.hotkey,
                uid=neuron.uid,
                heartbeat_interval_s=s.heartbeat_interval_s,
                session_id=self.session_id,
            )
        )
        self.state.scheduler_wake.set()
        log.info("validator %s (uid %s) connected", self.hotkey, neuron.uid)
        return True

    def _policy(self) -> runtimes.RuntimePolicy:
        return runtimes.RuntimePolicy.from_setting(self.settings.accepted_simulators)

    async def _serve(self) -> None:
        self.wake.set()
        helpers = [
            asyncio.create_task(self._sender(), name=f"ws-sender-{self.hotkey}"),
            asyncio.create_task(self._ingester(), name=f"ws-ingester-{self.hotkey}"),
        ]
        try:
            await self._reader()
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, SessionClosed):
                    await task

    async def _cleanup(self) -> None:
        if self.hotkey is None:
            await self.close(CLOSE_AUTH_FAILED, "not authenticated")
            return
        if self.state.hub.sessions.get(self.hotkey) is self:
            del self.state.hub.sessions[self.hotkey]
        self.state.metrics.validators_connected.set(len(self.state.hub.sessions))
        await self.close(CLOSE_GOING_AWAY, "session ended")
        try:
            async with self.state.engine.begin() as conn:
                if await repo_validators.disconnected(
                    conn, hotkey=self.hotkey, session_id=self.session_id
                ):
                    await events.emit(
                        conn,
                        "validator_disconnected",
                        validator_hotkey=self.hotkey,
                        uid=self.uid,
                        reason=self.close_reason,
                    )
        except (SQLAlchemyError, OSError):
            log.warning("could not record disconnect of %s", self.hotkey, exc_info=True)
        log.info("validator %s disconnected", self.hotkey)

    # ------------------------------------------------------------ sending

    async def _sender(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=5.0)
            self.wake.clear()
            try:
                await self._send_pending()
            except (SQLAlchemyError, OSError) as exc:  # retried at the next wake-up
                log.warning("sending pending work to %s failed: %s", self.hotkey, exc)

    async def _send_pending(self) -> None:
        assert self.hotkey is not None
        async with self.state.engine.connect() as conn:
            jobs = await repo_jobs.pending_for_validator(conn, self.hotkey)
            outbox = await repo_scoring.pending_messages(conn, self.hotkey)
        sent: list[str] = []
        for row in jobs:
            if row["message_id"] in self.sent:
                continue
            self.sent.add(row["message_id"])
            try:
                seed = rounds.job_seed(  # an agent re-run audit: the audited one's seed
                    self.state.settings, row["round_id"], row["audit_of_validator"] or self.hotkey
                )
                job = _eval_job(row, seed)
            except ValidationError as exc:  # cannot happen for verified submissions
                log.error("job %s cannot be expressed as eval_job: %s", row["job_id"], exc)
                continue
            await self.send(job)
            sent.append(row["message_id"])
        for row in outbox:
            key = f"outbox:{row['message_id']}"
            if key in self.sent:
                continue
            self.sent.add(key)
            if row["type"] == "set_weights":
                await self.send(SetWeights.model_validate(row["payload"]))
            elif row["type"] == "cancel_job":
                await self.send(CancelJob.model_validate(row["payload"]))
        if sent:
            async with self.state.engine.begin() as conn:
                await repo_jobs.mark_sent(conn, sent)

    # ------------------------------------------------------------ receiving

    async def _reader(self) -> None:
        timeout = self.settings.heartbeat_timeout_s
        while True:
            try:
                raw = await self._receive(timeout)
            except TimeoutError:
                with contextlib.suppress(SessionClosed):
                    await self.error(ErrorCode.DEADLINE_EXCEEDED, "heartbeat timeout")
                await self.close(CLOSE_TIMEOUT, "heartbeat timeout")
                return
            await self._handle(raw)

    async def _bad_frame(
        self, code: ErrorCode, message: str, ref: str | None, *, nack: bool
    ) -> None:
        self.bad_frames += 1
        self.state.metrics.ws_messages.labels("invalid", code.value).inc()
        if nack and _ref(ref):
            await self.send(Ack.reject(str(ref), code, message[:4000]))
        else:
            await self.error(code, message, ref)
        if self.bad_frames > self.settings.max_bad_frames:
            await self.close(CLOSE_ABUSIVE, "too many invalid frames")
            raise SessionClosed

    async def _handle(self, raw: str | bytes) -> None:
        try:
            message = parse_validator_message(raw)
        except ProtocolError as exc:
            await self._bad_frame(
                exc.code,
                exc.message,
                exc.message_id,
                nack=exc.message_type in ("job_status", "eval_result", "episode", "episode_steps"),
            )
            return
        match message:
            case Heartbeat():
                await self._on_heartbeat(message)
            case Ack():
                await self._on_ack(message)
            case JobStatus() | EvalResult() | Episode() | EpisodeSteps():
                # bounded: when storage falls behind, the reader stops reading (TCP
                # backpressure on the validator)
                await self.inbox.put((message, raw))
                return
            case ErrorMessage():
                log.info(
                    "validator %s reported error %s: %s", self.hotkey, message.code, message.message
                )
            case _:
                await self._bad_frame(
                    ErrorCode.UNEXPECTED_MESSAGE,
                    f"{message.type} is not accepted from a validator in this session",
                    message.id,
                    nack=False,
                )
                return

    async def _on_heartbeat(self, message: Heartbeat) -> None:
        assert self.hotkey is not None
        self.state.metrics.ws_messages.labels("heartbeat", "ok").inc()
        async with self.state.engine.begin() as conn:
            await repo_validators.seen(
                conn,
                hotkey=self.hotkey,
                queue_depth=message.queue_depth,
                jobs_in_flight=message.jobs_in_flight,
            )

    async def _on_ack(self, message: Ack) -> None:
        assert self.hotkey is not None
        lease = self.settings.lease_s
        async with self.state.engine.begin() as conn:
            if message.ok:
                job_id = await repo_jobs.ack_assignment(conn, message.ack_id, self.hotkey, lease)
            else:
                # the validator will not run it (e.g. lite): let the scheduler place it
                job_id = await repo_jobs.refuse_assignment(conn, message.ack_id, self.hotkey)
            if job_id is None and not await repo_scoring.ack_message(
                conn, self.hotkey, message.ack_id
            ):
                log.debug("ack of unknown message %s from %s", message.ack_id, self.hotkey)
        if not message.ok:
            log.warning(
                "validator %s refused %s: %s %s",
                self.hotkey,
                message.ack_id,
                message.error_code,
                message.detail,
            )
            self.state.scheduler_wake.set()
        self.state.metrics.ws_messages.labels("ack", "ok" if message.ok else "refused").inc()

    async def _ingester(self) -> None:
        """Store queued messages, several per transaction (group commit), ack in order."""
        try:
            while True:
                batch = [await self.inbox.get()]
                while len(batch) < INGEST_BATCH and not self.inbox.empty():
                    batch.append(self.inbox.get_nowait())
                await self._store(batch)
        except SessionClosed:
            return
        except Exception:
            log.exception("ingestion failed for %s", self.hotkey)
            await self.close(CLOSE_INTERNAL, "internal error")

    async def _store(self, batch: list[tuple[Stored, str | bytes]]) -> None:
        assert self.hotkey is not None
        s = self.settings
        started = time.perf_counter()
        messages = [message for message, _ in batch]
        policy = self._policy()
        refused = {
            m.id: problem
            for m in messages
            if isinstance(m, EvalResult)
            and m.runtime is not None
            and (problem := policy.problem(m.runtime))
        }
        try:
            async with self.state.ingest_slots, self.state.engine.begin() as conn:
                outcomes: dict[int, str | Verdict] = {
                    i: "refused_runtime"
                    if m.id in refused
                    else await ingest(conn, self.hotkey, m, s)
                    for i, m in enumerate(messages)
                    if not isinstance(m, EpisodeSteps)
                }
                # the bulk of the traffic, all in one statement
                steps = [
                    (i, m, raw) for i, (m, raw) in enumerate(batch) if isinstance(m, EpisodeSteps)
                ]
                if steps:
                    stored = await ingest_steps(conn, self.hotkey, [(m, r) for _, m, r in steps], s)
                    outcomes.update(zip((i for i, _, _ in steps), stored, strict=True))
        except (SQLAlchemyError, OSError) as exc:
            log.warning("storing %d messages from %s failed: %s", len(batch), self.hotkey, exc)
            for message in messages:
                self.state.metrics.ws_messages.labels(message.type, "unavailable").inc()
                await self.error(
                    ErrorCode.UNAVAILABLE, "could not store the message; resend later", message.id
                )
            return
        self.state.metrics.ingest_seconds.observe(time.perf_counter() - started)
        for i, message in enumerate(messages):
            outcome = outcomes[i]
            if isinstance(outcome, Verdict):  # not stored: a check or the standing refused it
                self.state.metrics.ws_messages.labels(message.type, outcome.outcome).inc()
                await self.send(outcome.ack)
                continue
            self.state.metrics.ws_messages.labels(message.type, outcome).inc()
            if outcome in ("stored", "duplicate"):
                await self.send(Ack.of(message))
                if outcome == "stored" and isinstance(message, EvalResult):
                    self.state.scheduler_wake.set()
            elif outcome == "unknown_job":
                await self.send(
                    Ack.reject(message.id, ErrorCode.UNKNOWN_JOB, f"no job {message.job_id}")
                )
            elif outcome == "refused_runtime":
                await self.send(
                    Ack.reject(
                        message.id,
                        ErrorCode.UNSUPPORTED_VERSION,
                        f"result of job {message.job_id}: evaluator runtime refused: "
                        f"{refused[message.id]}",
                    )
                )


# ---------------------------------------------------------------- ingestion


Stored = JobStatus | EvalResult | Episode | EpisodeSteps
"""Messages a validator sends that are stored (upserted by natural key) and acked."""


async def ingest_steps(
    conn: Any, hotkey: str, batches: list[tuple[EpisodeSteps, str | bytes]], settings: Settings
) -> list[str | Verdict]:
    """Store step batches in one statement (the hot path of ingestion): an outcome each,
    as :func:`ingest`; who sends them is vetted once per job. Each batch's samples are
    stored verbatim from its frame (already validated by the parser), so they are never
    serialised again."""
    verdicts: dict[str, str | Verdict | None] = {}
    for message, _ in batches:
        if message.job_id not in verdicts:
            job = await repo_jobs.get_job(conn, message.job_id)
            if job is None:
                verdicts[message.job_id] = "unknown_job"
                continue
            assignment = await repo_jobs.assignment_for(conn, message.job_id, hotkey)
            verdicts[message.job_id] = await vet(conn, settings, hotkey, job, assignment, message)
    rows = [
        dict(
            job_id=m.job_id,
            validator_hotkey=hotkey,
            episode_index=m.episode_index,
            batch_index=m.batch_index,
            first_step=m.samples[0].step if m.samples else 0,
            n_samples=len(m.samples),
            **_samples_source(m, raw.decode() if isinstance(raw, bytes) else raw),
        )
        for m, raw in batches
        if verdicts[m.job_id] is None
    ]
    new = await repo_ingest.add_step_batches(conn, rows) if rows else set()
    outcomes: list[str | Verdict] = []
    for m, _ in batches:
        verdict = verdicts[m.job_id]
        key = (m.job_id, m.episode_index, m.batch_index)
        if isinstance(verdict, Verdict):  # the job's verdict, answering this message
            assert verdict.ack.error_code is not None
            ack = Ack.reject(m.id, verdict.ack.error_code, verdict.ack.detail)
            outcomes.append(Verdict(verdict.outcome, ack))
        elif verdict is not None:
            outcomes.append(verdict)
        elif key in new:
            new.discard(key)  # a batch sent twice in one go is stored once
            outcomes.append("stored")
        else:
            outcomes.append("duplicate")
    return outcomes


def _samples_source(message: EpisodeSteps, frame: str) -> dict[str, str]:
    """Where PostgreSQL takes a batch's samples from: the frame itself (its ``samples``
    member, verbatim), unless the frame has ``\\u`` escapes — PostgreSQL's JSON functions
    refuse some (``\\u0000``, lone surrogates) that plain JSON storage accepts — then the
    samples serialised again."""
    if "\\u" in frame:
        return {"samples_json": _SAMPLES.dump_json(message.samples).decode()}
    return {"frame": frame}


async def ingest(
    conn: Any,
    hotkey: str,
    message: JobStatus | EvalResult | Episode,
    settings: Settings,
) -> str | Verdict:
    """Store one validator message: 'stored', 'duplicate', 'unknown_job', or the
    :class:`~.vetting.Verdict` of a report that may not be stored (not assigned, suspended,
    failed a cross-check, result held for its episodes)."""
    lease_s, max_attempts = settings.lease_s, settings.max_attempts
    job = await repo_jobs.get_job(conn, message.job_id)
    if job is None:
        return "unknown_job"
    assignment = await repo_jobs.assignment_for(conn, message.job_id, hotkey)
    verdict = await vet(conn, settings, hotkey, job, assignment, message)
    if verdict is not None:
        return verdict
    assert assignment is not None
    if isinstance(message, EvalResult):
        message = apply_coverage_rule(message, job, settings.min_scored_share)
    context = {
        "job_id": message.job_id,
        "validator_hotkey": hotkey,
        "competition_id": job["competition_id"],
        "miner_hotkey": job["miner_hotkey"],
        "submission_id": str(job["submission_id"]),
    }
    match message:
        case JobStatus():
            new = await repo_ingest.add_status(
                conn,
                dict(
                    job_id=message.job_id,
                    validator_hotkey=hotkey,
                    seq=message.seq,
                    state=message.state.value,
                    detail=storable(message.detail),
                    episodes_done=message.episodes_done,
                    episodes_total=message.episodes_total,
                    at=message.at,
                ),
            )
            if new:
                running = message.state in (JobState.STARTING, JobState.RUNNING)
                await repo_jobs.touch_assignment(
                    conn,
                    message.job_id,
                    hotkey,
                    state="running" if running else None,
                    lease_s=lease_s,
                )
                detail = storable(message.detail)
                if detail is not None:  # the job's error, which can quote the agent
                    _, until = await repo_rounds.seal_of_job(conn, message.job_id)
                    detail = embargo.sealed_text(detail, None, until)
                await events.emit(
                    conn,
                    "job_status",
                    **context,
                    state=message.state.value,
                    episodes_done=message.episodes_done,
                    episodes_total=message.episodes_total,
                    detail=detail,
                )
        case EvalResult() if (
            message.state is not JobState.COMPLETED
            and message.failure_cause is not None
            and message.failure_cause.is_retryable
            and assignment["attempt"] < max_attempts
            and assignment["state"] in repo_jobs.ACTIVE
        ):
            # an infrastructure fault is never scored: offer the job again (to another
            # validator first), up to max_attempts
            await repo_jobs.retry_assignment(conn, message.job_id, hotkey)
            await events.emit(
                conn,
                "evaluation_completed",
                **context,
                state=message.state.value,
                job_state=None,
            )
            return "stored"
        case EvalResult():
            overall = message.metrics.overall if message.metrics else None
            new = await repo_ingest.add_result(
                conn,
                dict(
                    job_id=message.job_id,
                    validator_hotkey=hotkey,
                    state=message.state.value,
                    metrics=message.metrics.model_dump(mode="json") if message.metrics else None,
                    success_rate=overall.success_rate if overall else None,
                    episodes=overall.scored_episodes if overall else None,
                    successes=overall.successes if overall else None,
                    error=storable(message.error)
                    or (message.failure_cause.value if message.failure_cause else None),
                    failure_cause=message.failure_cause.value if message.failure_cause else None,
                    started_at=message.started_at,
                    finished_at=message.finished_at,
                    evaluator_version=storable(message.evaluator_version),
                    runtime=message.runtime.model_dump(mode="json") if message.runtime else None,
                    runtime_key=message.runtime.key if message.runtime else None,
                ),
            )
            if new:
                done = "completed" if message.state is JobState.COMPLETED else "failed"
                await repo_jobs.finish_assignment(conn, message.job_id, hotkey, done)
                settled = await repo_jobs.settle_job(conn, message.job_id)
                if settled is not None:
                    await repo_jobs.settle_submission(conn, job["submission_id"])
                await events.emit(
                    conn,
                    "evaluation_completed",
                    **context,
                    state=message.state.value,
                    success_rate=overall.success_rate if overall else None,
                    job_state=settled,
                )
        case Episode() if await repo_ingest.has_result(conn, message.job_id, hotkey):
            new = False  # the job's report is settled: its episodes are frozen
        case Episode():
            new = await repo_ingest.put_episode(
                conn,
                dict(
                    job_id=message.job_id,
                    validator_hotkey=hotkey,
                    episode_index=message.episode_index,
                    task=message.task,
                    task_episode=message.task_episode,
                    seed=message.seed,
                    success=message.success,
                    total_reward=message.total_reward,
                    steps=message.steps,
                    steps_to_success=message.steps_to_success,
                    terminated=message.terminated,
                    truncated=message.truncated,
                    failure_cause=message.failure_cause.value if message.failure_cause else None,
                    failure_detail=storable(message.failure_detail),
                    actions_ref=storable(message.actions_ref),
                    action_fingerprint=message.action_fingerprint,
                    media_refs=[storable(ref) for ref in message.media_refs],
                    duration_s=message.duration_s,
                ),
            )
            if new:
                _, until = await repo_rounds.seal_of_job(conn, message.job_id)
                await events.emit(
                    conn,
                    "episode_completed",
                    **context,
                    episode_index=message.episode_index,
                    task=message.task,
                    success=message.success,
                    total_reward=message.total_reward,
                    steps=message.steps,
                    failure_cause=message.failure_cause,
                    media_refs=list(message.media_refs),
                    sealed_until=until,
                )
    return "stored" if new else "duplicate"


@overload
def storable(text: str) -> str: ...
@overload
def storable(text: None) -> None: ...
def storable(text: str | None) -> str | None:
    """Free text from a validator (often an agent's own crash output, so miner-controlled)
    as PostgreSQL text can hold it: NUL characters become U+FFFD. Refusing the message
    instead would block the validator's outbox on it forever."""
    return None if text is None else text.replace("\x00", "\ufffd")


def _eval_job(row: dict[str, Any], seed: int) -> EvalJob:
    """The eval_job frame of a pending assignment; ``seed``: the validator's round seed."""
    from kinitro.protocol.common import ArtifactRef, BenchmarkSpec

    return EvalJob(
        id=row["message_id"],
        job_id=row["job_id"],
        submission_id=str(row["submission_id"]),
        competition_id=row["competition_id"],
        miner_hotkey=row["miner_hotkey"],
        miner_uid=row["miner_uid"],
        artifact=ArtifactRef(
            registry=row["artifact_registry"],
            repo=row["artifact_repo"],
            revision=row["artifact_revision"],
            sha256=row["artifact_sha256"],
            size_bytes=row["artifact_size"] or 0,
        ),
        benchmark=BenchmarkSpec.model_validate(row["benchmark"]),
        round_id=row["round_id"],
        seed=seed,
        deadline_s=row["deadline_s"],
        attempt=row["attempt"],
        created_at=row["created_at"],
    )


async def validator_endpoint(ws: WebSocket, state: BackendState) -> None:
    await ws.accept()
    await ValidatorSession(ws, state).run()
