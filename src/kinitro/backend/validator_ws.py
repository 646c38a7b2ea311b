"""``/ws/validator``: the socket of a validator session (decode, dispatch, reply).

This module keeps only the transport; each decision lives in its own module:

* sign-in — the backend sends ``auth_challenge`` (a single-use nonce stored in the DB),
  gathers what it needs to know about the ``auth_response`` (:mod:`.validator_signin`)
  and :func:`~.validator_auth.authorize` decides (a pure function); refusals get a typed
  ``error`` and the socket is closed with the reason. Admitted, the session joins the
  replica's :class:`~.validator_hub.ValidatorHub` and its validator is recorded present
  (:mod:`.validator_presence`).
* **reader** — frames are parsed once and dispatched with ``match``; state-changing
  reports go to :mod:`.ingest`, whose :class:`~.ingest.IngestOutcome` or
  :class:`~.vetting.Verdict` this module turns into an ``ack`` (:func:`reply`; a
  duplicate is acked again, never fatal). A bad frame gets a typed ``error`` / negative
  ``ack`` and the socket survives, unless the peer sends more than ``max_bad_frames`` of
  them. Reports are stored one batch at a time per socket and through a process-wide
  pool of ``ingest_slots``: a fast sender is slowed down by TCP (backpressure) instead of
  growing our memory. No frame for ``heartbeat_timeout_s`` closes the session.
* **sender** — every message waiting for this validator's ack (:mod:`.validator_outgoing`:
  job assignments, ``set_weights``, ``cancel_job``) is sent once per session: on connect
  (replay after a reconnect) and whenever the scheduler wakes it (NOTIFY, so it works
  across replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import TYPE_CHECKING

from fastapi import WebSocket, WebSocketDisconnect
from sqlalchemy.exc import SQLAlchemyError

from kinitro.backend import runtimes, validator_outgoing, validator_presence, validator_signin
from kinitro.backend.errors import reply_ref
from kinitro.backend.ingest import Ingested, IngestOutcome, Report, Verdict, ingest_batch
from kinitro.backend.limits import client_address
from kinitro.backend.validator_auth import Admitted, Refused, authorize, read_response
from kinitro.protocol.common import ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.validator_ws import (
    CLOSE_ABUSIVE,
    CLOSE_AUTH_FAILED,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL,
    CLOSE_TIMEOUT,
    CLOSE_TRY_AGAIN_LATER,
    Ack,
    AuthOk,
    Episode,
    EpisodeSteps,
    ErrorMessage,
    EvalResult,
    Heartbeat,
    JobStatus,
    dump_message,
    parse_validator_message,
)

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.protocol.validator_ws import ValidatorMessage

log = logging.getLogger(__name__)

INBOX_SIZE = 64  # parsed messages waiting to be stored, per socket
INGEST_BATCH = 32  # messages stored per transaction at most


class SessionClosed(Exception):
    """Internal: the session ends (closed by the peer or by us)."""


def reply(message: Report, outcome: Ingested) -> Ack:
    """The ack answering a stored report: positive when it is stored (now or before),
    else negative with the verdict's code and detail."""
    if isinstance(outcome, Verdict):
        return Ack.reject(message.id, outcome.code, outcome.detail)
    return Ack.of(message)


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
        self.inbox: asyncio.Queue[tuple[Report, str | bytes]] = asyncio.Queue(maxsize=INBOX_SIZE)
        self.close_reason = "connection closed"

    # ------------------------------------------------------------ plumbing

    async def send(self, message: ValidatorMessage) -> None:
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
        await self.send(ErrorMessage(code=code, message=message[:4000], ref_id=reply_ref(ref_id)))

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

    async def _refuse(self, refused: Refused) -> bool:
        self.state.metrics.auth_failures.labels(refused.code.value).inc()
        log.info("validator refused: %s (%s)", refused.message, refused.code.value)
        with contextlib.suppress(SessionClosed):
            await self.error(refused.code, refused.message, refused.ref)
        await self.close(refused.close_code, refused.close_reason)
        return False

    async def _authenticate(self) -> bool:
        s = self.settings
        challenge = await validator_signin.challenge(self.state)
        await self.send(challenge)
        raw: str | bytes | None
        try:
            raw = await self._receive(s.auth_timeout_s)
        except TimeoutError:
            raw = None
        response = read_response(raw)
        if isinstance(response, Refused):
            return await self._refuse(response)
        decision = authorize(
            response,
            await validator_signin.evidence(self.state, response, challenge.nonce),
            min_stake=s.min_validator_stake,
            policy=self._policy(),
        )
        if isinstance(decision, Refused):
            return await self._refuse(decision)
        await self._admit(decision)
        return True

    async def _admit(self, admitted: Admitted) -> None:
        s = self.settings
        self.hotkey, self.uid = admitted.hotkey, admitted.uid
        await self.state.hub.register(self.hotkey, self)
        self.state.metrics.validators_connected.set(len(self.state.hub))
        async with self.state.engine.begin() as conn:
            await validator_presence.connected(
                conn,
                admitted.response,
                uid=admitted.uid,
                session_id=self.session_id,
                replica_id=s.replica_id,
            )
            await validator_outgoing.replay_weights(conn, self.hotkey)
        await self.send(
            AuthOk(
                hotkey=self.hotkey,
                uid=admitted.uid,
                heartbeat_interval_s=s.heartbeat_interval_s,
                session_id=self.session_id,
            )
        )
        self.state.scheduler_wake.set()
        log.info("validator %s (uid %s) connected", self.hotkey, admitted.uid)

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
        self.state.hub.unregister(self.hotkey, self)
        self.state.metrics.validators_connected.set(len(self.state.hub))
        await self.close(CLOSE_GOING_AWAY, "session ended")
        try:
            async with self.state.engine.begin() as conn:
                await validator_presence.disconnected(
                    conn,
                    self.hotkey,
                    uid=self.uid,
                    session_id=self.session_id,
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
        """Send every message waiting for this validator's ack that this session has not
        sent yet (:mod:`.validator_outgoing`)."""
        assert self.hotkey is not None
        async with self.state.engine.connect() as conn:
            pending = await validator_outgoing.pending(conn, self.settings, self.hotkey)
        sent: list[str] = []
        for item in pending:
            if item.key in self.sent:
                continue
            self.sent.add(item.key)
            await self.send(item.message)
            if item.assignment is not None:
                sent.append(item.assignment)
        if sent:
            async with self.state.engine.begin() as conn:
                await validator_outgoing.mark_sent(conn, sent)

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
        if nack and reply_ref(ref):
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
            await validator_presence.seen(conn, self.hotkey, message)

    async def _on_ack(self, message: Ack) -> None:
        assert self.hotkey is not None
        async with self.state.engine.begin() as conn:
            known = await validator_outgoing.acknowledge(
                conn, self.hotkey, message, self.settings.lease_s
            )
        if not known:
            log.debug("ack of unknown message %s from %s", message.ack_id, self.hotkey)
        if not message.ok:
            # the validator will not run it (e.g. lite): let the scheduler place it
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

    async def _store(self, batch: list[tuple[Report, str | bytes]]) -> None:
        """Store a batch in one transaction (:mod:`.ingest`), then answer each message."""
        assert self.hotkey is not None
        started = time.perf_counter()
        try:
            async with self.state.ingest_slots, self.state.engine.begin() as conn:
                outcomes = await ingest_batch(
                    conn, self.hotkey, batch, self.settings, self._policy()
                )
        except (SQLAlchemyError, OSError) as exc:
            log.warning("storing %d messages from %s failed: %s", len(batch), self.hotkey, exc)
            for message, _ in batch:
                self.state.metrics.ws_messages.labels(message.type, "unavailable").inc()
                await self.error(
                    ErrorCode.UNAVAILABLE, "could not store the message; resend later", message.id
                )
            return
        self.state.metrics.ingest_seconds.observe(time.perf_counter() - started)
        for (message, _), outcome in zip(batch, outcomes, strict=True):
            label = outcome.outcome if isinstance(outcome, Verdict) else outcome
            self.state.metrics.ws_messages.labels(message.type, label.value).inc()
            await self.send(reply(message, outcome))
            if outcome is IngestOutcome.STORED and isinstance(message, EvalResult):
                self.state.scheduler_wake.set()


async def validator_endpoint(ws: WebSocket, state: BackendState) -> None:
    await ws.accept()
    await ValidatorSession(ws, state).run()
