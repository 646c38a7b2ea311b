"""The agent as the rollout loop sees it, and how its failures are classified.

The rollout worker talks to exactly one kind of agent in production: a miner's bundle
running in a sandbox (``kinitro.evaluator.sandbox``) behind the agent RPC client
(``kinitro.evaluator.agent_client``). :class:`AgentSession` is the narrow surface the loop
needs; :class:`AgentLauncher` starts one session per worker (and again after an agent
fault, since a crashed agent is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from kinitro.protocol.agent_rpc import ArraySpec, ObservationSpec, TaskInfo
from kinitro.protocol.common import FailureCause


class AgentSession(Protocol):
    slots: int
    """Concurrent episodes the agent accepted (agent instances, one per slot)."""

    def reset(self, task: TaskInfo, slot: int = 0) -> None: ...

    def act(self, observation: Any) -> npt.NDArray[np.float32]: ...

    def act_batch(self, slots: Sequence[int], observations: Any) -> npt.NDArray[np.float32]: ...

    def close(self) -> None: ...


class AgentLauncher(Protocol):
    """Picklable recipe (shipped to Ray actors) that starts an agent session."""

    def start(
        self, observation_spec: ObservationSpec, action_spec: ArraySpec, slots: int = 1
    ) -> AgentSession: ...


def classify(exc: BaseException) -> tuple[FailureCause, str]:
    """Map an exception raised while talking to the agent to ``(FailureCause, detail)``.

    Typed failures carry their cause in a ``cause`` attribute (the agent client's
    ``AgentFailure`` subclasses, a failed sandbox start); anything else is an internal
    fault, i.e. ours: retried and never scored.
    """
    detail = (str(exc) or type(exc).__name__)[:2000]
    cause = getattr(exc, "cause", None)
    if isinstance(cause, FailureCause):
        return cause, detail
    return FailureCause.INTERNAL, f"{type(exc).__name__}: {detail}"
