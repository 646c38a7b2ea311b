"""Kubernetes sandbox: one locked-down pod per agent, reached over TCP from the evaluator.

Production adapter of the :class:`~kinitro.evaluator.sandbox.Sandbox` port, built on the
official ``kubernetes`` client; what the pod and its policies hold is in
:mod:`~kinitro.evaluator.sandbox.kubernetes_manifests`. One :class:`KubernetesSandbox` (one
API client) serves every agent a process starts. Per :meth:`KubernetesSandbox.start`:

1. ensure the namespace's baseline NetworkPolicy (every agent pod: no ingress, no egress);
2. create the pod's own NetworkPolicy (the RPC port, from the evaluators), *then* the pod —
   the bundle's profile picks the image (``{profile}`` in ``image``);
3. wait until the pod is Ready: the kubelet's TCP readiness probe on the RPC port, read
   from the API, so readiness works where the evaluator cannot reach the pod network yet
   (an evaluator outside the cluster; image-pull and config errors fail fast).

``close()`` collects the pod log (capped), deletes the pod with its grace period, waits
until the API no longer has it, and only then deletes the pod's NetworkPolicy; a pod that
outlives ``delete_timeout_s`` keeps its policy, and :meth:`KubernetesSandbox.remove_stale`
(run when the sandbox is created) removes policies whose pod is gone. Either way the
baseline keeps a policy-less pod isolated.

API verbs used (the RBAC in ``docs/guides/kubernetes.md`` grants exactly these):
pods ``create get delete``, pods/log ``get``, networkpolicies ``create delete list``.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client import ApiException, V1NetworkPolicy, V1Pod

from kinitro.evaluator.sandbox.agent_env import profile_of
from kinitro.evaluator.sandbox.base import (
    AgentEndpoint,
    SandboxExit,
    SandboxLimits,
    SandboxStartError,
)
from kinitro.evaluator.sandbox.kubernetes_manifests import (
    SANDBOX_LABEL,
    KubernetesConfig,
    network_policy_manifest,
    pod_manifest,
    pod_policy_manifest,
)

log = logging.getLogger(__name__)

STALE_POLICY_AGE = timedelta(minutes=10)
"""A pod policy is created just before its pod: only older ones without a pod are stale."""
_FATAL_WAITING = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
}

__all__ = ["KubernetesConfig", "KubernetesRunning", "KubernetesSandbox", "shared_api_client"]


@functools.cache
def shared_api_client(kubeconfig: str | None) -> Any:
    """The process's API client (in-cluster service account, else ``kubeconfig``): one per
    evaluator or rollout worker process, whatever number of agents it starts."""

    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        kube_config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubernetesSandbox:
    """Start agent bundles as pods (see the module docstring for the policy)."""

    def __init__(
        self,
        config: KubernetesConfig,
        limits: SandboxLimits | None = None,
        *,
        api_client: Any = None,
    ) -> None:

        self.config = config
        self.limits = limits or SandboxLimits()
        if api_client is None:
            api_client = shared_api_client(os.environ.get("KUBECONFIG"))
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.net = client.NetworkingV1Api(api_client)
        self._policy_ready = False
        self._lock = threading.Lock()

    @property
    def _timeout(self) -> float:
        return self.config.request_timeout_s

    def _create_policy(self, manifest: dict[str, Any]) -> None:
        """Create a NetworkPolicy; one that already exists is fine."""

        body = V1NetworkPolicy.model_validate(manifest)
        try:
            self.net.create_namespaced_network_policy(
                self.config.namespace, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 409:
                name = manifest["metadata"]["name"]
                raise SandboxStartError(f"cannot create NetworkPolicy {name}: {exc}") from exc

    def ensure_network_policy(self) -> None:
        with self._lock:
            if not self._policy_ready:
                self._create_policy(network_policy_manifest(self.config))
                self._policy_ready = True
                self.remove_stale()

    def delete_policy(self, name: str) -> None:
        try:
            self.net.delete_namespaced_network_policy(
                name, self.config.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    def remove_stale(self, min_age: timedelta = STALE_POLICY_AGE) -> list[str]:
        """Delete the pod policies older than ``min_age`` whose pod is gone (left by a
        crashed evaluator, or by a pod slower to die than ``delete_timeout_s``)."""

        removed = []
        try:
            policies = self.net.list_namespaced_network_policy(
                self.config.namespace, label_selector=SANDBOX_LABEL, _request_timeout=self._timeout
            ).items
            now = datetime.now(UTC)
            for p in policies:
                meta = p.metadata
                if meta is None or not meta.name:
                    continue
                created = meta.creation_timestamp
                if created is not None and now - created < min_age:
                    continue
                if not self._pod_exists(meta.name):
                    self.delete_policy(meta.name)
                    removed.append(meta.name)
        except (ApiException, OSError) as exc:
            log.warning("cannot sweep stale agent NetworkPolicies: %s", exc)
        return removed

    def _pod_exists(self, name: str) -> bool:
        try:
            self.core.read_namespaced_pod(
                name, self.config.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def start(self, bundle_dir: Path) -> KubernetesRunning:
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
        self._create_policy(pod_policy_manifest(name, self.config))  # before its pod
        manifest = pod_manifest(
            name, sub_path.as_posix(), self.config, self.limits, profile_of(Path(bundle_dir))
        )
        running = KubernetesRunning(self, name)
        try:
            self.core.create_namespaced_pod(
                self.config.namespace,
                V1Pod.model_validate(manifest),
                _request_timeout=self._timeout,
            )
        except (ApiException, OSError) as exc:
            running.close()
            raise SandboxStartError(f"cannot create pod {name}: {exc}") from exc
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
        cfg = self.sandbox.config
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise SandboxStartError(f"pod {self.name} not ready within {timeout} s")
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
            ready = any(
                c.type == "Ready" and c.status == "True" for c in (status.conditions or [])
            ) if status else False  # fmt: skip
            if phase == "Running" and ready and status.pod_ip:
                self.pod_ip = status.pod_ip
                break
            time.sleep(cfg.poll_interval_s)
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
                if term.reason == "OOMKilled":
                    return f"killed: memory limit ({self.sandbox.limits.memory_bytes} bytes)"
                return f"container {term.reason or 'terminated'} (exit code {term.exit_code})"
        return None

    def _logs(self) -> bytes:
        cfg, limit = self.sandbox.config, self.sandbox.limits.output_bytes
        try:
            text = self.sandbox.core.read_namespaced_pod_log(
                self.name, cfg.namespace, limit_bytes=limit, _request_timeout=cfg.request_timeout_s
            )
        except (ApiException, OSError, ValueError):
            return b""
        return (text or "").encode()[:limit]

    def _delete_and_wait(self) -> str | None:
        """Delete the pod (grace period) and wait until it is gone; a note if it is not."""

        cfg = self.sandbox.config
        try:
            self.sandbox.core.delete_namespaced_pod(
                self.name,
                cfg.namespace,
                grace_period_seconds=cfg.delete_grace_s,
                propagation_policy="Background",
                _request_timeout=cfg.request_timeout_s,
            )
        except ApiException as exc:
            if exc.status != 404:
                return f"delete failed: {exc.status} {exc.reason}"
        except OSError as exc:
            return f"delete failed: {exc}"
        deadline = time.monotonic() + cfg.delete_timeout_s
        while time.monotonic() < deadline:
            try:
                if not self.sandbox._pod_exists(self.name):
                    return None
            except (ApiException, OSError) as exc:
                return f"cannot confirm the pod is gone: {exc}"
            time.sleep(cfg.poll_interval_s)
        return f"pod still there after {cfg.delete_timeout_s} s"

    def close(self) -> SandboxExit:
        if self._exit is not None:
            return self._exit
        logs = self._logs()
        reason = self.describe_exit() or "deleted on close"
        problem = self._delete_and_wait()
        if problem is None:  # gone: its policy can go too
            try:
                self.sandbox.delete_policy(self.name)
            except (ApiException, OSError) as exc:
                reason = f"{reason}; NetworkPolicy left for the stale sweep: {exc}"
        else:  # the baseline still isolates it; the sweep removes the policy later
            reason = f"{reason}; {problem}; NetworkPolicy kept"
            log.warning("agent pod %s: %s", self.name, problem)
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
