"""Competition knobs: each one changes the episode, and given the seed replays it exactly.

Determinism is checked per knob on a task where the knob matters, all knobs together on
every registered task, and through the real replay path (action log v2 → ``replay``),
including what the agent was shown (step samples) for the knobs that act on observations.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from typer.testing import CliRunner

from kinitro.cli.main import app
from kinitro.evaluator.envs import EnvConfig, derive_episode_seed, get_benchmark, make_env
from kinitro.evaluator.envs.knobs import derive_stream_seed
from kinitro.evaluator.episode_logger import (
    VERSION,
    ActionLog,
    EpisodeRecorder,
    decode_action_log,
    encode_action_log,
)
from kinitro.evaluator.errors import UnknownBenchmarkError
from kinitro.evaluator.replay import replay
from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.conditions import Conditions, DynamicsRandomization

from .conftest import REACH_AGENT, write_bundle

STEPS = 12
ACTIONS = np.random.default_rng(7).uniform(-1, 1, size=(STEPS, 4)).astype(np.float32)
DYNAMICS = DynamicsRandomization(mass=(0.5, 2.0), friction=(0.5, 2.0), damping=(0.5, 2.0))
KNOBS: dict[str, Conditions] = {
    "observation_noise": Conditions(observation_noise=0.02),
    "action_noise": Conditions(action_noise=0.3),
    "action_delay": Conditions(action_delay=3),
    "dynamics": Conditions(dynamics=DYNAMICS),
    "hidden_goal": Conditions(reveal_goal=False),
}
ALL_KNOBS = Conditions(
    reveal_goal=False, observation_noise=0.02, action_noise=0.3, action_delay=2, dynamics=DYNAMICS
)


def _state(obs: object) -> np.ndarray:
    return np.asarray(obs["state"] if isinstance(obs, dict) else obs)


def _trajectory(env, seed: int, actions: np.ndarray = ACTIONS):
    obs = [_state(env.reset(seed))]
    rewards = []
    for action in actions:
        out = env.step(action)
        obs.append(_state(out.observation))
        rewards.append(out.reward)
    return np.stack(obs), np.asarray(rewards)


def _env(task: str, conditions: Conditions, **config):
    bench = get_benchmark(f"metaworld/MT1-{task}")
    return make_env(bench, task, EnvConfig(max_steps=200, conditions=conditions, **config))


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_each_knob_changes_the_episode_and_replays_from_the_seed(knob: str) -> None:
    seed = derive_episode_seed(11, "pick-place-v3", 0)
    plain, knobbed = _env("pick-place-v3", Conditions()), _env("pick-place-v3", KNOBS[knob])
    try:
        obs0, rew0 = _trajectory(plain, seed)
        obs1, rew1 = _trajectory(knobbed, seed)
        _trajectory(knobbed, seed + 1)  # another episode in between: nothing carries over
        obs2, rew2 = _trajectory(knobbed, seed)
        other, _ = _trajectory(knobbed, seed + 2)
    finally:
        plain.close()
        knobbed.close()
    assert np.array_equal(obs1, obs2) and np.array_equal(rew1, rew2)
    assert not np.array_equal(obs0, obs1), f"{knob} had no effect"
    if knob == "hidden_goal":
        assert np.all(obs1[:, -3:] == 0) and np.any(obs0[:, -3:] != 0)
        assert np.array_equal(obs0[:, :-3], obs1[:, :-3]) and np.array_equal(rew0, rew1)
    if knob == "observation_noise":
        # noise on what the agent sees only: the simulation itself is untouched
        assert np.array_equal(rew0, rew1)
        assert 0.005 < np.std(obs1 - obs0) < 0.05
    if knob in ("action_noise", "action_delay", "dynamics"):
        assert not np.array_equal(rew0, rew1)
    if knob != "hidden_goal":
        # knobs draw from their own streams: another seed, other draws
        assert not np.array_equal(other, obs1)


def test_knobs_keep_the_simulators_draws() -> None:
    """Goal and object positions come from the simulator's RNG, untouched by the knobs."""
    seed = derive_episode_seed(3, "reach-v3", 0)
    plain = _env("reach-v3", Conditions())
    knobbed = _env("reach-v3", Conditions(action_noise=0.5, action_delay=4, dynamics=DYNAMICS))
    try:
        a, b = plain.reset(seed), knobbed.reset(seed)
    finally:
        plain.close()
        knobbed.close()
    # objects and goal where the seed put them (the hand settles under other dynamics)
    assert np.array_equal(a[4:7], b[4:7]) and np.array_equal(a[-3:], b[-3:])
    assert not np.array_equal(a[:3], b[:3])


