"""A scripted backend for validator unit tests: a real WebSocket server on loopback that
speaks the ``/ws/validator`` protocol (challenge, signature check, acks, redelivery of
unacked jobs) and can misbehave on demand (garbage frames, drops mid-frame, nacks,
withheld acks). The acceptance tests use the real backend process instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from kinitro.chain.signing import verify_signature
from kinitro.protocol.common import ErrorCode
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
    auth_payload,
    dump_message,
    parse_validator_message,
)


@dataclass
class ScriptedBackend:
    heartbeat_interval_s: float = 0.5
    ack_outbox: bool = True
    """When False, validator messages are recorded but never acked."""
    nack_code: ErrorCode | None = None
    """Nack every validator message with this code (once per message id)."""
    reject_auth: bool = False
    chaos: random.Random | None = None
    """When set, each validator message risks (``chaos_p`` each): a drop mid-frame, a
    garbage frame first, a retryable nack, or being stored but the connection dying before
    the ack goes out."""
    chaos_p: float = 0.05
    chaos_events: Counter[str] = field(default_factory=Counter)

    server: Server | None = None
    port: int = 0
    connections: int = 0
    authenticated: int = 0
    live: ServerConnection | None = None
    pending: dict[str, EvalJob | SetWeights] = field(default_factory=dict)
    """Backend → validator messages not acked yet: resent on every (re)connect."""
    received: list[Any] = field(default_factory=list)
    """Every validator message after auth, in arrival order (duplicates included)."""
    store: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    """Upserted by natural key — what the backend "has" in effect."""
    heartbeats: list[Heartbeat] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    """Acks / errors the validator sent us (for jobs, weights, garbage)."""
    nacked: set[str] = field(default_factory=set)
    seq_by_job: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/validator"

    async def __aenter__(self) -> ScriptedBackend:
        self.server = await serve(self._handler, "127.0.0.1", self.port or 0, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[index]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)
            self.server = None

    async def restart(self) -> None:
        await self.stop()
        await self.__aenter__()

    # ------------------------------------------------------------------ control

    async def push(self, message: EvalJob | SetWeights | CancelJob) -> None:
        self.pending[message.id] = message
        if self.live is not None:
            with contextlib.suppress(Exception):
                await self.live.send(dump_message(message))

    async def send_raw(self, data: str | bytes) -> None:
        assert self.live is not None
        await self.live.send(data)

    def drop_mid_frame(self) -> None:
        """Start a text frame announcing 256 bytes, send 10, then kill the TCP connection."""
        assert self.live is not None
        transport = self.live.transport
        transport.write(b"\x81\x7e\x01\x00" + b'{"type":"e')
        transport.abort()

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError("condition not reached")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.1))

    def results(self) -> dict[str, EvalResult]:
        return {k[1]: v for k, v in self.store.items() if k[0] == "eval_result"}

    # ------------------------------------------------------------------ server

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        nonce = secrets.token_hex(16)
        await ws.send(
            dump_message(
                AuthChallenge(
                    nonce=nonce,
                    backend_version="scripted",
                    expires_at=datetime.now(UTC) + timedelta(seconds=30),
                )
            )
        )
        reply = parse_validator_message(await ws.recv())
        assert isinstance(reply, AuthResponse)
        valid = reply.nonce == nonce and verify_signature(
            reply.hotkey, auth_payload(nonce, reply.hotkey), reply.signature
        )
        if self.reject_auth or not valid:
            await ws.send(
                dump_message(ErrorMessage(code=ErrorCode.AUTH_FAILED, message="bad signature"))
            )
            await ws.close()
            return
        await ws.send(
            dump_message(
                AuthOk(
                    hotkey=reply.hotkey,
                    uid=1,
                    heartbeat_interval_s=self.heartbeat_interval_s,
                    session_id=f"s{self.connections}",
                )
            )
        )
        self.authenticated += 1
        self.live = ws
        self._changed.set()
        try:
            for message in list(self.pending.values()):
                await ws.send(dump_message(message))
            async for frame in ws:
                await self._on_frame(ws, frame)
        except Exception:  # a dropped validator is normal here
            pass
        finally:
            if self.live is ws:
                self.live = None
            self._changed.set()

    async def _on_frame(self, ws: ServerConnection, frame: str | bytes) -> None:
        message = parse_validator_message(frame)
        match message:
            case Heartbeat():
                self.heartbeats.append(message)
            case Ack():
                self.answers.append(message)
                if message.ok:
                    self.pending.pop(message.ack_id, None)
            case ErrorMessage():
                self.answers.append(message)
            case JobStatus() | EvalResult() | Episode() | EpisodeSteps():
                self.received.append(message)
                if self.chaos is not None and await self._chaos(ws, message):
                    self._changed.set()
                    return
                if self.nack_code is not None and message.id not in self.nacked:
                    self.nacked.add(message.id)
                    await ws.send(dump_message(Ack.reject(message.id, self.nack_code, "test")))
                elif self.ack_outbox:
                    self._upsert(message)
                    await ws.send(dump_message(Ack.of(message)))
            case _:
                raise AssertionError(f"unexpected {message.type}")
        self._changed.set()

    async def _chaos(self, ws: ServerConnection, message: Any) -> bool:
        """Maybe misbehave; True when the message was fully handled here."""
        assert self.chaos is not None
        roll = self.chaos.random() / self.chaos_p
        if roll < 1:
            self.chaos_events["drop_mid_frame"] += 1
            self.drop_mid_frame()
            return True
        if roll < 2:
            self.chaos_events["garbage"] += 1
            await ws.send(self.chaos.choice(["{not json", '{"type":"bogus"}', "\x00" * 10]))
            return False
        if roll < 3:
            self.chaos_events["nack"] += 1
            await ws.send(dump_message(Ack.reject(message.id, ErrorCode.UNAVAILABLE, "busy")))
            return True
        if roll < 4:
            self.chaos_events["stored_then_dropped"] += 1
            self._upsert(message)
            ws.transport.abort()
            return True
        return False

    def _upsert(self, message: Any) -> None:
        match message:
            case JobStatus():
                key: tuple[Any, ...] = ("job_status", message.job_id, message.seq)
                if key not in self.store:
                    self.seq_by_job[message.job_id].append(message.seq)
            case EvalResult():
                key = ("eval_result", message.job_id)
            case Episode():
                key = ("episode", message.job_id, message.episode_index)
            case EpisodeSteps():
                key = ("episode_steps", message.job_id, message.episode_index, message.batch_index)
        self.store[key] = message
