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
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kubernetes import client
from kubernetes.client import V1NetworkPolicy, V1Pod

from kinitro.evaluator.agent_client import AgentClient
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.sandbox import Sandbox, SandboxLimits, SandboxStartError
from kinitro.evaluator.sandbox.kubernetes_manifests import (
    POLICY_NAME,
    KubernetesConfig,
    network_policy_manifest,
    pod_manifest,
    pod_policy_manifest,
)
from kinitro.evaluator.sandbox.seccomp import oci_profile
from kinitro.protocol.agent_rpc import TaskInfo

from .conftest import ACTION_SPEC, OBS_SPEC, TIMEOUTS, ZERO_AGENT, BundleFactory
from .fakekube import NS, FakeKube, make_sandbox, restricted_violations

# --------------------------------------------------------------------------- manifests


def config_for_manifests(**kw: Any) -> KubernetesConfig:
    return KubernetesConfig(
        image="ghcr.io/kinitro/agent:1-{profile}",
        bundle_volume={"persistentVolumeClaim": {"claimName": "bundles", "readOnly": True}},
        bundle_root=Path("/var/lib/kinitro/bundles"),
        **kw,
    )


def test_pod_manifest_is_locked_down() -> None:
    limits = SandboxLimits(
        cpus=1.5, memory_bytes=2 * 1024**3, tmp_bytes=128 * 1024**2, gpus=1, max_processes=48
    )
    cfg = config_for_manifests(
        runtime_class_name="gvisor", seccomp_localhost_profile="profiles/kinitro.json"
    )
    m = pod_manifest("kinitro-agent-x", "ab/cd", cfg, limits, "torch")
    # Every field is a real Pod field: the official model round-trips it unchanged.
    assert client.ApiClient().sanitize_for_serialization(V1Pod.model_validate(m)) == m
    assert restricted_violations(m) == []
    spec = m["spec"]
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["runtimeClassName"] == "gvisor" and spec["hostUsers"] is False  # user namespace
    assert spec["restartPolicy"] == "Never" and spec["terminationGracePeriodSeconds"] == 5
    psc = spec["securityContext"]
    assert psc["seccompProfile"] == {
        "type": "Localhost",
        "localhostProfile": "profiles/kinitro.json",
    }
    assert 100_000 <= psc["runAsUser"] < 160_000 and psc["runAsGroup"] == psc["runAsUser"]
    (c,) = spec["containers"]
    assert c["image"] == "ghcr.io/kinitro/agent:1-torch"  # the bundle's profile
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert c["resources"]["limits"] == {
        "cpu": "1500m",
        "memory": "2048Mi",
        "ephemeral-storage": "64Mi",
        "nvidia.com/gpu": "1",
    }
    assert c["resources"]["requests"] == c["resources"]["limits"]  # Guaranteed: no swap
    assert "--nproc=48" in c["command"] and "--core=0" in c["command"]
    assert c["command"][c["command"].index("-m") + 1] == "kinitro_agent.runtime"
    assert "/opt/kinitro/agent-env/bin/python" in c["command"]
    assert c["readinessProbe"]["tcpSocket"] == {"port": 7000}
    mounts = {v["mountPath"]: v for v in c["volumeMounts"]}
    assert mounts["/bundle"]["readOnly"] is True and mounts["/bundle"]["subPath"] == "ab/cd"
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"] == {"medium": "Memory", "sizeLimit": "128Mi"}
    assert not any(e["name"].startswith(("KINITRO", "AWS")) for e in c["env"])
    assert "--tcp" in c["command"] and "0.0.0.0:7000" in c["command"]


def test_pods_get_distinct_uids_and_runtime_default_seccomp() -> None:
    cfg = config_for_manifests(host_users=None)
    pods = [pod_manifest(f"p{i}", "x", cfg, SandboxLimits()) for i in range(20)]
    uids = {p["spec"]["securityContext"]["runAsUser"] for p in pods}
    assert len(uids) > 15  # RLIMIT_NPROC counts per uid: one uid per pod
    spec = pods[0]["spec"]
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "runtimeClassName" not in spec and "hostUsers" not in spec
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]


