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

import copy
import functools
import os
import re
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from kinitro.evaluator.envs.base import (
    BenchmarkDef,
    EnvConfig,
    Expert,
    Observation,
    StepOutcome,
)
from kinitro.evaluator.envs.dynamics import DynamicsRandomizer
from kinitro.evaluator.envs.knobs import DYNAMICS, Perturbation, stream_rng
from kinitro.evaluator.errors import UnknownBenchmarkError
from kinitro.protocol.agent_rpc import ArraySpec, ObservationSpec
from kinitro.protocol.conditions import METAWORLD_CAMERAS
from kinitro.protocol.runtime import BENCHMARK_SERIES

PROVIDER = "metaworld"
VERSION = f"v{BENCHMARK_SERIES[PROVIDER]}"  # the series validators announce in the handshake
DEFAULT_CAMERA = "corner"
DEFAULT_RESOLUTION = (84, 84)
GOAL_DIMS = 3
"""The goal position ends Meta-World's state vector."""
_MT1 = re.compile(r"^metaworld/MT1-(?P<task>[a-z0-9-]+-v3)$")


def _env_dict() -> Any:
    # Imported lazily: MuJoCo and Meta-World take ~1 s to import.
    os.environ.setdefault("MUJOCO_GL", "egl")
    from metaworld import env_dict  # noqa: PLC0415 - MUJOCO_GL first; the simulator loads only where an env is built

    return env_dict


COMPILED_MODELS_KEPT = 10
"""Tasks whose compiled model a process keeps (~20 MB each on MT10, meshes included): a
whole MT10, so a rollout worker kept warm between jobs (``rollout.pool``) builds every
environment of its next MT10 job from a copy (~15 ms) instead of a compile (~130 ms)."""


@functools.lru_cache(maxsize=COMPILED_MODELS_KEPT)
def _compiled(fullpath: str) -> Any:
    """The task's MuJoCo model compiled from its XML, once per process, never stepped.

    Compiling (XML parse, meshes, compile) takes ~170 ms of CPU; copying the compiled model
    (``mj_copyModel``) ~15 ms. A rollout worker builds one environment per lockstep slot
    of a task, so every environment after a task's first is a copy: the same bytes as a
    compile, hence the same trajectories (``tests/evaluator/test_envs.py``)."""
    import mujoco  # noqa: PLC0415 - MUJOCO_GL first; the simulator loads only where an env is built

    return mujoco.MjModel.from_xml_path(fullpath)


def _initialize_from_compiled(env: Any) -> tuple[Any, Any]:
    """``MujocoEnv._initialize_simulation`` (Gymnasium 1.x) with a copy of the compiled
    model instead of a compile."""
    import mujoco  # noqa: PLC0415 - MUJOCO_GL first; the simulator loads only where an env is built

    model = copy.copy(_compiled(env.fullpath))
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, env.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, env.height)
    return model, mujoco.MjData(model)