def test_action_delay_executes_the_action_of_k_steps_before() -> None:
    """With delay k, the hand first holds still for k steps, then follows the agent's path."""
    seed = derive_episode_seed(5, "reach-v3", 0)
    push = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (8, 1))
    plain, delayed = _env("reach-v3", Conditions()), _env("reach-v3", Conditions(action_delay=3))
    try:
        hand0 = _trajectory(plain, seed, push)[0][:, 0]
        hand3 = _trajectory(delayed, seed, push)[0][:, 0]
    finally:
        plain.close()
        delayed.close()
    assert np.allclose(hand3[:4], hand3[0], atol=2e-3)  # 3 no-op steps
    assert hand3[-1] > hand3[0] + 0.01 and hand0[-1] > hand3[-1]


def test_stream_seeds_are_versioned_and_separate() -> None:
    a = derive_stream_seed(1, "action-noise")
    assert a == derive_stream_seed(1, "action-noise")
    assert len({a, derive_stream_seed(2, "action-noise"), derive_stream_seed(1, "dynamics")}) == 3


def test_every_task_is_deterministic_with_every_knob() -> None:
    """All knobs together, on every registered task: same seed → same episode."""
    bench = get_benchmark("metaworld/MT50-v3")
    config = EnvConfig(max_steps=50, conditions=ALL_KNOBS)
    actions = ACTIONS[:6]
    for task in bench.tasks:
        env = make_env(bench, task, config)
        try:
            seed = derive_episode_seed(42, task, 0)
            obs1, rew1 = _trajectory(env, seed, actions)
            _trajectory(env, derive_episode_seed(42, task, 1), actions)
            obs2, rew2 = _trajectory(env, seed, actions)
        finally:
            env.close()
        assert np.array_equal(obs1, obs2) and np.array_equal(rew1, rew2), task
        assert np.all(obs1[:, -3:] == 0), task


def _log_episode(task: str, conditions: Conditions, seed: int) -> tuple[ActionLog, dict]:
    """Play ``ACTIONS`` the way the rollout loop does; the action log and step samples."""
    env = _env(task, conditions)
    rec = EpisodeRecorder(max_steps=200, action_dim=4, step_log_interval=3)
    obs = env.reset(seed)
    try:
        for step, action in enumerate(ACTIONS, 1):
            out = env.step(action)
            last = step == len(ACTIONS) or out.terminated
            rec.record(step, obs, action, out.reward, out.success, out.info, last=last)
            obs = out.observation
            if last:
                break
    finally:
        env.close()
    bench = get_benchmark(f"metaworld/MT1-{task}")
    resolved = EnvConfig(conditions=conditions).resolved(bench).conditions
    log = rec.action_log(
        benchmark_id=bench.benchmark_id,
        task=task,
        job_id="job",
        episode_index=0,
        seed=seed,
        max_steps=200,
        conditions=resolved,
    )
    return decode_action_log(encode_action_log(log)), {s.step: s.observation for s in rec.samples}


@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_replay_recreates_each_knob_and_catches_a_lie_about_it(knob: str) -> None:
    log, samples = _log_episode("pick-place-v3", KNOBS[knob], seed=123)
    assert (
        log.conditions
        == EnvConfig(conditions=KNOBS[knob])
        .resolved(get_benchmark("metaworld/MT1-pick-place-v3"))
        .conditions
    )
    report = replay(log, samples)
    assert report.ok and report.exact and report.observations_checked == len(samples), report
    # The same log claiming the plain conditions (a validator hiding the knob it applied,
    # or applying none) no longer replays.
    plain = Conditions(reveal_goal=True)
    lie = replay(ActionLog(**{**_fields(log), "conditions": plain}), samples)
    assert not lie.ok, knob
    # Without samples the log's own claim is checked against the job's knobs.
    claimed = replay(ActionLog(**{**_fields(log), "conditions": plain}), conditions=log.conditions)
    assert not claimed.ok and not claimed.conditions_match
    assert replay(log, conditions=log.conditions).ok


def _fields(log: ActionLog) -> dict:
    return {name: getattr(log, name) for name in ActionLog.__dataclass_fields__}


def test_version_1_logs_still_replay() -> None:
    """A log written before the knobs existed (version 1) decodes and replays."""

    log, _ = _log_episode("reach-v3", Conditions(), seed=9)
    v2 = encode_action_log(log)
    assert struct.unpack_from("<H", v2, 4)[0] == VERSION == 2
    head = 29
    pos = head
    for _ in range(3):
        (n,) = struct.unpack_from("<H", v2, pos)
        pos += 2 + n
    (n,) = struct.unpack_from("<H", v2, pos)
    v1 = bytearray(v2[:pos] + v2[pos + 2 + n :])
    v1[4:6] = struct.pack("<H", 1)
    old = decode_action_log(bytes(v1))
    assert old.conditions == Conditions(reveal_goal=True)
    assert replay(old).ok


