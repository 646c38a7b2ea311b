"""Kubernetes sandbox: one locked-down pod per agent, reached over TCP from the evaluator.

Production adapter of the :class:`~kinitro.evaluator.sandbox.Sandbox` port, built on the
official ``kubernetes`` client. Per :meth:`KubernetesSandbox.start`:

1. ensure the namespace's NetworkPolicy ``kinitro-agents-isolation`` exists: it selects
   every agent pod, denies **all egress** (no DNS either) and admits ingress only from
   pods matching ``evaluator_selector`` on the RPC port;
2. create the pod (:func:`pod_manifest`): no service-account token, no service links,
   no host namespaces, ``runAsNonRoot`` (uid 65534), ``readOnlyRootFilesystem``, all
   capabilities dropped, no privilege escalation, ``RuntimeDefault`` seccomp, CPU /
   memory / ephemeral-storage limits (requests = limits), an optional GPU, an optional
   ``runtimeClassName`` (gVisor ``runsc``, Kata) and ``hostUsers: false`` (user
   namespaces) when enabled; ``/tmp`` is a size-capped in-memory ``emptyDir``; the bundle
   is mounted read-only from ``bundle_volume`` (a volume the evaluator shares with the
   pods, e.g. a ReadOnlyMany PVC of extracted bundles) at ``subPath`` = the bundle's path
   relative to ``bundle_root``; rlimits (open files, file size, no core) are set by
   ``prlimit`` in the container command; ``activeDeadlineSeconds`` bounds the pod's life;
3. wait until the pod runs (start deadline; image-pull and config errors fail fast),
   then until the runtime accepts TCP connections on ``podIP:port``.

``close()`` collects the pod log (capped) and deletes the pod with a zero grace period.
The process limit is the kubelet's ``podPidsLimit`` (a node setting, not a pod field).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kinitro.evaluator.sandbox.base import (
    RUNTIME_MODULE,
    AgentEndpoint,
    SandboxExit,
    SandboxLimits,
    SandboxStartError,
)

AGENT_LABEL = {"app.kubernetes.io/name": "kinitro-agent", "app.kubernetes.io/part-of": "kinitro"}
POLICY_NAME = "kinitro-agents-isolation"
AGENT_UID = 65534
POD_TMP = "/tmp"  # noqa: S108 - the pod's private in-memory emptyDir
_FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
}


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how agent pods run."""

    image: str
    """Image with Python, Kinitro (for the runtime) and util-linux ``prlimit``."""
    bundle_volume: dict[str, Any]
    """Volume source holding extracted bundles, e.g. ``{"persistentVolumeClaim":
    {"claimName": "kinitro-bundles", "readOnly": True}}``."""
    bundle_root: Path
    """Where the evaluator sees that volume; bundles must live below it."""
    namespace: str = "kinitro-agents"
    port: int = 7000
    python: str = "python"
    runtime_class_name: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    host_users: bool | None = None
    """``False`` runs the pod in its own user namespace (Kubernetes ≥ 1.30, when enabled)."""
    evaluator_selector: dict[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "kinitro-evaluator"}
    )
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    image_pull_secrets: list[str] = field(default_factory=list)
    max_lifetime_s: int = 24 * 3600
    poll_interval_s: float = 0.5
    request_timeout_s: float = 10.0


def _quantity_bytes(n: int) -> str:
    return f"{n // (1024 * 1024)}Mi" if n % (1024 * 1024) == 0 else str(n)


def pod_manifest(
    name: str, sub_path: str, config: KubernetesConfig, limits: SandboxLimits
) -> dict[str, Any]:
    """The pod for one sandbox, as a Kubernetes API object (camelCase dict)."""
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
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "restartPolicy": "Never",
        "activeDeadlineSeconds": config.max_lifetime_s,
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": AGENT_UID,
            "runAsGroup": AGENT_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "agent",
                "image": config.image,
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "workingDir": POD_TMP,
                "env": [
                    {"name": "HOME", "value": POD_TMP},
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    *({"name": k, "value": "1"} for k in thread_env),
                ],
                "ports": [{"name": "agent-rpc", "containerPort": config.port, "protocol": "TCP"}],
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
            "labels": {**AGENT_LABEL, "kinitro.io/sandbox": name},
        },
        "spec": spec,
    }