def _construct(cls: Any, kwargs: dict[str, Any]) -> Any:
    """``cls(**kwargs)`` whose simulation starts from a copy of the cached compiled model."""
    env = cls.__new__(cls)
    env._initialize_simulation = functools.partial(_initialize_from_compiled, env)
    env.__init__(**kwargs)
    del env._initialize_simulation  # the class's own method again
    return env


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
        return MetaWorldTaskEnv(task, config.resolved(benchmark))

    def expert(self, task: str) -> Expert | None:
        """Meta-World's hand-written policy for ``task`` (``metaworld.policies``): it reads
        the hand, object and goal positions from the state and steers towards them."""
        _env_dict()  # MUJOCO_GL before Meta-World is imported
        from metaworld.policies import ENV_POLICY_MAP  # noqa: PLC0415 - MUJOCO_GL first; the simulator loads only where an env is built

        policy_class: Any = ENV_POLICY_MAP.get(task)
        if policy_class is None:
            return None
        policy = policy_class()

        def act(state: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Constant(s) may be too high": clipped below
                action = policy.get_action(np.asarray(state, dtype=np.float64))
            clipped: npt.NDArray[np.float32] = np.clip(action, -1.0, 1.0).astype(np.float32)
            return clipped

        return act


class MetaWorldTaskEnv:
    """One Meta-World v3 task, reseeded per episode, success at any step.

    The competition knobs of ``config.conditions`` apply here: the goal is hidden the way
    Meta-World hides it for its ML test tasks (zeros in the state) and its marker is not
    drawn; noise and delay go through :class:`~kinitro.evaluator.envs.knobs.Perturbation`
    and dynamics randomization through
    :class:`~kinitro.evaluator.envs.dynamics.DynamicsRandomizer`.
    """

    def __init__(self, task: str, config: EnvConfig) -> None:
        classes = _env_dict().ALL_V3_ENVIRONMENTS
        if task not in classes:
            raise UnknownBenchmarkError(f"unknown Meta-World task {task!r}")
        self.task = task
        self.config = config
        conditions = config.conditions
        goal_observable = conditions.reveal_goal is not False  # null: shown (MT default)
        self.goal_observable = goal_observable
        self.observe_rgb = "rgb" in config.observation_mode
        self.render_enabled = self.observe_rgb or config.video
        self.state_enabled = "state" in config.observation_mode
        self.camera = config.camera or DEFAULT_CAMERA
        width, height = config.resolution or DEFAULT_RESOLUTION
        kwargs: dict[str, Any] = {}
        if self.render_enabled:
            if self.camera not in METAWORLD_CAMERAS:
                raise UnknownBenchmarkError(
                    f"unknown camera {self.camera!r}; one of {', '.join(METAWORLD_CAMERAS)}"
                )
            kwargs = {
                "render_mode": "rgb_array",
                "camera_name": self.camera,
                "width": width,
                "height": height,
            }
        env = _construct(classes[task], kwargs)
        # Equivalent of Meta-World's set_task() for a goal drawn per episode from the
        # seeded simulator RNG (see the module docstring).
        env._partially_observable = not goal_observable
        del env.sawyer_observation_space  # cached_property: recompute for observability
        env._set_task_called = True
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = config.max_steps
        if not goal_observable:
            _hide_goal_markers(env.model)
        self._env = env
        self.action_dim = int(env.action_space.shape[0])
        self._obs_dim = int(env.sawyer_observation_space.shape[0])
        self._perturb = Perturbation(conditions, self.action_dim)
        self._dynamics = (
            DynamicsRandomizer(env.model, env.data, conditions.dynamics)
            if conditions.dynamics.enabled
            else None
        )

    def reset(self, seed: int) -> Observation:
        self._perturb.begin(seed)
        if self._dynamics is not None:
            self._dynamics.apply(stream_rng(seed, DYNAMICS))
        self._env.seed(int(seed))
        obs, _info = self._env.reset()
        return self._observe(obs)

    def step(self, action: npt.NDArray[np.float32]) -> StepOutcome:
        executed = self._perturb.act(action) if self._perturb.active else action
        obs, reward, terminated, truncated, info = self._env.step(executed)
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
        if not self.observe_rgb:
            return self._state(state)
        frame = self.render()
        assert frame is not None
        if not self.state_enabled:
            return {"rgb": frame}
        return {"state": self._state(state), "rgb": frame}

    def _state(self, state: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        if not self.config.conditions.observation_noise:
            return np.asarray(state, dtype=np.float32)
        noisy = self._perturb.observe(state)
        if not self.goal_observable:
            noisy[-GOAL_DIMS:] = 0.0  # hidden means zeros, noise or not
        return noisy.astype(np.float32)

    def observation_spec(self) -> ObservationSpec:
        state = ArraySpec("float32", (self._obs_dim,))
        if not self.observe_rgb:
            return state
        width, height = self.config.resolution or DEFAULT_RESOLUTION
        rgb = ArraySpec("uint8", (height, width, 3))
        return {"state": state, "rgb": rgb} if self.state_enabled else {"rgb": rgb}

    def action_spec(self) -> ArraySpec:
        return ArraySpec("float32", (self.action_dim,), -1.0, 1.0)

    def task_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "provider": PROVIDER,
            "task": self.task,
            "observation_mode": self.config.observation_mode,
            "action_shape": [self.action_dim],
            "action_low": -1.0,
            "action_high": 1.0,
            "max_steps": self.config.max_steps,
            "goal_observable": self.goal_observable,
        }
        if self.state_enabled:
            info["observation_shape"] = [self._obs_dim]
        if self.observe_rgb:
            width, height = self.config.resolution or DEFAULT_RESOLUTION
            info["camera"] = self.camera
            info["image_shape"] = [height, width, 3]
        return info

    def close(self) -> None:
        self._env.close()


def _hide_goal_markers(model: Any) -> None:
    """Make the scene's goal sites (``goal``, ``goal_lock``, ``mug_goal`` …) invisible."""
    import mujoco  # noqa: PLC0415 - the simulator (~1 s to import) loads only where an env is built

    for i in range(model.nsite):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_SITE, i) or ""
        if "goal" in name.lower():
            model.site_rgba[i, 3] = 0.0
