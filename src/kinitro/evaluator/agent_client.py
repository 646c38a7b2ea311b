"""Agent RPC client used by the rollout workers (synchronous: it is the hot loop).

Usage::

    with sandbox.start(bundle_dir) as running:                 # see kinitro.evaluator.sandbox
        with AgentClient.connect(running.endpoint, obs_spec, action_spec) as agent:
            agent.hello()                                      # loads the miner's class
            agent.reset(TaskInfo("reach-v3", "metaworld/MT10-v3", max_steps=500))
            action = agent.act(observation)                    # float32 (4,), validated
            ...
            agent.close()

One persistent connection, increasing request ids, a deadline per call
(:class:`CallTimeouts`). Every failure is an :class:`AgentFailure` whose ``cause`` is the
:class:`~kinitro.protocol.common.FailureCause` the evaluator records (all agent faults):

======================== ============================================ ===================
exception                what happened                                cause
======================== ============================================ ===================
AgentTimeout             no complete answer within the call deadline  agent_timeout
AgentCrashed             connection closed/reset, agent code raised,  agent_crash
                         bundle failed to load
AgentInvalidAction       wrong dtype/shape, NaN/Inf                   invalid_action
AgentProtocolViolation   malformed/oversized frame, unknown type,     protocol_violation
                         wrong request id, unexpected message, an
                         ``error`` naming a slot the request did not
                         have, ``actions`` for another number of
                         slots than the request's
======================== ============================================ ===================

After any failure the client is *broken*: the stream may be out of step, so every later
call raises at once. Close the sandbox and start a new one for the next episode.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar

from kinitro.evaluator.errors import EvaluatorError
from kinitro.evaluator.sandbox.base import AgentEndpoint
from kinitro.protocol import agent_rpc as rpc
from kinitro.protocol.common import FailureCause

DEFAULT_MAX_RESPONSE = 1024 * 1024
"""Largest response frame accepted (actions are tiny; 1 MiB leaves room for errors)."""


class AgentFailure(EvaluatorError):
    """The agent misbehaved; ``cause`` says how (always an agent fault)."""

    cause: ClassVar[FailureCause] = FailureCause.AGENT_CRASH

    def __init__(
        self,
        message: str,
        *,
        call: str = "",
        exit_detail: str | None = None,
        slot: int | None = None,
    ) -> None:
        detail = f"{call}: {message}" if call else message
        if exit_detail:
            detail = f"{detail} ({exit_detail})"
        super().__init__(detail)
        self.detail = detail
        self.call = call
        self.slot = slot
        """The slot whose agent instance failed, when the agent named it (``act_batch``,
        ``reset``); ``None`` when the failure is the connection's (timeout, crash, …)."""


class AgentTimeout(AgentFailure):
    cause = FailureCause.AGENT_TIMEOUT


class AgentCrashed(AgentFailure):
    cause = FailureCause.AGENT_CRASH


class AgentInvalidAction(AgentFailure):
    cause = FailureCause.INVALID_ACTION


class AgentProtocolViolation(AgentFailure):
    cause = FailureCause.PROTOCOL_VIOLATION


@dataclass(frozen=True, slots=True)
class CallTimeouts:
    """Deadline per call, in seconds. ``hello`` includes importing the miner's code."""

    hello: float = 60.0
    reset: float = 10.0
    act: float = 1.0
    close: float = 2.0


_REPORTED: dict[str, type[AgentFailure]] = {
    "invalid_action": AgentInvalidAction,
    "agent_exception": AgentCrashed,
    "load_failed": AgentCrashed,
}


