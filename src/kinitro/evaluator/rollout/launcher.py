"""Start a miner's bundle in a sandbox and connect the agent RPC client to it.

:class:`SandboxLauncher` is the production :class:`AgentLauncher`: a picklable recipe that
each Ray rollout worker uses to start *its own* sandbox (``kinitro.evaluator.sandbox``),
connect :class:`~kinitro.evaluator.agent_client.AgentClient`, and say hello (which loads
the miner's class inside the sandbox). Failures keep their meaning:

* the sandbox cannot start → ``SandboxStartError`` → ``sandbox_start`` (infrastructure,
  retried, never scored);
* the agent fails to load, crashes, hangs, misbehaves → ``AgentFailure`` subclasses with
  their agent-fault ``cause`` (scored against the miner).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kinitro.evaluator.agent_client import AgentClient, CallTimeouts
from kinitro.evaluator.sandbox.base import SandboxError, SandboxLimits, SandboxStartError
from kinitro.evaluator.sandbox.bubblewrap import BubblewrapSandbox
from kinitro.protocol.agent_rpc import ArraySpec, ObservationSpec, TaskInfo
from kinitro.protocol.common import FailureCause

log = logging.getLogger(__name__)


class SandboxStartFailed(SandboxStartError):
    """The agent's sandbox did not start: an infrastructure fault (retried, never scored)."""

    cause = FailureCause.SANDBOX_START


@dataclass(frozen=True, slots=True)
class SandboxLauncher:
    """Recipe for one sandboxed agent per rollout worker."""

    bundle_dir: str
    backend: str = "bubblewrap"
    limits: dict[str, Any] = field(default_factory=dict)
    bubblewrap: dict[str, Any] = field(default_factory=dict)
    """``BubblewrapSandbox`` options when ``backend == "bubblewrap"`` (``agent_envs`` …)."""
    kubernetes: dict[str, Any] = field(default_factory=dict)
    """``KubernetesConfig`` fields when ``backend == "kubernetes"`` (image, bundle_volume,
    bundle_root, namespace, runtime_class_name …); the API client comes from the
    in-cluster service account or ``KUBECONFIG``."""
    act_timeout_s: float = 1.0
    reset_timeout_s: float = 10.0
    hello_timeout_s: float = 60.0

    def _sandbox(self) -> Any:
        """This recipe's sandbox, built once per process (one Kubernetes API client, one
        compiled seccomp filter) and shared by every agent the process starts."""
        return _sandbox_for(
            self.backend,
            json.dumps(self.limits, sort_keys=True),
            json.dumps(self.bubblewrap, sort_keys=True),
            json.dumps(self.kubernetes_options(), sort_keys=True, default=str),
        )

    def kubernetes_options(self) -> dict[str, Any]:
        options = dict(self.kubernetes)
        options["bundle_root"] = str(options.get("bundle_root") or Path(self.bundle_dir).parent)
        return options

    def kubernetes_config(self) -> Any:
        return _kubernetes_config(self.kubernetes_options())

    def start(
        self, observation_spec: ObservationSpec, action_spec: ArraySpec, slots: int = 1
    ) -> SandboxedAgent:
        """Start the sandbox and say hello, asking for ``slots`` concurrent episodes."""

        try:
            running = self._sandbox().start(Path(self.bundle_dir))
        except SandboxError as exc:
            raise SandboxStartFailed(str(exc)) from exc
        try:
            client = AgentClient.connect(
                running.endpoint,
                observation_spec,
                action_spec,
                timeouts=CallTimeouts(
                    hello=self.hello_timeout_s, reset=self.reset_timeout_s, act=self.act_timeout_s
                ),
            )
            client.hello(slots)
        except BaseException:
            running.close()
            raise
        return SandboxedAgent(running, client)


@functools.lru_cache(maxsize=16)
def _sandbox_for(backend: str, limits: str, bubblewrap: str, kubernetes: str) -> Any:
    sandbox_limits = SandboxLimits(**json.loads(limits))
    if backend == "bubblewrap":
        options = json.loads(bubblewrap)
        if options.get("agent_envs"):
            options["agent_envs"] = Path(options["agent_envs"])
        return BubblewrapSandbox(sandbox_limits, **options)
    if backend == "kubernetes":
        from kinitro.evaluator.sandbox.kubernetes import KubernetesSandbox  # noqa: PLC0415 - the kubernetes client is heavy: only the pod backend loads it

        return KubernetesSandbox(_kubernetes_config(json.loads(kubernetes)), sandbox_limits)
    raise SandboxStartFailed(f"unsupported sandbox backend {backend!r}")


def _kubernetes_config(options: dict[str, Any]) -> Any:
    from kinitro.evaluator.sandbox.kubernetes import KubernetesConfig  # noqa: PLC0415 - the kubernetes client is heavy: only the pod backend loads it

    return KubernetesConfig(**{**options, "bundle_root": Path(options["bundle_root"])})


class SandboxedAgent:
    """An :class:`AgentSession` backed by a running sandbox and its RPC client."""

    def __init__(self, running: Any, client: Any) -> None:
        self._running = running
        self._client = client
        self.slots: int = client.slots
        # The client's bound methods: no wrapper call per step on the hot path.
        self.act: Callable[[Any], npt.NDArray[np.float32]] = client.act
        self.act_batch: Callable[[Sequence[int], Any], npt.NDArray[np.float32]] = client.act_batch

    def reset(self, task: TaskInfo, slot: int = 0) -> None:
        self._client.reset(task, slot)

    def close(self) -> None:
        try:
            self._client.close()
        finally:
            exit_ = self._running.close()
            stderr: bytes = getattr(exit_, "stderr", b"") or b""
            if stderr:
                log.debug("agent stderr: %s", stderr[-2000:].decode(errors="replace"))
