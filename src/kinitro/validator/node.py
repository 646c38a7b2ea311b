"""The validator node: one WebSocket session at a time to the backend, forever.

``ValidatorNode.run()`` loops: connect → answer the challenge with a hotkey signature →
``auth_ok`` → serve the session (reader, heartbeats, outbox sender, status updates) until
the connection drops → wait a jittered backoff → reconnect. The weight setter runs beside
it, independent of the connection.

Reader rules (the backend is a remote peer; nothing it sends may crash us):

* A frame that does not parse is logged and answered with ``ack(ok=False)`` (when its id
  is readable) or an ``error``; the session continues.
* ``eval_job``: stored in the validator DB and pgqueuer in one transaction, *then* acked.
  In lite mode it is refused with ``unexpected_message``.
* ``set_weights``: stored, then acked; the weight setter is woken.
* ``cancel_job``: the job is marked ``cancelled`` in the validator DB, then acked; the
  evaluator skips it, or stops it within seconds if it is running.
* ``ack``: hands the answer to the outbox sender.
* A database failure ends the session without acking (the backend redelivers unacked
  jobs on the next connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from kinitro import __version__
from kinitro.chain.signing import sign_message
from kinitro.core.runtime import local_runtime
from kinitro.jobqueue import ValidatorDatabase
from kinitro.protocol.common import PROTOCOL_VERSION, ErrorCode
from kinitro.protocol.errors import ProtocolError
from kinitro.protocol.validator_ws import (
    CLOSE_INCOMPATIBLE,
    Ack,
    AuthChallenge,
    AuthOk,
    AuthResponse,
    CancelJob,
    ErrorMessage,
    EvalJob,
    Heartbeat,
    SetWeights,
    auth_payload,
    dump_message,
    parse_validator_message,
)
from kinitro.protocol.views import WeightSet
from kinitro.validator.backoff import Backoff
from kinitro.validator.errors import AuthenticationError, IncompatibleError, SessionError
from kinitro.validator.outbox import OutboxSender
from kinitro.validator.weights import WeightSetter

if TYPE_CHECKING:
    from bittensor_wallet import Keypair
    from websockets.asyncio.client import ClientConnection

    from kinitro.validator.settings import Settings

log = logging.getLogger(__name__)

STABLE_SESSION_S = 5.0
"""Only a session that lasted this long resets the reconnect backoff."""


@dataclass(slots=True)
class SessionStats:
    sessions: int = 0
    jobs_received: int = 0
    jobs_duplicate: int = 0
    bad_frames: int = 0
    weights_received: int = 0


@dataclass
class ValidatorNode:
    settings: Settings
    jq: ValidatorDatabase
    hotkey: Keypair
    weight_setter: WeightSetter | None = None
    stats: SessionStats = field(default_factory=SessionStats)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _sender: OutboxSender | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Serve until :meth:`stop`. Never raises for connection or peer problems."""
        backoff = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        setter_task = (
            asyncio.create_task(self.weight_setter.run(), name="weight-setter")
            if self.weight_setter is not None
            else None
        )
        reconnects = 0
        stopped_by: str | None = None
        try:
            while not self._stop.is_set():
                error: str | None = None
                started = time.monotonic()
                try:
                    authenticated = await self._session_until_stopped()
                    if authenticated and time.monotonic() - started > STABLE_SESSION_S:
                        backoff.reset()  # a session that flaps right after auth keeps backing off
                except IncompatibleError as exc:
                    log.error("the backend refuses this validator", extra={"error": str(exc)})
                    stopped_by = f"incompatible: {exc}"
                    raise
                except AuthenticationError as exc:
                    error = f"authentication failed: {exc}"
                    log.error(error)
                except (OSError, TimeoutError, SessionError, ProtocolError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("backend session ended", extra={"error": error})
                except Exception as exc:  # noqa: BLE001 - websockets/DB errors: reconnect
                    error = f"{type(exc).__name__}: {exc}"
                    log.warning("backend session failed", extra={"error": error})
                if self._stop.is_set():
                    break
                reconnects += 1
                delay = backoff.next()
                with contextlib.suppress(Exception):
                    await self.jq.set_connection(
                        "disconnected",
                        backend_url=self.settings.backend_url,
                        last_error=error,
                        reconnects=reconnects,
                        lite=self.settings.lite,
                    )
                log.info("reconnecting", extra={"delay_s": round(delay, 2)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            if setter_task is not None:
                setter_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await setter_task
            with contextlib.suppress(Exception):
                await self.jq.set_connection(
                    "stopped",
                    backend_url=self.settings.backend_url,
                    lite=self.settings.lite,
                    **({"last_error": stopped_by} if stopped_by else {}),
                )

    # ------------------------------------------------------------------ session

    async def _session_until_stopped(self) -> bool:
        """Run one session; a stop request interrupts it even mid-connect or mid-auth."""
        session = asyncio.create_task(self._session(), name="ws-session")
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if not session.done():
            session.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await session
            return False
        return session.result()

    async def _session(self) -> bool:
        """One connection. Returns True if it got past authentication."""

        s = self.settings
        async with connect(
            s.backend_url,
            open_timeout=s.connect_timeout_s,
            ping_interval=s.ping_interval_s or None,
            ping_timeout=s.ping_interval_s or None,
            close_timeout=2,
            max_size=s.max_frame_bytes,
            max_queue=64,
        ) as ws:
            ok = await self._authenticate(ws)
            self.stats.sessions += 1
            log.info(
                "authenticated with backend",
                extra={"uid": ok.uid, "session_id": ok.session_id, "lite": s.lite},
            )
            await self.jq.set_connection(
                "connected",
                backend_url=s.backend_url,
                hotkey=self.hotkey.ss58_address,
                uid=ok.uid,
                session_id=ok.session_id,
                lite=s.lite,
                connected_at=datetime.now(UTC),
                last_seen_at=datetime.now(UTC),
                last_error=None,
            )
            await self._fetch_latest_weights()
            await self._serve(ws, ok)
            return True

    async def _authenticate(self, ws: ClientConnection) -> AuthOk:
        try:
            return await self._handshake(ws)
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_INCOMPATIBLE:
                raise IncompatibleError(exc.rcvd.reason) from None
            raise

    async def _handshake(self, ws: ClientConnection) -> AuthOk:
        s = self.settings
        try:
            first = parse_validator_message(await asyncio.wait_for(ws.recv(), s.auth_timeout_s))
        except TimeoutError:
            raise AuthenticationError("backend sent no auth_challenge") from None
        if isinstance(first, ErrorMessage):
            raise _refusal(first)
        if not isinstance(first, AuthChallenge):
            raise SessionError(f"expected auth_challenge, got {first.type}")
        if first.protocol_version != PROTOCOL_VERSION:
            raise IncompatibleError(
                f"backend {first.backend_version} speaks protocol {first.protocol_version}, "
                f"this validator ({__version__}) speaks {PROTOCOL_VERSION}: install the "
                "kinitro release that matches the backend"
            )
        ss58 = self.hotkey.ss58_address
        signature = sign_message(self.hotkey, auth_payload(first.nonce, ss58)).removeprefix("0x")
        await ws.send(
            dump_message(
                AuthResponse(
                    hotkey=ss58,
                    nonce=first.nonce,
                    signature=signature,
                    validator_version=__version__,
                    lite=s.lite,
                    runtime=None if s.lite else local_runtime(),
                )
            )
        )
        try:
            reply = parse_validator_message(await asyncio.wait_for(ws.recv(), s.auth_timeout_s))
        except TimeoutError:
            raise AuthenticationError("backend did not answer auth_response") from None
        if isinstance(reply, ErrorMessage):
            raise _refusal(reply)
        if not isinstance(reply, AuthOk):
            raise SessionError(f"expected auth_ok, got {reply.type}")
        return reply

    async def _serve(self, ws: ClientConnection, ok: AuthOk) -> None:
        s = self.settings
        send_lock = asyncio.Lock()

        async def send(text: str) -> None:
            async with send_lock:
                await ws.send(text)

        sender = OutboxSender(
            self.jq,
            send,
            window=s.outbox_window,
            poll_s=s.outbox_poll_s,
            nack_retry_s=s.nack_retry_s,
            ack_timeout_s=s.ack_timeout_s,
        )
        self._sender = sender
        interval = s.heartbeat_interval_s or ok.heartbeat_interval_s
        listener: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
        try:
            listener = self.jq.outbox_listener(sender.wake)
            await listener.__aenter__()
        except Exception as exc:  # noqa: BLE001 - polling still delivers, only slower
            log.warning("outbox LISTEN unavailable; polling only", extra={"error": str(exc)})
            listener = contextlib.nullcontext()
        tasks = [
            asyncio.create_task(self._reader(ws, sender, send), name="ws-reader"),
            asyncio.create_task(self._heartbeats(send, interval), name="ws-heartbeat"),
            asyncio.create_task(sender.run(), name="outbox-sender"),
            asyncio.create_task(self._stop.wait(), name="stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._sender = None
            with contextlib.suppress(Exception):
                await listener.__aexit__(None, None, None)
            with contextlib.suppress(Exception):
                await sender.flush()  # persist acks that arrived before the drop
        for task in done:
            if task.get_name() != "stop" and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _reader(self, ws: ClientConnection, sender: OutboxSender, send: Any) -> None:
        async for frame in ws:
            try:
                message = parse_validator_message(frame)
            except ProtocolError as exc:
                self.stats.bad_frames += 1
                log.warning(
                    "bad frame from backend",
                    extra={"code": str(exc.code), "error": str(exc)[:300]},
                )
                await send(self._reject_frame(exc))
                continue
            match message:
                case Ack():
                    sender.on_ack(
                        message.ack_id,
                        message.ok,
                        None if message.error_code is None else str(message.error_code),
                        message.detail,
                    )
                case EvalJob():
                    await self._on_job(message, send)
                case SetWeights():
                    await self._on_weights(message, send)
                case CancelJob():
                    await self._on_cancel(message, send)
                case Heartbeat():
                    pass
                case ErrorMessage():
                    log.warning(
                        "backend error",
                        extra={"code": str(message.code), "detail": message.message[:300]},
                    )
                    if message.ref_id is not None and message.ref_id in sender.inflight:
                        sender.on_ack(message.ref_id, False, str(message.code), message.message)
                case _:
                    await send(
                        dump_message(
                            ErrorMessage(
                                code=ErrorCode.UNEXPECTED_MESSAGE,
                                message=f"unexpected {message.type} after authentication",
                                ref_id=message.id,
                            )
                        )
                    )

    @staticmethod
    def _reject_frame(exc: ProtocolError) -> str:
        message_id = getattr(exc, "message_id", None)
        detail = str(exc)[:4000]
        if message_id:
            with contextlib.suppress(Exception):
                return dump_message(Ack.reject(message_id, exc.code, detail))
        return dump_message(ErrorMessage(code=exc.code, message=detail))

    async def _on_job(self, job: EvalJob, send: Any) -> None:
        if self.settings.lite:
            await send(
                dump_message(
                    Ack.reject(
                        job.id, ErrorCode.UNEXPECTED_MESSAGE, "lite validator: no evaluation"
                    )
                )
            )
            return
        outcome = await self.jq.enqueue_job(job)  # DB failure → session ends, no ack
        self.stats.jobs_received += 1
        if outcome.value == "duplicate":
            self.stats.jobs_duplicate += 1
        log.info("job received", extra={"job_id": job.job_id, "outcome": outcome.value})
        await send(dump_message(Ack.of(job)))

    async def _on_cancel(self, message: CancelJob, send: Any) -> None:
        cancelled = await self.jq.cancel_job(message.job_id, message.reason)
        log.info(
            "job cancelled by the backend",
            extra={"job_id": message.job_id, "reason": message.reason, "was_live": cancelled},
        )
        await send(dump_message(Ack.of(message)))

    async def _on_weights(self, message: SetWeights, send: Any) -> None:
        new = await self.jq.record_weights(message)
        self.stats.weights_received += 1
        await send(dump_message(Ack.of(message)))
        if new and self.weight_setter is not None:
            self.weight_setter.wake()

    async def _heartbeats(self, send: Any, interval: float) -> None:
        while True:
            depths = await self.jq.depths()
            await send(
                dump_message(
                    Heartbeat(
                        sent_at=datetime.now(UTC),
                        queue_depth=depths.jobs_queued,
                        jobs_in_flight=depths.jobs_in_flight,
                    )
                )
            )
            await self.jq.set_connection(
                "connected",
                backend_url=self.settings.backend_url,
                last_seen_at=datetime.now(UTC),
                lite=self.settings.lite,
            )
            await asyncio.sleep(interval)

    async def _fetch_latest_weights(self) -> None:
        """After (re)connecting, ask the REST API for the latest weights we may have missed
        (parsed with the backend's own view of them, :class:`WeightSet`)."""
        url = latest_weights_url(self.settings.backend_url)
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(url)
            if response.status_code != 200:
                return
            latest = WeightSet.model_validate_json(response.content)
            message = SetWeights(
                weights_id=latest.weights_id,
                netuid=latest.netuid,
                weights={int(k): v for k, v in latest.weights.items()},
                computed_at=latest.computed_at,
            )
        except Exception as exc:  # noqa: BLE001 - optional catch-up; the WS also delivers
            log.info("could not fetch latest weights", extra={"error": str(exc)[:200]})
            return
        if await self.jq.record_weights(message) and self.weight_setter is not None:
            log.info("caught up latest weights", extra={"weights_id": message.weights_id})
            self.weight_setter.wake()


def _refusal(error: ErrorMessage) -> AuthenticationError:
    text = f"{error.code}: {error.message}"
    if error.code is ErrorCode.UNSUPPORTED_VERSION:
        return IncompatibleError(text)
    return AuthenticationError(text)


def latest_weights_url(backend_ws_url: str) -> str:
    """``ws://host:port/ws/validator`` → ``http://host:port/api/v1/weights/latest``."""
    parts = urlsplit(backend_ws_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "/api/v1/weights/latest", "", ""))
