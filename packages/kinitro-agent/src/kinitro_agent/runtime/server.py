"""Serve the agent RPC for one loaded agent over a connected stream socket."""

from __future__ import annotations

import importlib
import select
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinitro_agent import rpc
from kinitro_agent.runtime.manifest import ManifestError, RuntimeManifest, load_manifest

MAX_DETAIL = 4096


def _describe(exc: BaseException) -> str:
    """Exception → short text (type, message, last frames) for an ``error`` message."""
    tb = "".join(traceback.format_exception(exc, limit=-4))
    return tb[-MAX_DETAIL:]


@dataclass
class LoadedAgent:
    """The miner's agent, or why it could not be loaded."""

    manifest: RuntimeManifest | None
    agent: Any = None
    error: str | None = None
    action_spec: rpc.ArraySpec | None = None
    obs_spec: rpc.ObservationSpec | None = field(default=None)
    factory: Any = None
    agents: list[Any] = field(default_factory=list)
    """One instance per granted slot; ``agents[0] is agent``."""

    def grow(self, slots: int) -> str | None:
        """Hold ``slots`` instances (one per concurrent episode); an error text if the
        agent class fails to construct another one."""
        if not self.agents:
            self.agents.append(self.agent)
        while len(self.agents) < slots:
            try:
                self.agents.append(self.factory())
            except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                return f"creating agent instance {len(self.agents)}: " + _describe(exc)
        return None

    @classmethod
    def load(cls, bundle_dir: Path) -> LoadedAgent:
        """Import the entrypoint class and instantiate it. Never raises for miner faults."""
        try:
            manifest = load_manifest(bundle_dir)
        except ManifestError as exc:
            return cls(None, error=f"manifest: {exc}")
        if manifest.spec_version != rpc.SPEC_VERSION:
            return cls(
                manifest,
                error=f"bundle targets agent RPC v{manifest.spec_version}, "
                f"runtime speaks v{rpc.SPEC_VERSION}",
            )
        sys.path.insert(0, str(bundle_dir))
        try:
            module = importlib.import_module(manifest.module)
            factory = getattr(module, manifest.class_name)
            agent = factory()
        except BaseException as exc:  # miner code: anything can happen
            if isinstance(exc, KeyboardInterrupt):
                raise
            return cls(
                manifest,
                error=f"loading {manifest.module}:{manifest.class_name}: " + _describe(exc),
            )
        for method in ("reset", "act"):
            if not callable(getattr(agent, method, None)):
                return cls(manifest, error=f"agent class has no {method}() method")
        return cls(manifest, agent=agent, factory=factory, agents=[agent])