def network_policy_manifest(config: KubernetesConfig) -> dict[str, Any]:
    """Deny all egress of agent pods; admit only the evaluator, only on the RPC port."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY_NAME, "namespace": config.namespace},
        "spec": {
            "podSelector": {"matchLabels": dict(AGENT_LABEL)},
            "policyTypes": ["Ingress", "Egress"],
            "egress": [],
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {"matchLabels": dict(config.evaluator_selector)},
                            "namespaceSelector": {},
                        }
                    ],
                    "ports": [{"protocol": "TCP", "port": config.port}],
                }
            ],
        },
    }


class KubernetesSandbox:
    """Start agent bundles as pods (see the module docstring for the policy)."""

    def __init__(
        self,
        config: KubernetesConfig,
        limits: SandboxLimits | None = None,
        *,
        api_client: Any = None,
    ) -> None:
        from kubernetes import client
        from kubernetes import config as kube_config

        self.config = config
        self.limits = limits or SandboxLimits()
        if api_client is None:
            try:
                kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
            except kube_config.ConfigException:
                kube_config.load_kube_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.net = client.NetworkingV1Api(api_client)
        self._policy_ready = False
        self._lock = threading.Lock()

    def ensure_network_policy(self) -> None:
        from kubernetes.client import ApiException, V1NetworkPolicy

        with self._lock:
            if self._policy_ready:
                return
            body = V1NetworkPolicy.model_validate(network_policy_manifest(self.config))
            try:
                self.net.create_namespaced_network_policy(
                    self.config.namespace, body, _request_timeout=self.config.request_timeout_s
                )
            except ApiException as exc:
                if exc.status != 409:  # already there: fine
                    raise SandboxStartError(f"cannot create the NetworkPolicy: {exc}") from exc
            self._policy_ready = True

    def start(self, bundle_dir: Path) -> KubernetesRunning:
        from kubernetes.client import ApiException, V1Pod

        try:
            sub_path = Path(bundle_dir).resolve().relative_to(self.config.bundle_root.resolve())
        except ValueError:
            raise SandboxStartError(
                f"bundle {bundle_dir} is not below the shared bundle root {self.config.bundle_root}"
            ) from None
        if not Path(bundle_dir).is_dir():
            raise SandboxStartError(f"bundle directory {bundle_dir} does not exist")
        self.ensure_network_policy()
        name = f"kinitro-agent-{uuid.uuid4().hex[:12]}"
        manifest = pod_manifest(name, sub_path.as_posix(), self.config, self.limits)
        try:
            self.core.create_namespaced_pod(
                self.config.namespace,
                V1Pod.model_validate(manifest),
                _request_timeout=self.config.request_timeout_s,
            )
        except (ApiException, OSError) as exc:
            raise SandboxStartError(f"cannot create pod {name}: {exc}") from exc
        running = KubernetesRunning(self, name)
        try:
            running.wait_ready(self.limits.start_timeout_s)
        except BaseException:
            running.close()
            raise
        return running


class KubernetesRunning:
    """A started agent pod (see :class:`~kinitro.evaluator.sandbox.RunningSandbox`)."""

    def __init__(self, sandbox: KubernetesSandbox, name: str) -> None:
        self.sandbox = sandbox
        self.name = name
        self.pod_ip: str | None = None
        self._exit: SandboxExit | None = None
        self._endpoint: AgentEndpoint | None = None

    @property
    def endpoint(self) -> AgentEndpoint:
        if self._endpoint is None:
            raise SandboxStartError(f"pod {self.name} is not ready")
        return self._endpoint

    def _read(self) -> Any:
        cfg = self.sandbox.config
        return self.sandbox.core.read_namespaced_pod(
            self.name, cfg.namespace, _request_timeout=cfg.request_timeout_s
        )

    def wait_ready(self, timeout: float) -> None:
        from kubernetes.client import ApiException

        cfg = self.sandbox.config
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SandboxStartError(f"pod {self.name} not running within {timeout} s")
            try:
                pod = self._read()
            except (ApiException, OSError) as exc:
                raise SandboxStartError(f"cannot read pod {self.name}: {exc}") from exc
            status = pod.status
            phase = status.phase if status else None
            if phase in ("Failed", "Succeeded"):
                raise SandboxStartError(f"pod {self.name} ended during start ({phase})")
            for cs in (status.container_statuses or []) if status else []:
                waiting = cs.state.waiting if cs.state else None
                if waiting is not None and waiting.reason in _FATAL_WAITING:
                    raise SandboxStartError(
                        f"pod {self.name}: {waiting.reason}: {waiting.message or ''}".strip()
                    )
            if phase == "Running" and status.pod_ip:
                self.pod_ip = status.pod_ip
                break
            time.sleep(cfg.poll_interval_s)
        # Running is not listening: wait until the runtime accepts connections.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxStartError(f"agent runtime in pod {self.name} not listening in time")
            try:
                with socket.create_connection((self.pod_ip, cfg.port), timeout=remaining):
                    break
            except OSError:
                time.sleep(min(0.1, max(remaining, 0)))
        self._endpoint = AgentEndpoint(
            host=self.pod_ip, port=cfg.port, describe_exit=self.describe_exit
        )

    def alive(self) -> bool:
        if self._exit is not None:
            return False
        try:
            pod = self._read()
        except Exception:  # noqa: BLE001 - unreachable API or deleted pod: not alive
            return False
        return bool(pod.status and pod.status.phase in ("Pending", "Running"))

    def describe_exit(self) -> str | None:
        try:
            pod = self._read()
        except Exception:  # noqa: BLE001 - best-effort diagnostics
            return None
        for cs in (pod.status.container_statuses or []) if pod.status else []:
            term = cs.state.terminated if cs.state else None
            if term is not None:
                return f"container {term.reason or 'terminated'} (exit code {term.exit_code})"
        return None

    def close(self) -> SandboxExit:
        from kubernetes.client import ApiException

        if self._exit is not None:
            return self._exit
        cfg = self.sandbox.config
        limit = self.sandbox.limits.output_bytes
        logs = b""
        try:
            text = self.sandbox.core.read_namespaced_pod_log(
                self.name, cfg.namespace, limit_bytes=limit, _request_timeout=cfg.request_timeout_s
            )
            logs = (text or "").encode()[:limit]
        except (ApiException, OSError, ValueError):
            pass
        reason = self.describe_exit() or "deleted on close"
        try:
            self.sandbox.core.delete_namespaced_pod(
                self.name,
                cfg.namespace,
                grace_period_seconds=0,
                propagation_policy="Background",
                _request_timeout=cfg.request_timeout_s,
            )
        except ApiException as exc:
            if exc.status != 404:
                reason = f"{reason}; delete failed: {exc.status} {exc.reason}"
        except OSError as exc:
            reason = f"{reason}; delete failed: {exc}"
        self._exit = SandboxExit(returncode=None, stdout=logs, stderr=b"", reason=reason)
        return self._exit

    def __enter__(self) -> KubernetesRunning:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
