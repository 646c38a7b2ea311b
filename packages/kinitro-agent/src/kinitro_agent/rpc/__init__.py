"""Agent RPC codec: the binary protocol between a rollout worker and a sandboxed agent.

Pure (no I/O). ``docs/agent-rpc.md`` is the language-neutral specification; this package is
its reference implementation — the one codec both sides use: the agent runtime
(:mod:`kinitro_agent.runtime`, server, inside the sandbox) and
``kinitro.evaluator.agent_client`` (client, in the rollout worker; ``kinitro.protocol``
re-exports this package as ``kinitro.protocol.agent_rpc``).

Modules: :mod:`~kinitro_agent.rpc.errors` (the tree below), :mod:`~kinitro_agent.rpc.wire`
(limits, dtypes, field readers), :mod:`~kinitro_agent.rpc.specs` (array and observation
specs, ``TaskInfo``, the array codec), :mod:`~kinitro_agent.rpc.messages`,
:mod:`~kinitro_agent.rpc.codec` (framing, generic encode/decode) and
:mod:`~kinitro_agent.rpc.fastpath` (fixed-layout frames of the hot loop).

Wire format
-----------
A connection carries *frames* in both directions::

    frame = u32 big-endian body length  ||  body (msgpack map)

Every request (client → agent) carries ``type`` and ``id`` (uint, increasing per
connection); every response (agent → client) echoes the ``id`` of its request. Requests:
``hello``, ``reset``, ``act``, ``act_batch``, ``close``; responses ``hello_ok``, ``reset_ok``,
``action``, ``actions``, ``close_ok`` or ``error``. Arrays travel as a map
``{"dtype": name, "shape": [..], "data": bin}`` (C order, little-endian), see :data:`DTYPES`.

Slots: ``hello`` may ask for several *slots* (concurrent episodes, one agent instance
each); ``hello_ok`` grants at most that many. ``reset`` then names its slot, and one
``act_batch`` carries the observations of several slots stacked along a new first axis and
is answered by one ``actions`` (the actions stacked the same way): a round trip — two
context switches and four system calls — serves a whole batch of episodes. Without slots
(the default, 1) the protocol is plain ``act`` / ``action``.

The hot loop (``act`` / ``action``) avoids pydantic and per-step Python objects beyond the
message itself: :func:`encode_act` / :func:`decode_action` are the fast paths, and the array
body is copied once (``tobytes`` / ``frombuffer``).

Errors
------
Every malformed input raises a specific subclass of :class:`AgentRpcError` (an
``Exception``: this package imports nothing of ``kinitro``); ``.code`` is the matching
value of Kinitro's ``ErrorCode`` (shown in brackets)::

    AgentRpcError
    ├── FrameError
    │   ├── FrameTooLarge          declared length above the maximum  [frame_too_large]
    │   └── MalformedFrame         not msgpack, trailing bytes, not a map  [malformed_frame]
    ├── MessageError
    │   ├── UnknownMessageType     ``type`` unknown for this direction  [unknown_message_type]
    │   └── InvalidMessage         a field is missing, mistyped, out of range  [invalid_message]
    ├── InvalidArray               bad dtype name, shape or data length  [invalid_array]
    │   └── ArraySpecMismatch      a well-formed array that breaks the negotiated spec
    │       ├── WrongDtype
    │       ├── WrongShape
    │       └── NonFiniteValue     NaN or ±Inf in an action  [non_finite_value]
    ├── AgentReportedError         the agent answered ``error`` (``.agent_code``)
    └── ConnectionClosed           the peer closed the stream  [malformed_frame]
"""

from __future__ import annotations

from kinitro_agent.rpc.codec import (
    FrameReader,
    body_length,
    decode_action,
    decode_actions,
    decode_request,
    decode_response,
    encode,
    encode_act,
    frame,
)
from kinitro_agent.rpc.errors import (
    AgentReportedError,
    AgentRpcError,
    ArraySpecMismatch,
    ConnectionClosed,
    FrameError,
    FrameTooLarge,
    InvalidArray,
    InvalidMessage,
    MalformedFrame,
    MessageError,
    NonFiniteValue,
    UnknownMessageType,
    WrongDtype,
    WrongShape,
)
from kinitro_agent.rpc.fastpath import FrameTemplate, HotPath
from kinitro_agent.rpc.messages import (
    ERROR_CODES,
    Act,
    ActBatch,
    Action,
    Actions,
    AgentErrorCode,
    Close,
    CloseOk,
    Error,
    Hello,
    HelloOk,
    Request,
    Reset,
    ResetOk,
    Response,
)
from kinitro_agent.rpc.specs import (
    ArraySpec,
    ObservationSpec,
    TaskInfo,
    check_action,
    check_finite,
    check_observation,
    coerce_action,
    decode_array,
    encode_array,
    observation_spec_from_wire,
    observation_spec_to_wire,
)
from kinitro_agent.rpc.wire import (
    DEFAULT_MAX_FRAME,
    DTYPES,
    HEADER,
    HEADER_SIZE,
    MAX_NDIM,
    MAX_SLOTS,
    MAX_STRING,
    SPEC_VERSION,
    Array,
    Observation,
    Scalar,
    packb,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DTYPES",
    "ERROR_CODES",
    "HEADER",
    "HEADER_SIZE",
    "MAX_NDIM",
    "MAX_SLOTS",
    "MAX_STRING",
    "SPEC_VERSION",
    "Act",
    "ActBatch",
    "Action",
    "Actions",
    "AgentErrorCode",
    "AgentReportedError",
    "AgentRpcError",
    "Array",
    "ArraySpec",
    "ArraySpecMismatch",
    "Close",
    "CloseOk",
    "ConnectionClosed",
    "Error",
    "FrameError",
    "FrameReader",
    "FrameTemplate",
    "FrameTooLarge",
    "Hello",
    "HelloOk",
    "HotPath",
    "InvalidArray",
    "InvalidMessage",
    "MalformedFrame",
    "MessageError",
    "NonFiniteValue",
    "Observation",
    "ObservationSpec",
    "Request",
    "Reset",
    "ResetOk",
    "Response",
    "Scalar",
    "TaskInfo",
    "UnknownMessageType",
    "WrongDtype",
    "WrongShape",
    "body_length",
    "check_action",
    "check_finite",
    "check_observation",
    "coerce_action",
    "decode_action",
    "decode_actions",
    "decode_array",
    "decode_request",
    "decode_response",
    "encode",
    "encode_act",
    "encode_array",
    "frame",
    "observation_spec_from_wire",
    "observation_spec_to_wire",
    "packb",
]
