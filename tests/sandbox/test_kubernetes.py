"""KubernetesSandbox against a fake Kubernetes API server spoken to over real HTTP.

The fake implements the REST paths the official client uses (pods: create, read, log,
delete; networkpolicies: create) with Kubernetes-shaped JSON and ``Status`` errors, runs a
Pod Security "restricted" admission check, and plays the kubelet: it starts the pod's
container command as a local process (bundle volume → host path + subPath, pod IP →
127.0.0.1), so the lifecycle create → running → connect → RPC → delete is exercised with
the real runtime.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from kubernetes import client
from kubernetes.client import V1NetworkPolicy, V1Pod

from kinitro.evaluator.agent_client import AgentClient
from kinitro.evaluator.sandbox import Sandbox, SandboxLimits, SandboxStartError
from kinitro.evaluator.sandbox.kubernetes import (
    POLICY_NAME,
    KubernetesConfig,
    KubernetesSandbox,
    network_policy_manifest,
    pod_manifest,
)
from kinitro.protocol.agent_rpc import TaskInfo

from .conftest import ACTION_SPEC, OBS_SPEC, TIMEOUTS, BundleFactory

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

    def __init__(self, python: str) -> None:
        self.python = python
        self.pods: dict[str, dict[str, Any]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.policies: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.deleted: list[str] = []
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
            self.procs[name] = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            pod["status"].update(
                phase="Running",
                podIP="127.0.0.1",
                containerStatuses=[self._cs(c, running={"startedAt": "2026-01-01T00:00:00Z"})],
            )

    def _local_command(self, pod: dict[str, Any]) -> list[str]:
        c = pod["spec"]["containers"][0]
        mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/bundle")
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
        host_bundle = str(Path(volume["hostPath"]["path"]) / mount["subPath"])
        argv = list(c["command"])
        argv[argv.index("python")] = self.python
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
                kube.policies[name] = obj
                return self.reply(201, obj)
            self.reply(404, status(404, "NotFound", "unknown path"))

        def do_GET(self) -> None:
            parts, query = self.route()
            if parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods":
                pod = kube.pods.get(parts[5])
                if pod is None:
                    return self.reply(404, status(404, "NotFound", f'pods "{parts[5]}" not found'))
                if len(parts) == 7 and parts[6] == "log":
                    proc = kube.procs.get(parts[5])
                    text = b""
                    if proc is not None and proc.poll() is not None and proc.stdout:
                        text = proc.stdout.read()
                    limit = int(query.get("limitBytes", ["1000000"])[0])
                    return self.reply(200, text[:limit].decode(), "text/plain")
                with kube.lock:
                    return self.reply(200, pod)
            self.reply(404, status(404, "NotFound", "unknown path"))

        def do_DELETE(self) -> None:
            parts, _ = self.route()
            name = parts[5]
            with kube.lock:
                pod = kube.pods.pop(name, None)
                proc = kube.procs.pop(name, None)
            if pod is None:
                return self.reply(404, status(404, "NotFound", f'pods "{name}" not found'))
            if self.headers.get("Content-Length"):
                self.body()  # DeleteOptions (gracePeriodSeconds, propagationPolicy)
            if proc is not None:
                proc.kill()
                proc.wait()
            kube.deleted.append(name)
            self.reply(200, pod)

    return Handler


@pytest.fixture
def fake_kube() -> Iterator[tuple[FakeKube, str]]:
    kube = FakeKube(sys.executable)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(kube))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield kube, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    for proc in kube.procs.values():
        proc.kill()
        proc.wait()


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
        **overrides,
    )
    api = client.ApiClient(client.Configuration(host=url))
    limits = SandboxLimits(start_timeout_s=20.0, memory_bytes=2 * 1024**3)
    return KubernetesSandbox(config, limits, api_client=api)


@pytest.fixture
def hostpath_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    import kinitro.evaluator.sandbox.kubernetes as k8s

    original = k8s.pod_manifest

    def patched(*args: Any) -> dict[str, Any]:
        m = original(*args)
        m["metadata"]["labels"]["test/allow-hostpath"] = "true"
        return m

    monkeypatch.setattr(k8s, "pod_manifest", patched)


# --------------------------------------------------------------------------- manifests


def config_for_manifests(**kw: Any) -> KubernetesConfig:
    return KubernetesConfig(
        image="ghcr.io/kinitro/agent-runtime:1",
        bundle_volume={"persistentVolumeClaim": {"claimName": "bundles", "readOnly": True}},
        bundle_root=Path("/var/lib/kinitro/bundles"),
        **kw,
    )


def test_pod_manifest_is_locked_down() -> None:
    limits = SandboxLimits(cpus=1.5, memory_bytes=2 * 1024**3, tmp_bytes=128 * 1024**2, gpus=1)
    cfg = config_for_manifests(runtime_class_name="gvisor", host_users=False)
    m = pod_manifest("kinitro-agent-x", "ab/cd", cfg, limits)
    # Every field is a real Pod field: the official model round-trips it unchanged.
    assert client.ApiClient().sanitize_for_serialization(V1Pod.model_validate(m)) == m
    assert restricted_violations(m) == []
    spec = m["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["runtimeClassName"] == "gvisor" and spec["hostUsers"] is False
    assert spec["restartPolicy"] == "Never"
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert c["resources"]["limits"] == {
        "cpu": "1500m",
        "memory": "2048Mi",
        "ephemeral-storage": "64Mi",
        "nvidia.com/gpu": "1",
    }
    assert c["resources"]["requests"] == c["resources"]["limits"]
    mounts = {v["mountPath"]: v for v in c["volumeMounts"]}
    assert mounts["/bundle"]["readOnly"] is True and mounts["/bundle"]["subPath"] == "ab/cd"
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Mi"}
    assert not any(e["name"].startswith(("KINITRO", "AWS")) for e in c["env"])
    assert "--tcp" in c["command"] and "0.0.0.0:7000" in c["command"]


def test_pod_manifest_without_gpu_or_runtime_class() -> None:
    m = pod_manifest("p", "x", config_for_manifests(), SandboxLimits())
    assert "runtimeClassName" not in m["spec"] and "hostUsers" not in m["spec"]
    assert "nvidia.com/gpu" not in m["spec"]["containers"][0]["resources"]["limits"]


def test_network_policy_denies_all_egress() -> None:
    cfg = config_for_manifests()
    p = network_policy_manifest(cfg)
    assert client.ApiClient().sanitize_for_serialization(V1NetworkPolicy.model_validate(p)) == p
    assert p["spec"]["policyTypes"] == ["Ingress", "Egress"] and p["spec"]["egress"] == []
    (rule,) = p["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7000}]
    assert rule["from"][0]["podSelector"]["matchLabels"] == cfg.evaluator_selector


# --------------------------------------------------------------------------- lifecycle


def test_lifecycle_against_fake_api(
    fake_kube: tuple[FakeKube, str],
    make_bundle: BundleFactory,
    tmp_path: Path,
    hostpath_allowed: None,
) -> None:
    kube, url = fake_kube
    bundle = make_bundle()
    sandbox = make_sandbox(url, tmp_path)
    assert isinstance(sandbox, Sandbox)
    with sandbox.start(bundle) as running:
        (name,) = kube.pods
        assert kube.pods[name]["spec"]["containers"][0]["volumeMounts"][0]["subPath"] == "bundle"
        assert POLICY_NAME in kube.policies
        assert running.alive()
        with AgentClient.connect(
            running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS
        ) as agent:
            assert agent.hello() == "bundle"
            agent.reset(TaskInfo("reach-v3"))
            assert agent.act(np.zeros(39)).shape == (4,)
        report = running.close()
    assert kube.pods == {} and kube.deleted == [name]
    assert report.reason is not None
    assert ("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}") in kube.requests
    # A second sandbox reuses the existing NetworkPolicy (the 409 is not an error).
    sandbox2 = make_sandbox(url, tmp_path)
    with sandbox2.start(bundle):
        pass
    assert len(kube.deleted) == 2


def test_admission_rejection_is_a_start_error(
    fake_kube: tuple[FakeKube, str], make_bundle: BundleFactory, tmp_path: Path
) -> None:
    _, url = fake_kube  # no hostPath allowance: the fake's PodSecurity admission refuses
    with pytest.raises(SandboxStartError, match="PodSecurity"):
        make_sandbox(url, tmp_path).start(make_bundle())


def test_image_pull_failure_fails_fast(
    fake_kube: tuple[FakeKube, str],
    make_bundle: BundleFactory,
    tmp_path: Path,
    hostpath_allowed: None,
) -> None:
    kube, url = fake_kube
    sandbox = make_sandbox(url, tmp_path)
    sandbox.config = replace(sandbox.config, image="missing/agent:1")
    t = time.monotonic()
    with pytest.raises(SandboxStartError, match="ErrImagePull"):
        sandbox.start(make_bundle())
    assert time.monotonic() - t < 5
    assert kube.pods == {}  # the failed pod was deleted


def test_bundle_outside_the_shared_root(
    fake_kube: tuple[FakeKube, str], make_bundle: BundleFactory, tmp_path: Path
) -> None:
    _, url = fake_kube
    with pytest.raises(SandboxStartError, match="not below the shared bundle root"):
        make_sandbox(url, tmp_path / "elsewhere").start(make_bundle())
