"""Audit cost: CPU-seconds to re-simulate 1,000 logged episodes from their action logs.

An audit replays an episode's logged float32 actions in a fresh simulator reset with the
episode's seed (``kinitro.evaluator.replay``) — no agent, no sandbox: only the simulator.
This bench logs ``--episodes`` episodes of ``--benchmark`` with random actions at the
full step budget (the worst case: failures run to ``max_steps``), then replays each one
and measures the process CPU time (user + system) and wall time of the replays alone.
It prints a table and one JSON line (``cpu_s_per_1000_episodes``), plus the load average
(this machine is shared).

``--via-worker`` also sends the same logs, as the backend's auditor does, to an audit
worker process (``python -m kinitro.evaluator.audit_worker``: base64 in a JSON line each,
replayed under the job's terms) and reports that process's CPU time per 1,000 episodes
(``worker_cpu_s_per_1000_episodes``), its start-up (imports, first model load) apart.

    .venv/bin/python bench/audit_replay.py --episodes 20 --max-steps 500 --via-worker
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import ActionLog, decode_action_log, encode_action_log
from kinitro.evaluator.replay import replay
from kinitro.protocol.rounds import episode_seed


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _worker_cpu(requests: list[str]) -> float:
    """CPU seconds of one audit worker process answering ``requests`` (then exiting)."""

    before = _children_cpu()
    done = subprocess.run(
        [sys.executable, "-m", "kinitro.evaluator.audit_worker"],
        input="".join(requests),
        capture_output=True,
        text=True,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert all(a["outcome"] == "replayed" for a in answers), answers[:1]
    return _children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark", default="metaworld/MT1-reach-v3")
    parser.add_argument("--task", default="reach-v3")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--via-worker", action="store_true", help="also through a worker")
    args = parser.parse_args()

    bench = get_benchmark(args.benchmark, [args.task])
    rng = np.random.default_rng(0)
    logs: list[bytes] = []
    for k in range(args.episodes):
        seed = episode_seed(12345, args.task, k)
        env = make_env(bench, args.task, EnvConfig(max_steps=args.max_steps))
        env.reset(seed)
        actions, rewards, successes = [], [], []
        for _ in range(args.max_steps):
            action = rng.uniform(-1, 1, size=4).astype(np.float32)
            out = env.step(action)
            actions.append(action)
            rewards.append(out.reward)
            successes.append(out.success)
            if out.terminated or out.truncated:
                break
        env.close()
        log = ActionLog(
            benchmark_id=args.benchmark,
            task=args.task,
            job_id="bench",
            episode_index=k,
            seed=seed,
            max_steps=args.max_steps,
            actions=np.asarray(actions, dtype=np.float32),
            rewards=np.asarray(rewards, dtype=np.float64),
            successes=np.asarray(successes, dtype=bool),
        )
        logs.append(encode_action_log(log))

    replay(decode_action_log(logs[0]))  # warm up (imports, first model load)
    cpu0, wall0 = _cpu(), time.perf_counter()
    steps = 0
    matched = 0
    for data in logs:
        report = replay(decode_action_log(data))
        steps += report.replayed_steps
        matched += int(report.ok)
    cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
    per_1000 = cpu / len(logs) * 1000
    worker: dict[str, float] = {}
    if args.via_worker:

        def request(data: bytes) -> str:
            log = decode_action_log(data)
            return json.dumps({
                "id": str(log.episode_index), "log": base64.b64encode(data).decode(),
                "benchmark_id": args.benchmark, "task": args.task, "seed": log.seed,
                "max_steps": args.max_steps, "conditions": {},
            }) + "\n"  # fmt: skip

        startup = _worker_cpu([request(logs[0])])  # start-up and one replay
        total = _worker_cpu([request(data) for data in logs] + [request(logs[0])])
        worker = {
            "worker_startup_cpu_s": round(startup, 3),
            "worker_cpu_s_per_1000_episodes": round((total - startup) / len(logs) * 1000, 1),
        }
    load = os.getloadavg()
    print(
        f"{'benchmark':<28}{'episodes':>9}{'steps/ep':>10}{'CPU s':>9}{'wall s':>9}"
        f"{'CPU s / 1000 ep':>17}{'matched':>9}"
    )
    print(
        f"{args.benchmark:<28}{len(logs):>9}{steps / len(logs):>10.0f}{cpu:>9.2f}"
        f"{wall:>9.2f}{per_1000:>17.0f}{matched:>9}"
    )
    if worker:
        print(
            f"through an audit worker: {worker['worker_cpu_s_per_1000_episodes']:.0f} CPU s / "
            f"1000 ep (start-up {worker['worker_startup_cpu_s']:.1f} CPU s, once per worker)"
        )
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(json.dumps({
        "bench": "audit_replay",
        "benchmark": args.benchmark,
        "episodes": len(logs),
        "steps_per_episode": steps / len(logs),
        "cpu_s": round(cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_s_per_1000_episodes": round(per_1000, 1),
        "matched": matched,
        **worker,
        "loadavg": [round(x, 2) for x in load],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