class TaskView(dict[str, Any]):
    """The task handed to ``agent.reset``: a plain dict that also allows attribute access.

    ``task["name"]``, ``dict(task)`` and ``task.name`` all work, so agents written against
    either style run unchanged; it never carries the seed.
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def waiting_recv_into(conn: socket.socket) -> Callable[[memoryview], int]:
    """``conn.recv_into`` that first sleeps in ``poll()`` until there is data to read.

    A process blocked in ``recv()`` on a Unix stream socket is also woken each time its
    peer *reads* what it sent (the kernel signals free send-buffer space on the same wait
    queue), so a plain blocking ``recv`` costs the rollout worker's core one spurious
    wake-up — two extra context switches — per round trip. ``poll`` for ``POLLIN`` sleeps
    through those. Hang-up and errors still end the wait (``recv`` then reports them).
    """
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    poll = poller.poll
    recv_into = conn.recv_into

    def wait_then_recv_into(view: memoryview) -> int:
        poll()
        return recv_into(view)

    return wait_then_recv_into


class Server:
    """Answer requests on ``conn`` until ``close`` or end of stream."""

    def __init__(self, conn: socket.socket, loaded: LoadedAgent, max_frame: int) -> None:
        self.conn = conn
        self.loaded = loaded
        self.reader = rpc.FrameReader(max_frame)
        self.closed = False
        self.hot: rpc.HotPath | None = None
        self.granted = 1

    def send(self, msg: rpc.Response) -> None:
        self.conn.sendall(rpc.encode(msg))

    def fail(
        self, request_id: int, code: rpc.AgentErrorCode, message: str, slot: int | None = None
    ) -> None:
        self.send(rpc.Error(request_id, code, message, slot))

    def serve(self) -> None:
        conn = self.conn
        recv_into = waiting_recv_into(conn)
        sendall = conn.sendall
        reader = self.reader
        while not self.closed:
            hot = self.hot
            request: rpc.Request | None = None
            if hot is not None and reader.buffered == 0:
                # Fast path: one recv holding exactly one ``act`` frame of our own layout.
                n = recv_into(hot.recv_view)
                if n == 0:
                    return
                request = hot.parse_act(n) or hot.parse_act_batch(n)
                if request is None:
                    reader.feed(hot.recv_view[:n])
            if request is None:
                try:
                    body = reader.read(recv_into)
                except rpc.ConnectionClosed:
                    return
                except rpc.FrameTooLarge as exc:
                    self.fail(0, "protocol_violation", str(exc))
                    return  # the stream cannot be resynchronised
                try:
                    request = rpc.decode_request(body)
                except rpc.AgentRpcError as exc:
                    self.fail(0, "protocol_violation", str(exc))
                    continue
            if hot is not None and type(request) is rpc.Act:
                # The hot loop, inlined: call the agent, check its action, answer.
                i = request.id
                try:
                    raw = self.loaded.agent.act(request.observation)
                except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                    self.fail(i, "agent_exception", _describe(exc))
                    continue
                try:
                    action = hot.coerce_action(raw)
                except rpc.AgentRpcError as exc:
                    self.fail(i, "invalid_action", str(exc))
                    continue
                sendall(hot.action_frame(i, action))
                continue
            if hot is not None and type(request) is rpc.ActBatch:
                self.act_batch(request)
                continue
            self.handle(request)

    def handle(self, request: rpc.Request) -> None:
        loaded = self.loaded
        match request:
            case rpc.Act(id=i, observation=obs):
                if loaded.action_spec is None:
                    self.fail(i, "bad_state", "act before hello")
                    return
                try:
                    raw = loaded.agent.act(obs)
                except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                    self.fail(i, "agent_exception", _describe(exc))
                    return
                try:
                    action = rpc.coerce_action(raw, loaded.action_spec)
                except rpc.AgentRpcError as exc:
                    self.fail(i, "invalid_action", str(exc))
                    return
                self.send(rpc.Action(i, action))
            case rpc.ActBatch():
                self.act_batch(request)
            case rpc.Reset(id=i, task=task, slot=slot):
                if loaded.action_spec is None:
                    self.fail(i, "bad_state", "reset before hello")
                    return
                if slot >= self.granted:
                    self.fail(i, "bad_state", f"slot {slot} not granted", slot)
                    return
                try:
                    loaded.agents[slot].reset(TaskView(task.to_wire()))
                except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                    self.fail(i, "agent_exception", _describe(exc), slot)
                    return
                self.send(rpc.ResetOk(i))
            case rpc.Hello(id=i):
                self.hello(request)
            case rpc.Close(id=i):
                self.closed = True
                for slot, agent in enumerate(loaded.agents or [loaded.agent]):
                    close = getattr(agent, "close", None)
                    if callable(close):
                        try:
                            close()
                        except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                            self.fail(i, "agent_exception", _describe(exc), slot)
                            return
                self.send(rpc.CloseOk(i))

    def act_batch(self, request: rpc.ActBatch) -> None:
        """One step of several slots: call each slot's agent, answer all actions at once.

        The first agent that raises or returns an invalid action fails the whole request
        with an ``error`` naming its slot (the client then abandons the connection)."""
        loaded = self.loaded
        i = request.id
        hot = self.hot
        if hot is None or loaded.action_spec is None:
            self.fail(i, "bad_state", "act_batch before hello")
            return
        agents = loaded.agents
        for slot in request.slots:
            if slot >= self.granted:
                self.fail(i, "bad_state", f"slot {slot} not granted", slot)
                return
        obs = request.observations
        template = hot.actions_out(len(request.slots))
        out = template.array
        for j, slot in enumerate(request.slots):
            one = {k: v[j] for k, v in obs.items()} if isinstance(obs, dict) else obs[j]
            try:
                raw = agents[slot].act(one)
            except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                self.fail(i, "agent_exception", _describe(exc), slot)
                return
            try:
                out[j] = hot.coerce_action(raw)
            except rpc.AgentRpcError as exc:
                self.fail(i, "invalid_action", str(exc), slot)
                return
        self.conn.sendall(
            template.with_id(i) if i <= 0xFFFFFFFF else rpc.encode(rpc.Actions(i, out))
        )

    def hello(self, request: rpc.Hello) -> None:
        loaded = self.loaded
        i = request.id
        if request.spec_version != rpc.SPEC_VERSION:
            self.fail(
                i,
                "unsupported_version",
                f"client speaks v{request.spec_version}, runtime v{rpc.SPEC_VERSION}",
            )
            return
        if loaded.error is not None or loaded.manifest is None:
            self.fail(i, "load_failed", loaded.error or "agent not loaded")
            return
        slots = min(request.slots, loaded.manifest.slots)
        error = loaded.grow(slots)
        if error is not None:
            self.fail(i, "agent_exception", error)
            return
        for slot, agent in enumerate(loaded.agents[:slots]):
            setup = getattr(agent, "setup", None)
            if callable(setup):
                try:
                    setup(request.observation_spec, request.action_spec)
                except Exception as exc:  # noqa: BLE001 - miner code may raise anything
                    self.fail(i, "agent_exception", _describe(exc), slot)
                    return
        loaded.obs_spec = request.observation_spec
        loaded.action_spec = request.action_spec
        self.hot = rpc.HotPath(request.observation_spec, request.action_spec)
        self.granted = slots
        self.send(rpc.HelloOk(i, loaded.manifest.name, slots=slots))
