"""The backend's audit worker: re-simulates logged episodes, one JSON line per request.

The backend (``kinitro.backend.audits``) runs a few of these processes beside itself
(``python -m kinitro.evaluator.audit_worker``) and never imports the simulator: the
roles meet in the wire format below. Nothing of a miner runs here — an action log is a
list of float32 actions, and replaying it needs only the simulator.

A request names the episode *as the job specifies it*: benchmark, task, step budget,
competition knobs and the seed the backend derived for the validator. Those replace
whatever the log's header claims (a fabricated log may name a friendlier seed and replay
"ok" under it — ``kinitro replay`` trusts the header, an audit never does)::

    {"id": "…", "log": "<base64 action log>", "benchmark_id": "metaworld/MT1-reach-v3",
     "task": "reach-v3", "seed": 123, "max_steps": 500, "conditions": {…}}

The answer carries what the replay gave, what the log's header claimed, and whether the
log's own per-step rewards and success flags match the replay::

    {"id": "…", "outcome": "replayed", "steps": 87, "total_reward": 412.5,
     "success": true, "log_consistent": true, "header": {"seed": 123, …}}

``outcome`` is ``unreadable`` (with ``detail``) for a log that cannot be decoded or does
not fit the task (the validator's fault), ``error`` for a failure of this worker (not
the validator's: the audit is tried again). A request with ``"op": "compare"`` holds the
logs of one episode played by several validators and asks whether their actions are the
same (:func:`compare`: the agent re-run audit of ``kinitro.backend.reruns``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from dataclasses import replace
from typing import IO, Any

import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark
from kinitro.evaluator.episode_logger import decode_action_log
from kinitro.evaluator.errors import EpisodeLogError
from kinitro.evaluator.replay import replay
from kinitro.protocol.conditions import Conditions


def audit(request: dict[str, Any]) -> dict[str, Any]:
    """Replay one logged episode under the job's own terms (see the module docstring)."""
    answer: dict[str, Any] = {"id": request.get("id")}
    try:
        data = base64.b64decode(request["log"], validate=True)
        log = decode_action_log(data)
    except (binascii.Error, EpisodeLogError) as exc:
        return {**answer, "outcome": "unreadable", "detail": f"action log unreadable: {exc}"}
    answer["header"] = {
        "seed": log.seed,
        "benchmark_id": log.benchmark_id,
        "task": log.task,
        "max_steps": log.max_steps,
        "episode_index": log.episode_index,
    }
    max_steps = int(request["max_steps"])
    if log.steps > max_steps:
        detail = f"action log has {log.steps} actions, the step budget is {max_steps}"
        return {**answer, "outcome": "unreadable", "detail": detail}
    bench = get_benchmark(request["benchmark_id"], [request["task"]])
    config = EnvConfig(
        max_steps=max_steps, conditions=Conditions.model_validate(request["conditions"])
    ).resolved(bench)
    job_log = replace(
        log,
        benchmark_id=request["benchmark_id"],
        task=request["task"],
        seed=int(request["seed"]),
        max_steps=max_steps,
        conditions=config.conditions,
    )
    try:
        report = replay(job_log)
    except ValueError as exc:  # actions of another shape than the task's action space
        return {**answer, "outcome": "unreadable", "detail": f"actions do not fit: {exc}"}
    return {
        **answer,
        "outcome": "replayed",
        "steps": report.replayed_steps,
        "total_reward": report.replayed_return,
        "success": report.replayed_success,
        "log_consistent": report.first_mismatch_step is None,
        "first_mismatch_step": report.first_mismatch_step,
    }


def compare(request: dict[str, Any]) -> dict[str, Any]:
    """The agent re-run check: do these logs of one episode hold the same actions? Every
    pair is compared (same number of steps, every action within ``atol``)::

        {"id": "…", "op": "compare", "logs": ["<base64>", …], "atol": 1e-4}
        → {"id": "…", "outcome": "compared", "steps": [87, 87, 91],
           "pairs": [[0, 1, true, 0.0], [0, 2, false, 1.7], [1, 2, false, 1.7]]}

    ``unreadable`` (with ``which``: the log's position) when one cannot be decoded."""
    answer: dict[str, Any] = {"id": request.get("id")}
    actions = []
    for which, text in enumerate(request["logs"]):
        try:
            actions.append(decode_action_log(base64.b64decode(text, validate=True)).actions)
        except (binascii.Error, EpisodeLogError) as exc:
            detail = f"action log unreadable: {exc}"
            return {**answer, "outcome": "unreadable", "which": which, "detail": detail}
    atol = float(request["atol"])
    pairs = []
    for i, a in enumerate(actions):
        for j in range(i + 1, len(actions)):
            b = actions[j]
            diff = float(np.abs(a - b).max()) if a.shape == b.shape and a.size else 0.0
            same = a.shape == b.shape and diff <= atol
            pairs.append([i, j, same, diff if a.shape == b.shape else None])
    return {**answer, "outcome": "compared", "steps": [len(a) for a in actions], "pairs": pairs}


def serve(lines: IO[str], out: IO[str]) -> None:
    """Answer each request line with one line, until end of input."""
    for line in lines:
        if not line.strip():
            continue
        request: Any = None
        try:
            request = json.loads(line)
            answer = compare(request) if request.get("op") == "compare" else audit(request)
        except Exception as exc:  # noqa: BLE001 - the worker's own failure, told to the backend
            answer = {
                "id": request.get("id") if isinstance(request, dict) else None,
                "outcome": "error",
                "detail": f"{type(exc).__name__}: {exc}"[:2000],
            }
        out.write(json.dumps(answer) + "\n")
        out.flush()


def main() -> None:
    """Answers go to the original stdout; anything the simulator prints goes to stderr."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
