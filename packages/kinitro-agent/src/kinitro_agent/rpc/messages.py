"""The agent RPC's messages: five requests, six responses, plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from kinitro_agent.rpc.specs import ArraySpec, ObservationSpec, TaskInfo
from kinitro_agent.rpc.wire import SPEC_VERSION, Array, Observation

AgentErrorCode: TypeAlias = Literal[
    "agent_exception",  # the agent's own code raised
    "load_failed",  # the bundle could not be loaded (import error, bad manifest)
    "invalid_action",  # the agent returned an action that breaks the action spec
    "unsupported_version",  # the client speaks an RPC version the agent does not
    "protocol_violation",  # the agent received a frame it could not decode
    "bad_state",  # e.g. act before hello/reset
]
ERROR_CODES: Final = frozenset(
    {
        "agent_exception",
        "load_failed",
        "invalid_action",
        "unsupported_version",
        "protocol_violation",
        "bad_state",
    }
)


@dataclass(frozen=True, slots=True)
class Hello:
    id: int
    observation_spec: ObservationSpec
    action_spec: ArraySpec
    spec_version: int = SPEC_VERSION
    slots: int = 1
    """Slots the client would like (1..MAX_SLOTS); the agent may grant fewer."""


@dataclass(frozen=True, slots=True)
class Reset:
    id: int
    task: TaskInfo
    slot: int = 0


@dataclass(frozen=True, slots=True)
class Act:
    """One step of slot 0."""

    id: int
    observation: Observation


@dataclass(frozen=True, slots=True)
class ActBatch:
    """One step of each of ``slots``: observations stacked along a new first axis."""

    id: int
    slots: tuple[int, ...]
    observations: Observation


@dataclass(frozen=True, slots=True)
class Close:
    id: int


@dataclass(frozen=True, slots=True)
class HelloOk:
    id: int
    agent_name: str
    spec_version: int = SPEC_VERSION
    slots: int = 1
    """Slots granted (1..the number asked for)."""


@dataclass(frozen=True, slots=True)
class ResetOk:
    id: int


@dataclass(frozen=True, slots=True)
class Action:
    id: int
    action: Array


@dataclass(frozen=True, slots=True)
class Actions:
    """The answer to ``act_batch``: one action per requested slot, in request order."""

    id: int
    actions: Array


@dataclass(frozen=True, slots=True)
class CloseOk:
    id: int


@dataclass(frozen=True, slots=True)
class Error:
    id: int
    code: str
    message: str
    slot: int | None = None
    """The slot whose agent instance failed (``act_batch``), when known."""


Request: TypeAlias = Hello | Reset | Act | ActBatch | Close
Response: TypeAlias = HelloOk | ResetOk | Action | Actions | CloseOk | Error
