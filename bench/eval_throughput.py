"""End-to-end evaluation throughput on the Meta-World MT10 mix.

Measures, in one run on the same machine:

* **raw env**: Meta-World v3 ``env.step`` with zero actions, in-process, one core;
* **end-to-end**: the validator path — Ray rollout actor(s), each with its own bubblewrap
  sandbox running a zero-compute agent over the agent RPC, step logging on (step samples
  every ``--step-log-interval`` steps, every action in the binary action log written to a
  local media store), results awaited on the driver's event loop as in ``kinitro
  evaluator run`` (``runner.evaluate``);
* **speed-up** from 1 to 2 Ray workers on the same job.

"loop" rates count env steps over the time spent inside episodes (the steady state);
"wall" rates count them over the whole job (actor start, sandbox start, env construction).
Per-core figures divide by the number of rollout workers. The agent's manifest grants
``--slots`` (default 8): each worker plays that many episodes in lockstep, so episodes
overlap and their summed durations are divided by the batch size (the first episode of
each worker runs alone while the worker learns the agent's slots: a slight undercount).

    .venv/bin/python bench/eval_throughput.py [--episodes-per-task 2] [--max-steps 500] [--slots 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from agent_rpc import make_bundle  # bench/ is this script's directory
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import ensure_ray
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate


def raw_env_rate(tasks: tuple[str, ...], steps: int) -> tuple[float, float]:
    """(metaworld env.step steps/s, kinitro TaskEnv.step steps/s), zero actions."""

    bench = get_benchmark("metaworld/MT10-v3")
    zero = np.zeros(4, np.float32)
    raw_t = wrap_t = 0.0
    total = 0
    for task in tasks:
        env = make_env(bench, task, EnvConfig(max_steps=steps))
        inner = env._env  # type: ignore[attr-defined]
        env.reset(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            inner.step(zero)
        raw_t += time.perf_counter() - t0
        env.reset(1)
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(zero)
        wrap_t += time.perf_counter() - t0
        total += steps
        env.close()
    return total / raw_t, total / wrap_t


def end_to_end(
    bundle: Path,
    media: Path,
    workers: int,
    episodes: int,
    max_steps: int,
    interval: int,
    slots: int,
) -> dict[str, float]:
    request = EvalRequest(
        job_id=f"bench-{workers}w",
        benchmark_id="metaworld/MT10-v3",
        episodes_per_task=episodes,
        seed=1,
        max_steps=max_steps,
        step_log_interval=interval,
    )
    t0 = time.perf_counter()
    outcome = asyncio.run(
        evaluate(
            request,
            SandboxLauncher(str(bundle)),
            RolloutOptions(workers=workers, media_url=str(media), env_slots=slots),
        )
    )
    wall = time.perf_counter() - t0
    steps = sum(r.steps for r in outcome.results)
    loop = sum(r.duration_s for r in outcome.results) / slots  # lockstep episodes overlap
    failures = outcome.metrics.overall.failures
    if failures:
        raise SystemExit(f"episodes failed: {failures}")
    return {
        "steps": steps,
        "wall_s": wall,
        "wall_steps_per_s": steps / wall,
        "loop_steps_per_s": steps / loop,  # summed over workers: per-worker loop speed
        "samples": sum(len(r.samples) for r in outcome.results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes-per-task", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--step-log-interval", type=int, default=10)
    parser.add_argument("--raw-steps", type=int, default=500, help="raw env steps per task")
    parser.add_argument("--no-pin", action="store_true", help="do not pin workers to a core")
    parser.add_argument("--slots", type=int, default=8, help="episodes per agent round trip")
    args = parser.parse_args()

    tasks = get_benchmark("metaworld/MT10-v3").tasks
    work = Path(tempfile.mkdtemp(prefix="kinitro-bench-"))
    work.chmod(0o755)
    bundle = make_bundle(work / "zero", args.slots)  # the zero-compute agent of agent_rpc.py

    raw_before, wrap_before = raw_env_rate(tasks, args.raw_steps)
    ensure_ray(num_cpus=os.cpu_count() or 2)
    one = end_to_end(
        bundle,
        work / "media1",
        1,
        args.episodes_per_task,
        args.max_steps,
        args.step_log_interval,
        args.slots,
    )
    two = end_to_end(
        bundle,
        work / "media2",
        2,
        args.episodes_per_task,
        args.max_steps,
        args.step_log_interval,
        args.slots,
    )
    raw_after, wrap_after = raw_env_rate(tasks, args.raw_steps)
    raw = (raw_before + raw_after) / 2
    wrapped = (wrap_before + wrap_after) / 2
    loop_per_core = one["loop_steps_per_s"]

    figures = {
        "benchmark": "metaworld/MT10-v3",
        "cores": os.cpu_count(),
        "raw_env_steps_per_s": round(raw, 1),
        "taskenv_steps_per_s": round(wrapped, 1),
        "e2e_loop_steps_per_s_per_core": round(loop_per_core, 1),
        "e2e_wall_steps_per_s_1_worker": round(one["wall_steps_per_s"], 1),
        "e2e_wall_steps_per_s_2_workers": round(two["wall_steps_per_s"], 1),
        "ratio_loop_vs_raw": round(loop_per_core / raw, 3),
        "ratio_wall_vs_raw": round(one["wall_steps_per_s"] / raw, 3),
        "speedup_1_to_2_workers": round(one["wall_s"] / two["wall_s"], 3),
        "e2e_loop_steps_per_s_per_worker_2_workers": round(two["loop_steps_per_s"], 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "steps_per_job": one["steps"],
        "step_samples_logged": one["samples"],
        "step_log_interval": args.step_log_interval,
        "pinned_workers": not args.no_pin,
    }
    table = Table(title="Evaluation throughput — MT10 mix, zero-compute agent, logging on")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("raw Meta-World env.step (steps/s, 1 core)", f"{raw:,.0f}"),
        ("kinitro TaskEnv.step (steps/s, 1 core)", f"{wrapped:,.0f}"),
        ("end-to-end, in-episode loop (steps/s per worker)", f"{loop_per_core:,.0f}"),
        ("end-to-end, whole job, 1 worker (steps/s)", f"{one['wall_steps_per_s']:,.0f}"),
        ("end-to-end, whole job, 2 workers (steps/s)", f"{two['wall_steps_per_s']:,.0f}"),
        ("loop / raw env", f"{figures['ratio_loop_vs_raw']:.3f}"),
        ("whole job / raw env (1 worker)", f"{figures['ratio_wall_vs_raw']:.3f}"),
        ("speed-up 1 → 2 workers (whole job)", f"{figures['speedup_1_to_2_workers']:.2f}×"),
        ("in-episode loop with 2 workers (steps/s per worker)", f"{two['loop_steps_per_s']:,.0f}"),
        ("host load average (1 min, other tenants)", f"{os.getloadavg()[0]:.2f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    Console(stderr=True).print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
