"""Evaluator fixtures: agent bundles written from source, one Ray instance per session."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kinitro.evaluator.envs import EnvConfig, derive_episode_seed, get_benchmark, make_env
from kinitro.evaluator.rollout.pool import ensure_ray

REACH_AGENT = """
import numpy as np

class Agent:
    # Scripted reach policy: move the hand towards the goal in the observation.
    def reset(self, task):
        assert "seed" not in repr(task).lower(), task  # seeds never reach the agent
        assert sorted(task) == ["benchmark_id", "max_steps", "metadata", "name"], task
        self.task = task

    def act(self, observation):
        hand, goal = observation[0:3], observation[36:39]
        delta = np.clip((goal - hand) * 10.0, -1.0, 1.0)
        return np.array([delta[0], delta[1], delta[2], 0.0], dtype=np.float32)
"""

RANDOM_AGENT = """
import hashlib
import numpy as np

class Agent:
    # Uniform random actions, seeded by the episode's first observation (the agent is not
    # told which episode it plays), so results depend neither on sharding nor on order.
    def reset(self, task):
        self.rng = None

    def act(self, observation):
        if self.rng is None:
            digest = hashlib.sha256(np.ascontiguousarray(observation).tobytes()).digest()
            self.rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        return self.rng.uniform(-1, 1, 4).astype(np.float32)
"""

# Reach policy for "state+rgb" observations: checks the image it receives.
RGB_REACH_AGENT = REACH_AGENT.replace(
    "        hand, goal = observation[0:3], observation[36:39]",
    "        assert observation['rgb'].shape == (48, 64, 3), observation['rgb'].shape\n"
    "        assert observation['rgb'].dtype == np.uint8\n"
    "        observation = observation['state']\n"
    "        hand, goal = observation[0:3], observation[36:39]",
)

# Reach policy that hard-crashes (the whole runtime process) at step 5 of one episode: the
# one whose first observation starts with TARGET (filled in by the ``bundles`` fixture with
# episode 1 of a seed-11 reach job; the agent is never told which episode it plays).
CRASH_AGENT = REACH_AGENT.replace(
    "        self.task = task\n",
    "        self.task = task\n        self.steps = 0\n",
).replace(
    "        hand, goal",
    "        self.steps += 1\n"
    "        if self.steps == 1:\n"
    "            self.marked = np.allclose(observation[:6], TARGET, atol=1e-6)\n"
    "        if self.marked and self.steps == 5:\n"
    "            import os\n"
    "            os._exit(3)\n"
    "        hand, goal",
)

# Reach policy whose code raises at step 5 of that same episode (the runtime survives and
# names the slot).
RAISES_AGENT = CRASH_AGENT.replace(
    "            import os\n            os._exit(3)\n",
    '            raise RuntimeError("policy bug in episode 1")\n',
)

# Tags every action with which instance of the class produced it (the gripper channel).
INSTANCE_AGENT = """
import numpy as np

class Agent:
    made = 0

    def __init__(self):
        Agent.made += 1
        self.tag = Agent.made / 10.0

    def reset(self, task):
        pass

    def act(self, observation):
        return np.array([0.0, 0.0, 0.0, self.tag], np.float32)
"""

# Zero actions, slowly: ~max_steps * 20 ms per episode (used to kill the evaluator mid-job).
SLOW_AGENT = """
import time
import numpy as np

class Agent:
    def reset(self, task):
        pass

    def act(self, observation):
        time.sleep(0.02)
        return np.zeros(4, np.float32)
"""


BROKEN_AGENT = """
import numpy_but_misspelled  # noqa: F401 - the bundle cannot be imported


class Agent:
    pass
"""


def write_bundle(root: Path, source: str, *, slots: int = 1) -> Path:
    """A bundle directory; ``slots`` > 1 lets the evaluator batch that many episodes."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "kinitro.toml").write_text(
        f'name = "{root.name}"\nentrypoint = "agent:Agent"\nspec_version = 1\nslots = {slots}\n'
    )
    (root / "agent.py").write_text(textwrap.dedent(source))
    for p in [root, *root.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    # The sandbox runs the agent as an unprivileged uid: every parent must be traversable.
    for parent in root.parents:
        if parent == Path("/tmp") or parent == Path("/"):
            break
        os.chmod(parent, parent.stat().st_mode | 0o005)
    return root


def first_observation(seed: int, task: str, k: int) -> list[float]:
    """The first observation of episode ``k`` of ``task`` in a job with base ``seed``."""

    env = make_env(get_benchmark(f"metaworld/MT1-{task}"), task, EnvConfig(max_steps=10))
    try:
        obs = env.reset(derive_episode_seed(seed, task, k))
    finally:
        env.close()
    return [float(x) for x in obs]  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bundles")
    target = f"TARGET = {first_observation(11, 'reach-v3', 1)[:6]!r}\n"
    return {
        # Batched (several episodes per round trip) unless the name ends in "_single".
        "reach": write_bundle(base / "reach", REACH_AGENT, slots=4),
        "reach_single": write_bundle(base / "reach_single", REACH_AGENT),
        "random": write_bundle(base / "random", RANDOM_AGENT, slots=4),
        "random_single": write_bundle(base / "random_single", RANDOM_AGENT),
        "crash": write_bundle(base / "crash", target + CRASH_AGENT, slots=4),
        "raises": write_bundle(base / "raises", target + RAISES_AGENT, slots=4),
        "instances": write_bundle(base / "instances", INSTANCE_AGENT, slots=4),
        "slow": write_bundle(base / "slow", SLOW_AGENT),
        "reach_rgb": write_bundle(base / "reach_rgb", RGB_REACH_AGENT, slots=2),
        "broken": write_bundle(base / "broken", BROKEN_AGENT),
    }


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """One local Ray for the whole session (startup takes 5–40 s on this shared box).

    Yields its address: evaluator subprocesses attach with ``--ray-address`` (they inherit
    the cluster's token through ``RAY_AUTH_TOKEN``) instead of starting their own Ray.
    """

    ensure_ray(num_cpus=2)
    import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A tmp dir the sandbox uid can traverse (bundle cache, media)."""
    tmp_path.chmod(0o755)
    return tmp_path
