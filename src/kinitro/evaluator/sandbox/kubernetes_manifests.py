"""What the Kubernetes sandbox asks the cluster for: the agent pod and its NetworkPolicies.

The pod carries the same limits as a local bubblewrap sandbox:

=====================  ================================================================
memory, CPU            ``resources.limits`` = ``requests`` (Guaranteed QoS: no swap; the
                       kubelet's static CPU manager gives an integer-CPU pod its own cores)
processes / threads    a uid of its own (``runAsUser`` random in [100000, 160000)) and
                       ``prlimit --nproc``; the node's ``podPidsLimit`` on top
seccomp                ``RuntimeDefault``, or the ``Localhost`` profile that is this
                       repository's policy (``deploy/kubernetes/kinitro-agent-seccomp.json``)
user namespaces        ``hostUsers: false`` (Kubernetes ≥ 1.30 with user namespaces on)
file system            read-only root, ``/tmp`` a size-capped in-memory ``emptyDir``
                       (charged to the pod's memory), the bundle read-only
privileges             non-root, no capabilities, no privilege escalation, no token
=====================  ================================================================

Network: a namespace-wide policy isolates every agent pod (no ingress, no egress at all);
each pod then gets its own policy admitting TCP on the RPC port from the evaluator pods of
the namespace (``evaluator_selector``; ``evaluator_namespace`` and ``evaluator_cidrs`` for
evaluators elsewhere). Policies add up, so the per-pod one only ever opens that one port.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kinitro.evaluator.sandbox.agent_env import AGENT_ENV_MOUNT
from kinitro.evaluator.sandbox.base import RUNTIME_MODULE, SandboxLimits

AGENT_LABEL = {"app.kubernetes.io/name": "kinitro-agent", "app.kubernetes.io/part-of": "kinitro"}
SANDBOX_LABEL = "kinitro.io/sandbox"
POLICY_NAME = "kinitro-agents-isolation"
POD_TMP = "/tmp"  # noqa: S108 - the pod's private in-memory emptyDir
UID_LOW, UID_HIGH = 100_000, 160_000


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how agent pods run."""

    image: str
    """The agent image (``deploy/containers/agent.Containerfile``); ``{profile}`` in it is
    replaced by the bundle's agent environment profile (one image per profile)."""
    bundle_volume: dict[str, Any]
    """Volume source holding extracted bundles, e.g. ``{"persistentVolumeClaim":
    {"claimName": "kinitro-bundles", "readOnly": True}}``."""
    bundle_root: Path
    """Where the evaluator sees that volume; bundles must live below it."""
    namespace: str = "kinitro-agents"
    port: int = 7000
    python: str = f"{AGENT_ENV_MOUNT}/bin/python"
    """The agent environment's interpreter in the image."""
    runtime_class_name: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    host_users: bool | None = False
    """``False``: the pod gets its own user namespace (``hostUsers: false``; Kubernetes ≥
    1.30 with user namespaces enabled). ``None`` omits the field (older clusters)."""
    seccomp_localhost_profile: str | None = None
    """A ``Localhost`` seccomp profile path on the nodes (relative to the kubelet's
    seccomp directory, e.g. ``profiles/kinitro-agent-seccomp.json``); None:
    ``RuntimeDefault``."""
    evaluator_selector: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "kinitro-evaluator"}
    )
    evaluator_namespace: str | None = None
    """Namespace of the evaluator pods the agents admit (None: the agents' own)."""
    evaluator_cidrs: list[str] = field(default_factory=list)
    """Addresses of evaluators outside the cluster admitted on the RPC port."""
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    max_lifetime_s: int = 24 * 3600
    delete_grace_s: int = 5
    """Grace period of a pod's deletion (SIGTERM, then SIGKILL)."""
    delete_timeout_s: float = 60.0
    """How long close() waits for the pod to be gone before it drops the pod's policy."""
    poll_interval_s: float = 0.5
    request_timeout_s: float = 10.0


def _quantity_bytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi" if n % (1024 * 1024) == 0 else str(n)


