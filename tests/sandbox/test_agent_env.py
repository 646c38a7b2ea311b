"""The agent environment: what it holds, how a bundle's profile picks one, host checks."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from kinitro.evaluator.agent_client import AgentClient, AgentCrashed
from kinitro.evaluator.sandbox import BubblewrapSandbox, SandboxUnavailable
from kinitro.evaluator.sandbox.agent_env import AgentEnvironment, profile_of
from kinitro.evaluator.sandbox.host import SandboxHostError, prepare_host
from kinitro.protocol.agent_rpc import TaskInfo
from kinitro_agent.profiles import PROFILES

from .conftest import ACTION_SPEC, OBS_SPEC, TIGHT_LIMITS, TIMEOUTS, BundleFactory

REPO = Path(__file__).parents[2]


def distributions(env: AgentEnvironment) -> set[str]:
    (site,) = env.root.glob("lib/python3*/site-packages")
    return {d.name.split("-")[0].lower() for d in site.glob("*.dist-info")}


def test_base_environment_holds_only_the_runtime_and_its_dependencies() -> None:
    env = AgentEnvironment.find("base")
    assert distributions(env) == {"kinitro_agent", "numpy", "msgpack"}
    env.check_runtime()  # the evaluator's kinitro-agent version


def test_every_profile_has_a_hash_lock_and_a_documented_size() -> None:
    doc = (REPO / "docs" / "agent-rpc.md").read_text()
    for profile, description in PROFILES.items():
        assert f"| `{profile}`" in doc, profile
        assert "MB" in description or "GB" in description
        if profile != "base":
            lock = REPO / "packages" / "kinitro-agent" / "profiles" / f"{profile}.txt"
            lines = [ln for ln in lock.read_text().splitlines() if "==" in ln and ln[0] != "#"]
            assert lines and all(ln.endswith("\\") for ln in lines), "pinned with hashes"


def test_profile_is_read_from_the_manifest(make_bundle: BundleFactory) -> None:
    assert profile_of(make_bundle()) == "base"
    torch = make_bundle(manifest_extra='profile = "torch"\n', name="t")
    assert profile_of(torch) == "torch"
    broken = make_bundle(name="broken")
    (broken / "kinitro.toml").write_text("name = [")
    assert profile_of(broken) == "base"  # the runtime reports the manifest itself


def test_a_stale_environment_is_refused(tmp_path: Path) -> None:
    env = AgentEnvironment.find("base")
    copy = tmp_path / "base"
    (copy / "lib" / "python3.11" / "site-packages" / "kinitro_agent-0.0.1.dist-info").mkdir(
        parents=True
    )
    (copy / "bin").mkdir()
    (copy / "bin" / "python").symlink_to(env.python.resolve())
    shutil.copy(env.root / "pyvenv.cfg", copy / "pyvenv.cfg")
    with pytest.raises(SandboxUnavailable, match=r"holds kinitro-agent \['0.0.1'\]"):
        AgentEnvironment.find("base", tmp_path).check_runtime()
    with pytest.raises(SandboxHostError, match="rebuild it"):
        prepare_host("bubblewrap", agent_envs=tmp_path)


def test_host_check_refuses_a_missing_environment(tmp_path: Path) -> None:
    with pytest.raises(SandboxHostError, match="scripts/bootstrap"):
        prepare_host("bubblewrap", agent_envs=tmp_path)
    assert prepare_host("kubernetes", agent_envs=tmp_path).profiles == ()
    report = prepare_host("bubblewrap")
    assert "base" in report.profiles


def test_other_package_directories_are_hidden() -> None:
    env = AgentEnvironment.find("base")
    hidden = env.hidden_package_dirs()
    assert all(not p.is_relative_to(env.root) for p in hidden)
    base_site = next(env.base_prefix.glob("lib/python3*/site-packages"), None)
    if base_site is not None:
        assert base_site.resolve() in hidden


TORCH_AGENT = """
import numpy as np
import torch

class Agent:
    def __init__(self):
        torch.manual_seed(0)
        self.net = torch.nn.Linear(39, 4)

    def reset(self, task):
        pass

    def act(self, obs):
        with torch.no_grad():
            out = torch.tanh(self.net(torch.from_numpy(np.asarray(obs, np.float32))))
        return out.numpy()
"""


def run_one_step(sandbox: BubblewrapSandbox, bundle: Path) -> np.ndarray:
    with (
        sandbox.start(bundle) as running,
        AgentClient.connect(running.endpoint, OBS_SPEC, ACTION_SPEC, timeouts=TIMEOUTS) as agent,
    ):
        agent.hello()
        agent.reset(TaskInfo("reach-v3"))
        return agent.act(np.zeros(39))


def test_torch_profile(make_bundle: BundleFactory) -> None:
    """A bundle asking for ``torch`` runs its network on the CPU build; on ``base`` the
    same code cannot import torch (the agent's fault)."""
    try:
        AgentEnvironment.find("torch")
    except SandboxUnavailable:
        pytest.skip("the torch profile is not built here (KINITRO_AGENT_PROFILES='base torch')")

    sandbox = BubblewrapSandbox(replace(TIGHT_LIMITS, memory_bytes=4 * 1024**3))
    torch_bundle = make_bundle(TORCH_AGENT, manifest_extra='profile = "torch"\n', name="tb")
    action = run_one_step(sandbox, torch_bundle)
    assert action.shape == (4,) and np.all(np.abs(action) <= 1)
    with pytest.raises(AgentCrashed, match="No module named 'torch'"):
        run_one_step(sandbox, make_bundle(TORCH_AGENT, name="on-base"))
