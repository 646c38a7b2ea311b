"""A fake Kubernetes API server (HTTP level) for the KubernetesSandbox tests.

It implements the REST paths the official client uses (pods: create, read, log, delete;
networkpolicies: create, delete, list by label) with Kubernetes-shaped JSON and ``Status``
errors, runs a Pod Security "restricted" admission check, and plays the kubelet: it starts
the pod's container command as a local process (bundle volume → host path + subPath, the
image's agent environment → the test's, pod IP → 127.0.0.1, container log → a file served
by the log endpoint), runs the pod's TCP readiness probe to set the ``Ready`` condition, and
deletes like the API server: with a grace period the pod stays (``deletionTimestamp``) while
its process gets SIGTERM, then SIGKILL once the grace period is over, and only then is gone.
Every request is recorded with its verb, for the RBAC check.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client

from kinitro.evaluator.sandbox import SandboxLimits
from kinitro.evaluator.sandbox.kubernetes import KubernetesConfig, KubernetesSandbox

NS = "kinitro-agents"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """The Pod Security Standard "restricted" checks that apply to our pods."""
    spec = pod["spec"]
    psc = spec.get("securityContext", {})
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(key)
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            out.append("privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append("allowPrivilegeEscalation != false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            out.append("capabilities must drop ALL")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append("runAsNonRoot != true")
        seccomp = sc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            out.append("seccompProfile")
    for v in spec.get("volumes", []):
        if "hostPath" in v and not pod["metadata"]["labels"].get("test/allow-hostpath"):
            out.append("hostPath volumes are not allowed")
    return out


class FakeKube:
    """State of the fake cluster; the HTTP handler below serves it."""

    def __init__(self, python: str, log_dir: Path) -> None:
        self.python = python
        self.log_dir = log_dir
        self.pods: dict[str, dict[str, Any]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.grace: dict[str, int] = {}
        """Grace period each pod was deleted with."""
        self.lock = threading.Lock()

    def kubelet(self, name: str) -> None:
        time.sleep(0.2)  # scheduling + image pull
        with self.lock:
            pod = self.pods.get(name)
            if pod is None:
                return
            c = pod["spec"]["containers"][0]
            if c["image"].startswith("missing/"):
                pod["status"]["containerStatuses"] = [
                    self._cs(c, waiting={"reason": "ErrImagePull", "message": "not found"})
                ]
                return
            argv = self._local_command(pod)
            with (self.log_dir / f"{name}.log").open("wb") as log:  # the container log
                self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            pod["status"].update(
                phase="Running",
                podIP="127.0.0.1",
                conditions=[{"type": "Ready", "status": "False"}],
                containerStatuses=[self._cs(c, running={"startedAt": "2026-01-01T00:00:00Z"})],
            )
        port = c["readinessProbe"]["tcpSocket"]["port"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the readiness probe
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            return
        with self.lock:
            if name in self.pods:
                self.pods[name]["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
                self.pods[name]["status"]["containerStatuses"][0]["ready"] = True

    def delete(self, name: str, grace: int) -> None:
        """The API server and kubelet deleting a pod: SIGTERM, grace period, SIGKILL, gone."""
        with self.lock:
            proc = self.procs.get(name)
            self.grace[name] = grace
        if proc is not None and grace > 0:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        if proc is not None:
            proc.kill()
            proc.wait()
        with self.lock:
            self.pods.pop(name, None)
            self.procs.pop(name, None)
            self.deleted.append(name)

    def _local_command(self, pod: dict[str, Any]) -> list[str]:
        c = pod["spec"]["containers"][0]
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/bundle")
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        host_bundle = str(Path(volume["hostPath"]["path"]) / mount["subPath"])
        argv = list(c["command"])
        python = next(i for i, a in enumerate(argv) if a.endswith("/bin/python"))
        argv[python] = self.python  # the image's agent environment → this host's
        argv[argv.index("--bundle") + 1] = host_bundle
        tcp = argv.index("--tcp") + 1
        argv[tcp] = argv[tcp].replace("0.0.0.0", "127.0.0.1")
        return argv

    @staticmethod
    def _cs(c: dict[str, Any], **state: Any) -> dict[str, Any]:
        return {
            "name": c["name"],
            "image": c["image"],
            "imageID": "",
            "ready": "running" in state,
            "restartCount": 0,
            "state": state,
        }


def make_handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, code: int, body: Any, content_type: str = "application/json") -> None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> Any:
            return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

        def route(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urlparse(self.path)
            kube.requests.append((self.command, url.path))
            return url.path.strip("/").split("/"), parse_qs(url.query)

        def do_POST(self) -> None:
            parts, _ = self.route()
            obj = self.body()
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                name = obj["metadata"]["name"]
                violations = restricted_violations(obj)
                if violations:
                    msg = f'pods "{name}" is forbidden: violates PodSecurity "restricted": '
                    return self.reply(403, status(403, "Forbidden", msg + ", ".join(violations)))
                with kube.lock:
                    obj["status"] = {"phase": "Pending"}
                    kube.pods[name] = obj
                threading.Thread(target=kube.kubelet, args=(name,), daemon=True).start()
                return self.reply(201, obj)
            if parts[:2] == ["apis", "networking.k8s.io"] and parts[5] == "networkpolicies":
                name = obj["metadata"]["name"]
                if name in kube.policies:
                    msg = f'networkpolicies "{name}" already exists'
                    return self.reply(409, status(409, "AlreadyExists", msg))
                obj["metadata"]["creationTimestamp"] = datetime.now(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                kube.policies[name] = obj
                return self.reply(201, obj)
            self.reply(404, status(404, "NotFound", "unknown path"))

        def do_GET(self) -> None:
            parts, query = self.route()
            if parts[:2] == ["apis", "networking.k8s.io"] and len(parts) == 6:
                key = query.get("labelSelector", [""])[0]
                items = [
                    p
                    for p in kube.policies.values()
                    if not key or key in p["metadata"].get("labels", {})
                ]
                body = {"kind": "NetworkPolicyList", "apiVersion": "networking.k8s.io/v1",
                        "metadata": {}, "items": items}  # fmt: skip
                return self.reply(200, body)
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                pod = kube.pods.get(parts[5])
                if pod is None:
                    return self.reply(404, status(404, "NotFound", f'pods "{parts[5]}" not found'))
                if len(parts) == 7 and parts[6] == "log":
                    log = kube.log_dir / f"{parts[5]}.log"
                    text = log.read_bytes() if log.exists() else b""
                    limit = int(query.get("limitBytes", ["1000000"])[0])
                    return self.reply(200, text[:limit].decode(), "text/plain")
                with kube.lock:
                    return self.reply(200, pod)
            self.reply(404, status(404, "NotFound", "unknown path"))

        def do_DELETE(self) -> None:
            parts, query = self.route()
            name = parts[-1]
            options = self.body() if self.headers.get("Content-Length") else {}
            if parts[:2] == ["apis", "networking.k8s.io"]:
                policy = kube.policies.pop(name, None)
                if policy is None:
                    msg = f'networkpolicies.networking.k8s.io "{name}" not found'
                    return self.reply(404, status(404, "NotFound", msg))
                return self.reply(200, policy)
            with kube.lock:
                pod = kube.pods.get(name)
                if pod is None or "deletionTimestamp" in pod["metadata"]:
                    found = pod is not None
                else:
                    found = True
                    grace = int(
                        (options or {}).get("gracePeriodSeconds")
                        or query.get("gracePeriodSeconds", ["30"])[0]
                    )
                    pod["metadata"]["deletionTimestamp"] = datetime.now(UTC).isoformat()
                    pod["metadata"]["deletionGracePeriodSeconds"] = grace
                    threading.Thread(target=kube.delete, args=(name, grace), daemon=True).start()
            if not found:
                return self.reply(404, status(404, "NotFound", f'pods "{name}" not found'))
            self.reply(200, pod)

    return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_sandbox(url: str, root: Path, **overrides: Any) -> KubernetesSandbox:
    config = KubernetesConfig(
        image="ghcr.io/kinitro/agent-runtime:test",
        bundle_volume={"hostPath": {"path": str(root), "type": "Directory"}},
        bundle_root=root,
        namespace=NS,
        port=free_port(),
        poll_interval_s=0.05,
        delete_grace_s=1,
        **overrides,
    )
    api = client.ApiClient(client.Configuration(host=url))
    limits = SandboxLimits(start_timeout_s=20.0, memory_bytes=2 * 1024**3)
    return KubernetesSandbox(config, limits, api_client=api)
