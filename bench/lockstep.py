"""What a lockstep batch's composition costs: K tasks in turn vs K episodes of one task.

On one core (the sandboxed agent inherits the affinity), on the evaluator's own MT10
environments, modes interleaved task by task, the same episode plan for each:

* **raw**: each episode alone, reset then ``--max-steps`` zero-action steps on one env
  (the limit of ``bench/full_eval.py``);
* **sim, K tasks** / **sim, one task**: the simulator alone, K envs stepped in turn, of K
  different tasks or K envs of one task (the cache cost of lockstep);
* **loop, K tasks** / **loop, one task**: the production loop (``run_batch``: episode
  reset, one ``act_batch`` round trip to the sandboxed zero agent per step for all K,
  recording, step samples every 10 steps) on the same two batch compositions.

Ratios are raw time / mode time, by wall clock and by CPU time (this process + the
agent's). ``--fifo`` (root) runs this process under SCHED_FIFO once the agent is up, so
other tenants of a shared machine cannot take the core (the agent stays in its cgroup,
under the normal scheduler). Prints a table, then one JSON line.

    .venv/bin/python bench/lockstep.py [--rounds 2] [--slots 8] [--max-steps 200] [--fifo]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from agent_rpc import make_bundle  # bench/ is this script's directory
from kinitro.evaluator.envs import EnvConfig, TaskEnv, get_benchmark, make_env
from kinitro.evaluator.results import EpisodeSpec
from kinitro.evaluator.rollout.episode import EpisodePlay, run_batch
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.runner import plan_episodes
from kinitro.protocol.agent_rpc import TaskInfo

MODES = ("raw", "sim_tasks", "sim_one", "loop_tasks", "loop_one")
Play = Callable[[list[EpisodeSpec], list[TaskEnv]], None]
LABELS = {
    "raw": "raw: one env, consecutive steps",
    "sim_tasks": "simulator, K envs of K tasks in turn",
    "sim_one": "simulator, K envs of one task in turn",
    "loop_tasks": "run_batch + agent, a batch of K tasks",
    "loop_one": "run_batch + agent, a batch of one task",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slots", type=int, default=8, help="K: episodes per batch")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the 10 tasks")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--cpu", type=int, default=None, help="core (default: the last)")
    parser.add_argument("--fifo", action="store_true", help="SCHED_FIFO once the agent is up")
    args = parser.parse_args()
    console = Console(stderr=True)
    k, steps = args.slots, args.max_steps
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})

    bench = get_benchmark("metaworld/MT10-v3")
    tasks = list(bench.tasks)
    plan = plan_episodes(bench, k * args.rounds * 2, 1)
    by_task = {t: [s for s in plan if s.task == t] for t in tasks}
    config = EnvConfig(max_steps=steps)
    console.print(f"building {k} envs of each MT10 task on CPU {cpu} …")
    envs = {t: [make_env(bench, t, config) for _ in range(k)] for t in tasks}
    work = Path(tempfile.mkdtemp(prefix="kinitro-lockstep-"))
    work.chmod(0o755)
    env0 = envs[tasks[0]][0]
    agent = SandboxLauncher(str(make_bundle(work / "zero", k))).start(
        env0.observation_spec(), env0.action_spec(), k
    )
    pids = agent._running.pids()
    zero = np.zeros(env0.action_dim, np.float32)

    def agent_ns() -> int:
        total = 0
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        return total

    def raw(specs: list[EpisodeSpec], batch: list[TaskEnv]) -> None:
        for spec, env in zip(specs, batch, strict=True):
            env.reset(spec.seed)
            inner = env._env  # the simulator itself
            for _ in range(steps):
                inner.step(zero)

    def sim(specs: list[EpisodeSpec], batch: list[TaskEnv]) -> None:
        for spec, env in zip(specs, batch, strict=True):
            env.reset(spec.seed)
        inners = [env._env for env in batch]
        for _ in range(steps):
            for inner in inners:
                inner.step(zero)

    def loop(specs: list[EpisodeSpec], batch: list[TaskEnv]) -> None:
        plays = [
            EpisodePlay(
                env,
                spec,
                TaskInfo(spec.task, bench.benchmark_id, steps),
                max_steps=steps,
                step_log_interval=10,
            )
            for spec, env in zip(specs, batch, strict=True)
        ]
        outcome = run_batch(plays, agent)
        assert not outcome.agent_failed, outcome

    if args.fifo:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    totals = {m: [0, 0, 0] for m in MODES}  # wall ns, own CPU ns, agent CPU ns
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        console.print(f"round {r + 1}/{args.rounds}")
        for i, task in enumerate(tasks):
            mixed = [by_task[tasks[(i + j) % len(tasks)]][2 * r] for j in range(k)]
            mixed_envs = [envs[s.task][j] for j, s in enumerate(mixed)]
            one = by_task[task][2 * r * k + k : 2 * r * k + 2 * k]
            runs: list[tuple[str, Play, list[EpisodeSpec], list[TaskEnv]]] = [
                ("raw", raw, mixed, mixed_envs),
                ("sim_tasks", sim, mixed, mixed_envs),
                ("sim_one", sim, one, envs[task]),
                ("loop_tasks", loop, mixed, mixed_envs),
                ("loop_one", loop, one, envs[task]),
            ]
            for mode, play, specs, batch in runs[i % len(runs) :] + runs[: i % len(runs)]:
                a0, c0, t0 = agent_ns(), time.process_time_ns(), time.perf_counter_ns()
                play(specs, batch)
                totals[mode][0] += time.perf_counter_ns() - t0
                totals[mode][1] += time.process_time_ns() - c0
                totals[mode][2] += agent_ns() - a0
    load_after = os.getloadavg()[0]
    agent.close()
    for batch in envs.values():
        for env in batch:
            env.close()

    n = args.rounds * len(tasks) * k * steps  # env steps per mode
    raw_wall, raw_cpu = totals["raw"][0], totals["raw"][1]
    figures: dict[str, object] = {
        "bench": "lockstep",
        "slots": k,
        "cpu": cpu,
        "fifo": args.fifo,
        "steps_per_mode": n,
        "loadavg": [round(load_before, 2), round(load_after, 2)],
    }
    table = Table(title=f"Lockstep batch composition, MT10, K = {k}, CPU {cpu}")
    for column in ("mode", "wall µs/step", "CPU µs/step", "agent µs/step", "ratio wall / CPU"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for mode in MODES:
        wall, own, agent_cpu = totals[mode]
        ratio_wall, ratio_cpu = raw_wall / wall, raw_cpu / (own + agent_cpu)
        figures[mode] = {
            "wall_us": round(wall / n / 1e3, 1),
            "cpu_us": round(own / n / 1e3, 1),
            "agent_us": round(agent_cpu / n / 1e3, 1),
            "ratio": round(ratio_wall, 3),
            "cpu_ratio": round(ratio_cpu, 3),
        }
        table.add_row(
            LABELS[mode],
            f"{wall / n / 1e3:.0f}",
            f"{own / n / 1e3:.0f}",
            f"{agent_cpu / n / 1e3:.1f}",
            f"{ratio_wall:.3f} / {ratio_cpu:.3f}",
        )
    table.add_row("load average before / after", f"{load_before:.2f} / {load_after:.2f}")
    console.print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