def test_camera_modes_render_the_stated_image_and_hide_the_goal_marker() -> None:
    seed = derive_episode_seed(1, "reach-v3", 0)
    small = {"resolution": (64, 48), "camera": "topview"}
    shown = _env("reach-v3", Conditions(), observation_mode="rgb", **small)
    hidden = _env("reach-v3", Conditions(reveal_goal=False), observation_mode="state+rgb", **small)
    try:
        first = shown.reset(seed)
        assert set(first) == {"rgb"} and first["rgb"].shape == (48, 64, 3)
        assert shown.observation_spec() == {"rgb": shown.observation_spec()["rgb"]}
        again = shown.reset(seed)
        step = shown.step(ACTIONS[0]).observation
        assert np.array_equal(first["rgb"], again["rgb"]) and step["rgb"].dtype == np.uint8
        veiled = hidden.reset(seed)
        assert set(veiled) == {"state", "rgb"} and np.all(veiled["state"][-3:] == 0)
        # the goal marker is drawn only when the goal is revealed
        assert not np.array_equal(first["rgb"], veiled["rgb"])
    finally:
        shown.close()
        hidden.close()


def test_unknown_camera_is_refused() -> None:
    with pytest.raises(UnknownBenchmarkError, match="camera"):
        _env("reach-v3", Conditions(), observation_mode="rgb", camera="nope")
    with pytest.raises(ValueError, match="camera"):
        BenchmarkSpec(
            benchmark_id="metaworld/MT10-v3", tasks=["reach-v3"], episodes_per_task=1, camera="x"
        )


def test_specs_record_the_goal_knob_explicitly() -> None:
    def spec(benchmark_id: str, **conditions: object) -> BenchmarkSpec:
        return BenchmarkSpec(
            benchmark_id=benchmark_id,
            tasks=["reach-v3"],
            episodes_per_task=1,
            conditions=conditions,
        )

    assert spec("metaworld/MT10-v3").conditions.reveal_goal is True
    assert spec("metaworld/ML45-test-v3").conditions.reveal_goal is False
    assert spec("metaworld/ML45-test-v3", reveal_goal=True).conditions.reveal_goal is True
    parsed = BenchmarkSpec.model_validate_json(spec("metaworld/MT10-v3").model_dump_json())
    assert parsed.conditions.reveal_goal is True
    with pytest.raises(ValueError, match="exceeds"):
        spec("metaworld/MT10-v3", dynamics={"mass": [2, 1]})
    with pytest.raises(ValueError):
        spec("metaworld/MT10-v3", action_delay=1000)


def test_replay_command_checks_the_samples_the_agent_was_shown(tmp_path) -> None:
    log, samples = _log_episode("reach-v3", Conditions(observation_noise=0.05), seed=77)
    (tmp_path / "ep.kact").write_bytes(encode_action_log(log))
    page = {"items": [{"step": k, "observation": v} for k, v in samples.items()]}
    (tmp_path / "steps.json").write_text(json.dumps(page))
    runner = CliRunner()
    args = ["replay", str(tmp_path / "ep.kact"), "--samples", str(tmp_path / "steps.json")]
    ok = runner.invoke(app, [*args, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["observations_checked"] == len(samples)
    # A noise-free observation where the competition promised noise is caught.
    _, clean = _log_episode("reach-v3", Conditions(), seed=77)
    page["items"][1]["observation"] = clean[page["items"][1]["step"]]
    (tmp_path / "steps.json").write_text(json.dumps(page))
    bad = runner.invoke(app, [*args, "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["first_observation_mismatch_step"] == page["items"][1]["step"]
    (tmp_path / "steps.json").write_text("{")
    assert runner.invoke(app, args).exit_code == 2


def test_observation_noise_needs_a_state_to_perturb() -> None:
    with pytest.raises(ValueError, match="state vector"):
        BenchmarkSpec(
            benchmark_id="metaworld/MT10-v3",
            tasks=["reach-v3"],
            episodes_per_task=1,
            observation_mode="rgb",
            conditions={"observation_noise": 0.01},
        )


def test_local_evaluation_names_the_known_presets(tmp_path) -> None:
    bundle = write_bundle(tmp_path / "agent", REACH_AGENT)
    out = CliRunner().invoke(app, ["evaluator", "local", str(bundle), "--preset", "nope"])
    assert out.exit_code == 2 and "generalization" in out.output