class AgentClient:
    """A connection to one sandboxed agent. Not thread-safe: one rollout loop per client."""

    def __init__(
        self,
        sock: socket.socket,
        observation_spec: rpc.ObservationSpec,
        action_spec: rpc.ArraySpec,
        *,
        timeouts: CallTimeouts | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
        describe_exit: Callable[[], str | None] | None = None,
    ) -> None:
        self._sock = sock
        # Blocking socket with kernel-side timeouts (SO_RCVTIMEO/SO_SNDTIMEO): one syscall
        # per send/recv on the hot path instead of poll() + send/recv.
        sock.settimeout(None)
        self._kernel_timeout = -1.0
        self._hot = rpc.HotPath(observation_spec, action_spec)
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.timeouts = timeouts or CallTimeouts()
        self._reader = rpc.FrameReader(max_response, initial=16 * 1024)
        self._describe_exit = describe_exit
        self._next_id = 1
        self._deadline = 0.0
        self._broken: AgentFailure | None = None
        self._closed = False
        self.agent_name: str | None = None
        self._batch_timeout = 0.0
        self.slots = 1
        """Slots granted by the agent at ``hello`` (concurrent episodes)."""

    @classmethod
    def connect(
        cls,
        endpoint: AgentEndpoint,
        observation_spec: rpc.ObservationSpec,
        action_spec: rpc.ArraySpec,
        *,
        timeouts: CallTimeouts | None = None,
        connect_timeout: float = 10.0,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> AgentClient:
        """Open (or adopt) the endpoint's stream socket. Raises :class:`AgentCrashed`."""
        try:
            sock = endpoint.open(connect_timeout)
        except OSError as exc:
            raise AgentCrashed(f"cannot connect to the agent: {exc}", call="connect") from exc
        return cls(
            sock,
            observation_spec,
            action_spec,
            timeouts=timeouts,
            max_response=max_response,
            describe_exit=endpoint.describe_exit,
        )

    # ------------------------------------------------------------------ calls

    def hello(self, slots: int = 1) -> str:
        """Handshake: send the specs, let the runtime load the agent. Returns its name.

        ``slots`` asks for that many concurrent episodes (agent instances); the agent grants
        at most that many, recorded in :attr:`slots`."""
        i = self._take_id()
        msg = rpc.Hello(i, self.observation_spec, self.action_spec, slots=slots)
        resp = self._call("hello", msg, self.timeouts.hello, range(slots))
        if not isinstance(resp, rpc.HelloOk):
            raise self._fail(
                AgentProtocolViolation(f"expected hello_ok, got {_name(resp)}"), "hello"
            )
        if resp.spec_version != rpc.SPEC_VERSION:
            raise self._fail(
                AgentProtocolViolation(f"agent speaks agent RPC v{resp.spec_version}"), "hello"
            )
        if not 1 <= resp.slots <= slots:
            raise self._fail(
                AgentProtocolViolation(f"agent granted {resp.slots} slots of {slots}"), "hello"
            )
        self.agent_name = resp.agent_name
        self.slots = resp.slots
        return resp.agent_name

    def reset(self, task: rpc.TaskInfo, slot: int = 0) -> None:
        """Start an episode in ``slot``: the agent learns the task (never the seed)."""
        i = self._take_id()
        resp = self._call("reset", rpc.Reset(i, task, slot), self.timeouts.reset, (slot,))
        if not isinstance(resp, rpc.ResetOk):
            raise self._fail(
                AgentProtocolViolation(f"expected reset_ok, got {_name(resp)}"), "reset"
            )

    def act(self, observation: rpc.Observation) -> rpc.Array:
        """One step: observation in, validated action out (exact dtype/shape, finite)."""
        if self._broken is not None:
            raise self._broken
        i = self._next_id
        self._next_id = i + 1
        hot = self._hot
        timeout = self.timeouts.act
        self._deadline = time.monotonic() + timeout
        try:
            if self._kernel_timeout != timeout:
                self._set_kernel_timeout(timeout)
            self._sock.sendall(hot.act_frame(i, observation))
            reader = self._reader
            if reader.buffered == 0:
                # Usually the whole response arrives in one recv and is our own fixed
                # layout: recognised by two byte comparisons, no msgpack, no FrameReader.
                n = self._sock.recv_into(hot.recv_view)
                if n == 0:
                    raise rpc.ConnectionClosed("connection closed", mid_frame=False)
                action = hot.parse_action(n, i)
                if action is not None:
                    return action
                reader.feed(hot.recv_view[:n])
            return hot.decode_action(reader.read(self._recv_into), i)
        except Exception as exc:  # classify every failure, then re-raise typed
            raise self._classify(exc, "act", (0,)) from exc

    def act_batch(
        self,
        slots: Sequence[int],
        observations: Sequence[rpc.Observation] | rpc.Array | dict[str, rpc.Array],
    ) -> rpc.Array:
        """One step of each of ``slots`` in one round trip.

        ``observations``: one per slot, as a list or stacked along a new first axis (a
        dict observation: each field stacked). Returns the actions stacked along the
        first axis, each validated like :meth:`act`. The deadline is the ``act`` deadline
        per slot. A failure the agent pins on one of ``slots`` carries it in
        ``AgentFailure.slot``; an answer for other slots (an ``error`` naming a slot not in
        ``slots``, ``actions`` for another number of slots) is a protocol violation.
        """
        if self._broken is not None:
            raise self._broken
        i = self._next_id
        self._next_id = i + 1
        n = len(slots)
        timeout = self._batch_timeout = self.timeouts.act * n
        self._deadline = time.monotonic() + timeout
        try:
            if self._kernel_timeout != timeout:
                self._set_kernel_timeout(timeout)
            hot = self._hot
            self._sock.sendall(hot.act_batch_frame(i, slots, observations))
            reader = self._reader
            if reader.buffered == 0:  # usually one recv holding exactly our fixed layout
                got = self._sock.recv_into(hot.recv_view)
                if got == 0:
                    raise rpc.ConnectionClosed("connection closed", mid_frame=False)
                actions = hot.parse_actions(got, i, n)
                if actions is not None:
                    return actions
                reader.feed(hot.recv_view[:got])
            return rpc.decode_actions(reader.read(self._recv_into), i, self.action_spec, slots)
        except Exception as exc:  # classify every failure, then re-raise typed
            raise self._classify(exc, "act_batch", slots) from exc

    def close(self) -> None:
        """Ask the agent to close (best effort, short deadline) and drop the connection."""
        if self._closed:
            return
        try:
            if self._broken is None:
                i = self._take_id()
                self._call("close", rpc.Close(i), self.timeouts.close, range(self.slots))
        except AgentFailure:
            pass
        finally:
            self._closed = True
            self._sock.close()

    @property
    def broken(self) -> AgentFailure | None:
        """The failure that broke this client, if any."""
        return self._broken

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _take_id(self) -> int:
        if self._broken is not None:
            raise self._broken
        if self._closed:
            raise AgentCrashed("client is closed")
        i = self._next_id
        self._next_id += 1
        return i

    def _call(
        self, call: str, msg: rpc.Request, timeout: float, slots: Sequence[int]
    ) -> rpc.Response:
        """Send ``msg``, return its answer; an ``error`` may only name one of ``slots``."""
        self._deadline = time.monotonic() + timeout
        try:
            self._send(rpc.encode(msg))
            resp = rpc.decode_response(self._reader.read(self._recv_into))
        except Exception as exc:
            raise self._classify(exc, call, slots) from exc
        if resp.id != msg.id:
            raise self._fail(
                AgentProtocolViolation(f"response id {resp.id} for request {msg.id}"), call
            )
        if isinstance(resp, rpc.Error):
            failure: AgentFailure
            if resp.slot is not None and resp.slot not in slots:
                failure = _foreign_slot(resp.slot, slots, f"{resp.code[:64]}: {resp.message}")
            else:
                cls = _REPORTED.get(resp.code, AgentProtocolViolation)
                failure = cls(f"agent reported {resp.code[:64]}: {resp.message}", slot=resp.slot)
            raise self._fail(failure, call)
        return resp

    def _send(self, data: bytes) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self._set_kernel_timeout(remaining)
        self._sock.sendall(data)

    def _recv_into(self, view: memoryview) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if remaining < self._kernel_timeout - 0.001:  # a later chunk: shrink to the deadline
            self._set_kernel_timeout(remaining)
        return self._sock.recv_into(view)

    def _set_kernel_timeout(self, seconds: float) -> None:
        whole = int(seconds)
        tv = struct.pack("ll", whole, max(1, int((seconds - whole) * 1e6)))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
        self._kernel_timeout = seconds

    def _classify(self, exc: BaseException, call: str, slots: Sequence[int]) -> AgentFailure:
        """The typed failure of ``exc``; a failure pinned on a slot outside ``slots`` (the
        request's) is a protocol violation pinned on none."""
        failure: AgentFailure
        if isinstance(exc, AgentFailure):
            return exc
        slot = getattr(exc, "slot", None)
        if isinstance(exc, TimeoutError | BlockingIOError):
            limit = getattr(self.timeouts, call, self._batch_timeout)
            failure = AgentTimeout(f"no answer within {limit} s")
        elif slot is not None and slot not in slots:
            failure = _foreign_slot(slot, slots, str(exc))
        elif isinstance(exc, rpc.AgentReportedError):
            cls = _REPORTED.get(exc.agent_code, AgentProtocolViolation)
            failure = cls(str(exc), slot=exc.slot)
        elif isinstance(exc, rpc.ConnectionClosed):
            failure = AgentCrashed(str(exc))
        elif isinstance(exc, rpc.ArraySpecMismatch):
            failure = AgentInvalidAction(str(exc), slot=exc.slot)
        elif isinstance(exc, rpc.AgentRpcError):
            failure = AgentProtocolViolation(f"{type(exc).__name__}: {exc}")
        elif isinstance(exc, OSError):
            failure = AgentCrashed(f"connection error: {exc}")
        else:
            failure = AgentProtocolViolation(f"{type(exc).__name__}: {exc}")
        return self._fail(failure, call)

    def _fail(self, failure: AgentFailure, call: str) -> AgentFailure:
        if not failure.call:
            exit_detail = None
            if isinstance(failure, AgentCrashed | AgentTimeout) and self._describe_exit:
                # a closed connection: the process is exiting; on a loaded host it may take
                # a few of describe_exit's short waits (a hung agent gets one, not four)
                for _ in range(EXIT_LOOKS if isinstance(failure, AgentCrashed) else 1):
                    exit_detail = _safe(self._describe_exit)
                    if exit_detail:
                        break
            failure = type(failure)(
                failure.detail, call=call, exit_detail=exit_detail, slot=failure.slot
            )
        self._broken = failure
        return failure


def _foreign_slot(slot: int, slots: Sequence[int], what: str) -> AgentProtocolViolation:
    """An answer pinned on a slot the request did not have: not an answer at all."""
    asked = list(slots) if len(slots) <= 8 else f"{len(slots)} slots"
    return AgentProtocolViolation(f"answer names slot {slot}, the request had {asked} ({what})")


EXIT_LOOKS = 4
"""How many times a crash's exit is looked for (each look waits briefly, see the sandbox)."""


def _name(resp: Any) -> str:
    return type(resp).__name__


def _safe(fn: Callable[[], str | None]) -> str | None:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - diagnostics must never mask the real failure
        return None
