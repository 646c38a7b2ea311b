"""The backend's audit worker (a process, one JSON line per request): an episode is
replayed under the job's terms — the derived seed, never the one its log header names."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys

import numpy as np

from kinitro.evaluator.audit_worker import audit, serve
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import ActionLog, encode_action_log

BENCH = "metaworld/MT1-reach-v3"


def _logged(seed: int, steps: int = 30) -> ActionLog:
    env = make_env(get_benchmark(BENCH, ["reach-v3"]), "reach-v3", EnvConfig(max_steps=steps))
    rng = np.random.default_rng(seed)
    env.reset(seed)
    actions, rewards, flags = [], [], []
    for _ in range(steps):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        out = env.step(action)
        actions.append(action)
        rewards.append(out.reward)
        flags.append(out.success)
        if out.terminated or out.truncated:
            break
    env.close()
    return ActionLog(
        BENCH, "reach-v3", "j", 0, seed, steps, np.asarray(actions), np.asarray(rewards),
        np.asarray(flags),
    )  # fmt: skip


def _request(log: ActionLog, seed: int) -> dict[str, object]:
    return {
        "id": "a1",
        "log": base64.b64encode(encode_action_log(log)).decode(),
        "benchmark_id": BENCH,
        "task": "reach-v3",
        "seed": seed,
        "max_steps": 30,
        "conditions": {},
    }


def test_the_replay_uses_the_derived_seed_not_the_header() -> None:
    log = _logged(seed=11)
    same = audit(_request(log, 11))
    assert same["outcome"] == "replayed" and same["log_consistent"]
    assert same["steps"] == log.steps and same["total_reward"] == float(log.rewards.sum())
    other = audit(_request(log, 12))  # the seed derived for the validator is another one
    assert other["header"]["seed"] == 11 and not other["log_consistent"]
    assert other["total_reward"] != same["total_reward"]


def test_a_log_that_cannot_be_this_episode_is_unreadable() -> None:
    log = _logged(seed=3)
    garbled = {**_request(log, 3), "log": base64.b64encode(b"KACT....").decode()}
    assert audit(garbled)["outcome"] == "unreadable"
    too_long = {**_request(log, 3), "max_steps": 5}
    assert audit(too_long)["outcome"] == "unreadable"


def test_a_bad_request_is_answered_as_the_workers_own_error() -> None:
    out = io.StringIO()
    serve(io.StringIO('{"id": "x"}\nnot json\n'), out)
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {"id": "x", "outcome": "error", "detail": "KeyError: 'log'"}
    assert second["outcome"] == "error" and second["id"] is None


def test_the_worker_process_answers_on_stdout_only() -> None:
    request = json.dumps(_request(_logged(seed=5), 5)) + "\n"
    done = subprocess.run(
        [sys.executable, "-m", "kinitro.evaluator.audit_worker"],
        input=request * 2,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["outcome"] for a in answers] == ["replayed", "replayed"]