def pod_manifest(
    name: str,
    sub_path: str,
    config: KubernetesConfig,
    limits: SandboxLimits,
    profile: str = "base",
    uid: int | None = None,
) -> dict[str, Any]:
    """The pod for one sandbox, as a Kubernetes API object (camelCase dict)."""
    uid = uid if uid is not None else random.randrange(UID_LOW, UID_HIGH)
    resources: dict[str, str] = {
        "cpu": f"{int(limits.cpus * 1000)}m",
        "memory": _quantity_bytes(limits.memory_bytes),
        "ephemeral-storage": "64Mi",
    }
    if limits.gpus:
        resources[config.gpu_resource] = str(limits.gpus)
    command = [
        "prlimit",
        f"--nofile={limits.max_open_files}",
        f"--fsize={limits.max_file_size}",
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--nproc={limits.max_processes}",
        "--core=0",
        config.python,
        "-I",
        "-B",
        "-m",
        RUNTIME_MODULE,
        "--bundle",
        "/bundle",
        "--tcp",
        f"0.0.0.0:{config.port}",
    ]
    thread_env = ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
    seccomp: dict[str, str] = {"type": "RuntimeDefault"}
    if config.seccomp_localhost_profile:
        seccomp = {"type": "Localhost", "localhostProfile": config.seccomp_localhost_profile}
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": config.max_lifetime_s,
        "terminationGracePeriodSeconds": config.delete_grace_s,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": uid,
            "runAsGroup": uid,
            "seccompProfile": seccomp,
        },
        "containers": [
            {
                "name": "agent",
                "image": config.image.replace("{profile}", profile),
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "workingDir": POD_TMP,
                "env": [
                    {"name": "HOME", "value": POD_TMP},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    *({"name": k, "value": "1"} for k in thread_env),
                ],
                "ports": [{"name": "agent-rpc", "containerPort": config.port, "protocol": "TCP"}],
                "readinessProbe": {  # the kubelet's check: works wherever the evaluator is
                    "tcpSocket": {"port": config.port},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
                "resources": {"limits": resources, "requests": dict(resources)},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {
                        "name": "bundle",
                        "mountPath": "/bundle",
                        "subPath": sub_path,
                        "readOnly": True,
                    },
                    {"name": "tmp", "mountPath": POD_TMP},
                ],
            }
        ],
        "volumes": [
            {"name": "bundle", **config.bundle_volume},
            {
                "name": "tmp",
                "emptyDir": {"medium": "Memory", "sizeLimit": _quantity_bytes(limits.tmp_bytes)},
            },
        ],
    }
    if config.runtime_class_name:
        spec["runtimeClassName"] = config.runtime_class_name
    if config.host_users is not None:
        spec["hostUsers"] = config.host_users
    if config.node_selector:
        spec["nodeSelector"] = dict(config.node_selector)
    if config.tolerations:
        spec["tolerations"] = list(config.tolerations)
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": {**AGENT_LABEL, SANDBOX_LABEL: name},
        },
        "spec": spec,
    }


def network_policy_manifest(config: KubernetesConfig) -> dict[str, Any]:
    """Isolate every agent pod of the namespace: no ingress, no egress (the baseline)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY_NAME, "namespace": config.namespace},
        "spec": {
            "podSelector": {"matchLabels": dict(AGENT_LABEL)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [],
            "egress": [],
        },
    }


def pod_policy_manifest(name: str, config: KubernetesConfig) -> dict[str, Any]:
    """The pod's own policy: the RPC port, from the evaluators only; still no egress."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(config.evaluator_selector)}}
    if config.evaluator_namespace and config.evaluator_namespace != config.namespace:
        peer["namespaceSelector"] = {
            "matchLabels": {"kubernetes.io/metadata.name": config.evaluator_namespace}
        }
    peers = [peer, *({"ipBlock": {"cidr": cidr}} for cidr in config.evaluator_cidrs)]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": {"app.kubernetes.io/part-of": "kinitro", SANDBOX_LABEL: name},
        },
        "spec": {
            "podSelector": {"matchLabels": {SANDBOX_LABEL: name}},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [],
            "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": config.port}]}],
        },
    }
