"""Hostile agents against the agent environment: nothing of the simulator or Kinitro inside.

The sandbox binds only the agent environment (``kinitro-agent``, numpy, msgpack) and the
base interpreter, with every other package directory covered. An agent that could import
Meta-World, MuJoCo, Gymnasium or the evaluator could rebuild its environment, compute
rewards or call Meta-World's scripted experts; each attempt here must fail inside, the
failure being the agent's (``agent_crash``), and a search of the whole visible file system
must find none of those packages anywhere.
"""

from __future__ import annotations

import pytest

from kinitro.evaluator.agent_client import AgentCrashed

from .conftest import BundleFactory
from .hostile import RunAgent, attack

IMPORTER = """
import importlib, sys

class Agent:
    def reset(self, task):
        self.module = task.metadata["module"]

    def act(self, obs):
        try:
            importlib.import_module(self.module)
        except ImportError as exc:
            raise RuntimeError(f"contained: {type(exc).__name__}: {exc}")
        return obs[:4].astype("float32")                       # imported: escaped
"""

# What an agent would try: the simulator stack, the evaluator, and Kinitro itself.
FORBIDDEN = [
    "metaworld",
    "mujoco",
    "gymnasium",
    "kinitro",
    "kinitro.evaluator",
    "kinitro.evaluator.envs.metaworld",
    "ray",
    "pydantic",
    "sqlalchemy",
]


@pytest.mark.parametrize("module", FORBIDDEN)
def test_simulator_and_kinitro_are_not_importable(
    module: str, run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(IMPORTER), metadata={"module": module})
    assert isinstance(failure, AgentCrashed), failure
    assert "contained: ModuleNotFoundError" in str(failure)


# Beyond sys.path: walk every directory the sandbox shows (package directories of other
# interpreters included) and report any trace of those packages — a module directory, a
# .py file, a shared library or a dist-info.
SEARCHER = """
import os, sys

NEEDLES = ("metaworld", "mujoco", "gymnasium", "kinitro", "robosuite", "dm_control")

def is_package(name):
    low = name.lower()
    stem = low.removesuffix(".py").split("-")[0].split(".cpython")[0]
    return stem in NEEDLES or low.startswith("libmujoco")

class Agent:
    def reset(self, task):
        pass

    def act(self, obs):
        found, seen = [], 0
        for root, dirs, files in os.walk("/", onerror=lambda e: None):
            if root in ("/proc", "/sys", "/dev"):
                dirs[:] = []
                continue
            for name in dirs + files:
                seen += 1
                path = os.path.join(root, name)
                if is_package(name) and path != "/opt/kinitro":    # the env's mount point
                    found.append(path)
        if found:
            return obs[:4].astype("float32")
        raise RuntimeError(f"contained: searched {seen} entries; sys.path={sys.path}")
"""


def test_no_simulator_or_kinitro_files_anywhere(
    run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    failure, _ = attack(run_agent, make_bundle(SEARCHER))
    assert isinstance(failure, AgentCrashed), failure
    assert "contained: searched" in str(failure)


MODULES = """
import sys

class Agent:
    def reset(self, task):
        pass

    def act(self, obs):
        import numpy, msgpack, kinitro_agent.runtime
        mods = sorted(m.split(".")[0] for m in sys.modules)
        raise RuntimeError("MODULES " + " ".join(sorted(set(mods))))
"""


def test_the_environment_holds_the_runtime_and_numpy_only(
    run_agent: RunAgent, make_bundle: BundleFactory
) -> None:
    """What a policy can rely on: numpy and msgpack, next to the runtime serving it."""
    failure, _ = attack(run_agent, make_bundle(MODULES))
    loaded = set(str(failure).split("MODULES ", 1)[1].split(" (")[0].split())
    assert {"numpy", "msgpack", "kinitro_agent"} <= loaded
    assert not loaded & {"kinitro", "gymnasium", "mujoco", "metaworld", "pydantic"}
