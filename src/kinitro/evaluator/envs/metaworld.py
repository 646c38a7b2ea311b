"""Meta-World v3 (MuJoCo, Gymnasium API) benchmark provider.

Benchmark ids (bump the ``-vN`` suffix whenever a change could change scores):

- ``metaworld/MT1-<task>-v3`` — one task, goal observable (e.g. ``metaworld/MT1-reach-v3``)
- ``metaworld/MT10-v3``, ``metaworld/MT25-v3``, ``metaworld/MT50-v3`` — multi-task sets,
  goal observable (Meta-World's MT convention)
- ``metaworld/ML10-test-v3``, ``metaworld/ML45-test-v3`` — the meta-learning held-out test
  tasks, goal hidden (Meta-World's ML convention)

Seeding: every episode draws its goal and object positions from the simulator's own
``np_random`` seeded with the episode seed (``seeded_rand_vec`` mode), instead of a fixed
list of 50 pre-sampled goals drawn from the global NumPy RNG. The same episode seed therefore
gives the same initial state on every machine, and the positions cannot be memorised.

Success is Meta-World's ``info["success"]`` at any step; as in Meta-World's own evaluation
(``AutoTerminateOnSuccessWrapper``), the first successful step ends the episode with
``terminated=True``. Otherwise it ends (``truncated``) after ``max_steps``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import numpy.typing as npt

from kinitro.evaluator.envs.base import (
    BenchmarkDef,
    EnvConfig,
    Observation,
    StepOutcome,
)
from kinitro.protocol.agent_rpc import ArraySpec, ObservationSpec
from kinitro.protocol.runtime import BENCHMARK_SERIES

PROVIDER = "metaworld"
VERSION = f"v{BENCHMARK_SERIES[PROVIDER]}"  # the series validators announce in the handshake
DEFAULT_CAMERA = "corner"
DEFAULT_RESOLUTION = (84, 84)
_MT1 = re.compile(r"^metaworld/MT1-(?P<task>[a-z0-9-]+-v3)$")


def _env_dict() -> Any:
    # Imported lazily: MuJoCo and Meta-World take ~1 s to import.
    os.environ.setdefault("MUJOCO_GL", "egl")
    from metaworld import env_dict

    return env_dict


class MetaWorldProvider:
    """Provider for the Meta-World v3 task families (MT1/MT10/MT25/MT50, ML10/ML45 test)."""

    name = PROVIDER

    def benchmarks(self) -> list[BenchmarkDef]:
        d = _env_dict()
        out = [
            BenchmarkDef(
                f"metaworld/MT10-{VERSION}", PROVIDER, tuple(d.MT10_V3), "Meta-World MT10"
            ),
            BenchmarkDef(
                f"metaworld/MT25-{VERSION}", PROVIDER, tuple(d.MT25_V3), "Meta-World MT25"
            ),
            BenchmarkDef(
                f"metaworld/MT50-{VERSION}", PROVIDER, tuple(d.MT50_V3), "Meta-World MT50"
            ),
            BenchmarkDef(
                f"metaworld/ML10-test-{VERSION}",
                PROVIDER,
                tuple(d.ML10_V3["test"]),
                "Meta-World ML10 held-out test tasks (goal hidden)",
                goal_observable=False,
            ),
            BenchmarkDef(
                f"metaworld/ML45-test-{VERSION}",
                PROVIDER,
                tuple(d.ML45_V3["test"]),
                "Meta-World ML45 held-out test tasks (goal hidden)",
                goal_observable=False,
            ),
        ]
        out += [
            BenchmarkDef(f"metaworld/MT1-{task}", PROVIDER, (task,), f"Meta-World MT1 {task}")
            for task in d.ALL_V3_ENVIRONMENTS
        ]
        return out

    def resolve(self, benchmark_id: str) -> BenchmarkDef | None:
        match = _MT1.match(benchmark_id)
        if match:
            task = match["task"]
            if task not in _env_dict().ALL_V3_ENVIRONMENTS:
                return None
            return BenchmarkDef(benchmark_id, PROVIDER, (task,), f"Meta-World MT1 {task}")
        for bench in self.benchmarks():
            if bench.benchmark_id == benchmark_id:
                return bench
        return None

    def make_env(self, benchmark: BenchmarkDef, task: str, config: EnvConfig) -> MetaWorldTaskEnv:
        return MetaWorldTaskEnv(task, config, goal_observable=benchmark.goal_observable)


class MetaWorldTaskEnv:
    """One Meta-World v3 task, reseeded per episode, success at any step."""

    def __init__(self, task: str, config: EnvConfig, *, goal_observable: bool = True) -> None:
        classes = _env_dict().ALL_V3_ENVIRONMENTS
        if task not in classes:
            raise KeyError(f"unknown Meta-World task {task!r}")
        self.task = task
        self.config = config
        self.goal_observable = goal_observable
        self.render_enabled = config.observation_mode == "state+rgb"
        width, height = config.resolution or DEFAULT_RESOLUTION
        kwargs: dict[str, Any] = {}
        if self.render_enabled:
            kwargs = {
                "render_mode": "rgb_array",
                "camera_name": config.camera or DEFAULT_CAMERA,
                "width": width,
                "height": height,
            }
        env = classes[task](**kwargs)
        # Equivalent of Meta-World's set_task() for a goal drawn per episode from the
        # seeded simulator RNG (see the module docstring).
        env._partially_observable = not goal_observable
        del env.sawyer_observation_space  # cached_property: recompute for observability
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = config.max_steps
        self._env = env
        self.action_dim = int(env.action_space.shape[0])
        self._obs_dim = int(env.sawyer_observation_space.shape[0])

    def reset(self, seed: int) -> Observation:
        self._env.seed(int(seed))
        obs, _info = self._env.reset()
        return self._observe(obs)

    def step(self, action: npt.NDArray[np.float32]) -> StepOutcome:
        obs, reward, terminated, truncated, info = self._env.step(action)
        success = bool(info.get("success", 0.0) >= 1.0)
        return StepOutcome(
            observation=self._observe(obs),
            reward=float(reward),
            terminated=bool(terminated) or success,
            truncated=bool(truncated) and not success,
            success=success,
            info=info,  # raw; the recorder keeps scalar entries on sampled steps only
        )

    def render(self) -> npt.NDArray[np.uint8] | None:
        if not self.render_enabled:
            return None
        frame = self._env.render()
        return None if frame is None else np.ascontiguousarray(frame, dtype=np.uint8)

    def _observe(self, state: npt.NDArray[Any]) -> Observation:
        state32 = np.asarray(state, dtype=np.float32)
        if not self.render_enabled:
            return state32
        frame = self.render()
        assert frame is not None
        return {"state": state32, "rgb": frame}

    def observation_spec(self) -> ObservationSpec:
        state = ArraySpec("float32", (self._obs_dim,))
        if not self.render_enabled:
            return state
        width, height = self.config.resolution or DEFAULT_RESOLUTION
        return {"state": state, "rgb": ArraySpec("uint8", (height, width, 3))}

    def action_spec(self) -> ArraySpec:
        return ArraySpec("float32", (self.action_dim,), -1.0, 1.0)

    def task_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "provider": PROVIDER,
            "task": self.task,
            "observation_mode": self.config.observation_mode,
            "observation_shape": [self._obs_dim],
            "action_shape": [self.action_dim],
            "action_low": -1.0,
            "action_high": 1.0,
            "max_steps": self.config.max_steps,
            "goal_observable": self.goal_observable,
        }
        if self.render_enabled:
            width, height = self.config.resolution or DEFAULT_RESOLUTION
            info["camera"] = self.config.camera or DEFAULT_CAMERA
            info["image_shape"] = [height, width, 3]
        return info

    def close(self) -> None:
        self._env.close()
