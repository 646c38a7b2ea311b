"""Agent sandboxes: run an untrusted agent bundle isolated and reachable only by RPC.

Port and adapters::

    Sandbox (typing.Protocol)            start(bundle_dir) -> RunningSandbox
    ├── BubblewrapSandbox (default)      local: bwrap namespaces + rlimits, socketpair RPC
    └── KubernetesSandbox                a locked-down pod + egress-denying NetworkPolicy

    AgentEnvironment                     the only Python environment a sandbox binds
                                         (kinitro-agent + numpy/msgpack + a profile's extras)
    prepare_host(backend, …)             startup check: refuse a host that cannot contain agents

    RunningSandbox                       .endpoint: AgentEndpoint, .alive(), .close() -> SandboxExit
                                         (context manager; close kills everything, idempotent)

Typical use from a rollout worker (synchronous, it is the hot loop)::

    sandbox = BubblewrapSandbox(SandboxLimits(memory_bytes=2 << 30))
    with sandbox.start(bundle_dir) as running:
        with AgentClient.connect(running.endpoint, env.observation_spec(),
                                 env.action_spec()) as agent:   # kinitro.evaluator.agent_client
            agent.hello()
            agent.reset(TaskInfo(task, benchmark_id, max_steps=500))
            action = agent.act(obs)
    report = running.close()          # exit code, reason, captured stdout/stderr

Performance: the sandboxed runtime inherits the caller's CPU affinity. Pin the rollout
worker to one core (:func:`pin_to_one_core`) *before* ``start()`` so worker and agent
share it: a same-core round trip costs ~10 µs, a cross-core one ~70 µs on a VM.

Errors (under :class:`~kinitro.evaluator.errors.EvaluatorError`)::

    SandboxError                   infrastructure fault (retried, never scored)
    ├── SandboxStartError          could not start / not ready by the start deadline
    ├── SandboxUnavailable         backend cannot run here (bwrap missing, agent
    │                              environment of the bundle's profile not built, …)
    └── SandboxHostError           the host check at evaluator startup failed (refused)

Agent misbehaviour is not a sandbox error: the client raises ``AgentFailure`` subclasses
carrying the ``FailureCause`` (see :mod:`kinitro.evaluator.agent_client`).
"""

from kinitro.evaluator.sandbox.base import (
    AgentEndpoint,
    RunningSandbox,
    Sandbox,
    SandboxError,
    SandboxExit,
    SandboxLimits,
    SandboxStartError,
    SandboxUnavailable,
    pin_to_one_core,
)
from kinitro.evaluator.sandbox.bubblewrap import BubblewrapSandbox


def __getattr__(name: str) -> object:
    # The Kubernetes adapter imports the (heavy) kubernetes client: load it on first use.
    if name in ("KubernetesSandbox", "KubernetesConfig"):
        from kinitro.evaluator.sandbox import kubernetes  # noqa: PLC0415 - the kubernetes client is heavy: only the pod backend loads it

        return getattr(kubernetes, name)
    raise AttributeError(name)


__all__ = [
    "AgentEndpoint",
    "BubblewrapSandbox",
    "KubernetesConfig",
    "KubernetesSandbox",
    "RunningSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxExit",
    "SandboxLimits",
    "SandboxStartError",
    "SandboxUnavailable",
    "pin_to_one_core",
]