def test_network_policies_isolate_and_admit_only_evaluators() -> None:
    cfg = config_for_manifests()
    base = network_policy_manifest(cfg)
    for p in (base, pod_policy_manifest("kinitro-agent-x", cfg)):
        assert client.ApiClient().sanitize_for_serialization(V1NetworkPolicy.model_validate(p)) == p
        assert p["spec"]["policyTypes"] == ["Ingress", "Egress"] and p["spec"]["egress"] == []
    assert base["spec"]["ingress"] == []  # every agent pod: nothing in, nothing out
    own = pod_policy_manifest("kinitro-agent-x", cfg)
    assert own["spec"]["podSelector"] == {"matchLabels": {"kinitro.io/sandbox": "kinitro-agent-x"}}
    (rule,) = own["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 7000}]
    # Evaluator pods of the agents' own namespace only: no namespaceSelector at all.
    assert rule["from"] == [{"podSelector": {"matchLabels": cfg.evaluator_selector}}]
    other = config_for_manifests(evaluator_namespace="kinitro", evaluator_cidrs=["10.9.0.7/32"])
    (rule,) = pod_policy_manifest("p", other)["spec"]["ingress"]
    assert rule["from"] == [
        {
            "podSelector": {"matchLabels": other.evaluator_selector},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kinitro"}},
        },
        {"ipBlock": {"cidr": "10.9.0.7/32"}},
    ]


def test_seccomp_profile_file_is_the_sandbox_policy() -> None:
    path = Path(__file__).parents[2] / "deploy" / "kubernetes" / "kinitro-agent-seccomp.json"
    assert json.loads(path.read_text()) == oci_profile()
    names = {n for rule in oci_profile()["syscalls"] for n in rule["names"]}  # type: ignore[attr-defined]
    assert {"bpf", "io_uring_setup", "keyctl", "ptrace", "mount", "unshare", "clone3"} <= names


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
        assert name in kube.policies  # the pod's own policy, next to the baseline
        report = running.close()
    assert kube.pods == {} and kube.deleted == [name] and kube.grace[name] == 1
    assert report.reason is not None and "kept" not in report.reason
    assert set(kube.policies) == {POLICY_NAME}
    # Order: the pod's policy before the pod; deleted after the API confirmed the pod gone.
    pods = f"/api/v1/namespaces/{NS}/pods"
    policy = f"/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"
    r = kube.requests
    assert r.index(("POST", policy)) < r.index(("POST", pods))
    deleted_at = r.index(("DELETE", f"{pods}/{name}"))
    policy_deleted_at = r.index(("DELETE", f"{policy}/{name}"))
    confirmations = [i for i, q in enumerate(r) if q == ("GET", f"{pods}/{name}")]
    assert any(deleted_at < i < policy_deleted_at for i in confirmations)
    # A second sandbox reuses the existing baseline (the 409 is not an error).
    sandbox2 = make_sandbox(url, tmp_path)
    with sandbox2.start(bundle):
        pass
    assert len(kube.deleted) == 2


def test_a_pod_slow_to_die_keeps_its_policy_until_the_sweep(
    fake_kube: tuple[FakeKube, str],
    make_bundle: BundleFactory,
    tmp_path: Path,
    hostpath_allowed: None,
) -> None:
    kube, url = fake_kube
    sandbox = make_sandbox(url, tmp_path)
    sandbox.config = replace(sandbox.config, delete_grace_s=3, delete_timeout_s=0.3)
    stubborn = make_bundle(
        "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + ZERO_AGENT
    )
    running = sandbox.start(stubborn)
    agent = AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS)
    agent.hello()  # loads the module: SIGTERM is ignored from here on
    report = running.close()  # the agent keeps serving: only SIGKILL after 3 s ends it
    assert report.reason is not None and "NetworkPolicy kept" in report.reason
    assert running.name in kube.policies  # the pod may still be running: keep it isolated
    assert sandbox.remove_stale(min_age=timedelta(0)) == []  # its pod still exists
    deadline = time.monotonic() + 10
    while running.name not in kube.deleted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.remove_stale(min_age=timedelta(0)) == [running.name]
    assert set(kube.policies) == {POLICY_NAME}


def test_one_api_client_per_process(
    fake_kube: tuple[FakeKube, str],
    make_bundle: BundleFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, url = fake_kube
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "fake", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    options = {"image": "agent:1", "namespace": NS, "bundle_volume": {"emptyDir": {}}}
    first = SandboxLauncher(str(make_bundle(name="a")), "kubernetes", kubernetes=options)
    second = SandboxLauncher(str(make_bundle(name="b")), "kubernetes", kubernetes=options)
    assert first._sandbox() is first._sandbox()  # one sandbox per recipe and process …
    assert first._sandbox().api_client is second._sandbox().api_client  # … one client
    assert first._sandbox().api_client.configuration.host == url


def test_rbac_in_the_guide_grants_exactly_the_verbs_used(
    fake_kube: tuple[FakeKube, str],
    make_bundle: BundleFactory,
    tmp_path: Path,
    hostpath_allowed: None,
) -> None:
    kube, url = fake_kube
    sandbox = make_sandbox(url, tmp_path)
    with sandbox.start(make_bundle()) as running:
        running.close()
    sandbox.remove_stale()
    used = set()
    for method, path in kube.requests:
        parts = path.strip("/").split("/")
        resource = parts[5] if parts[0] == "apis" else parts[4]
        named = len(parts) > (6 if parts[0] == "apis" else 5)
        if parts[-1] == "log":
            resource = "pods/log"
        verb = {"POST": "create", "DELETE": "delete"}.get(method) or ("get" if named else "list")
        used.add((resource, verb))
    guide = (Path(__file__).parents[2] / "docs" / "guides" / "kubernetes.md").read_text()
    role = next(
        doc
        for block in guide.split("```yaml")[1:]
        for doc in yaml.safe_load_all(block.split("```")[0])
        if doc and doc.get("kind") == "Role"
    )
    granted = {(r, v) for rule in role["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert used == granted, f"used {sorted(used)}, granted {sorted(granted)}"


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
