"""KubernetesSandbox against a fake Kubernetes API server spoken to over real HTTP.

The fake implements the REST paths the official client uses (pods: create, read, log,
delete; networkpolicies: create) with Kubernetes-shaped JSON and ``Status`` errors, runs a
Pod Security "restricted" admission check, and plays the kubelet: it starts the pod's
container command as a local process (bundle volume → host path + subPath, pod IP →
127.0.0.1), so the lifecycle create → running → connect → RPC → delete is exercised with
the real runtime.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kubernetes import client
from kubernetes.client import V1NetworkPolicy, V1Pod

from kinitro.evaluator.agent_client import AgentClient
from kinitro.evaluator.sandbox import Sandbox, SandboxLimits, SandboxStartError
from kinitro.evaluator.sandbox.kubernetes import (
    POLICY_NAME,
    KubernetesConfig,
    network_policy_manifest,
    pod_manifest,
)
from kinitro.protocol.agent_rpc import TaskInfo

from .conftest import ACTION_SPEC, OBS_SPEC, TIMEOUTS, BundleFactory
from .fakekube import NS, FakeKube, make_sandbox, restricted_violations

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
