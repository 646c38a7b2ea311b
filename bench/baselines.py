"""Reference-agent baselines and evaluation cost of competition definitions.

Scores the zero, random and scripted-expert agents (``kinitro.evaluator.baselines``, the
code behind ``kinitro evaluator baselines``) on each preset and, for comparison, on plain
MT10 (no knobs, 500 steps), all in one run. Per definition it also measures what one
submission's evaluation costs this machine: simulator CPU per step (from the zero agent,
whose episodes all run to the step budget) plus, for camera modes, CPU per rendered frame;
the worst case (every episode to its step budget) is reported, without the agent's own
compute or the RPC (see ``eval_throughput.py`` for those).

    .venv/bin/python bench/baselines.py                      # presets + plain MT10
    .venv/bin/python bench/baselines.py --preset vision -n 3
    .venv/bin/python bench/baselines.py --file competition.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from kinitro.evaluator.baselines import compute_baselines
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.presets import MT10_TASKS, PRESETS

PLAIN_MT10 = BenchmarkSpec(
    benchmark_id="metaworld/MT10-v3", tasks=list(MT10_TASKS), episodes_per_task=10
)


def render_ms_per_frame(spec: BenchmarkSpec, frames: int = 20) -> float:
    """CPU milliseconds per rendered observation (the renderer's threads included)."""
    if "rgb" not in spec.observation_mode:
        return 0.0
    bench = get_benchmark(spec.benchmark_id, spec.tasks[:1])
    config = EnvConfig(
        max_steps=frames + 1,
        observation_mode=spec.observation_mode,
        camera=spec.camera,
        resolution=spec.resolution,
        conditions=spec.conditions,
    )
    env = make_env(bench, spec.tasks[0], config)
    try:
        env.reset(1)
        plain = make_env(bench, spec.tasks[0], EnvConfig(max_steps=frames + 1))
        plain.reset(1)
        zero = np.zeros(env.action_dim, np.float32)
        started = time.process_time()
        for _ in range(frames):
            env.step(zero)
        with_frames = time.process_time() - started
        started = time.process_time()
        for _ in range(frames):
            plain.step(zero)
        without = time.process_time() - started
        plain.close()
    finally:
        env.close()
    return max(0.0, with_frames - without) / frames * 1000


def measure(name: str, specs: list[BenchmarkSpec], episodes: int, seed: int) -> dict[str, Any]:
    baselines = compute_baselines(specs, episodes_per_task=episodes, seed=seed)
    zero = baselines.agents["zero"]
    sim_ms = zero.seconds / max(1, zero.steps) * 1000
    render_ms = max(render_ms_per_frame(spec) for spec in specs)
    submission_episodes = sum(spec.total_episodes for spec in specs)
    worst_steps = sum(spec.total_episodes * spec.max_steps for spec in specs)
    return {
        "name": name,
        "agents": {
            agent: {
                "success_rate": round(score.success_rate, 3),
                "ci_low": round(score.ci_low, 3),
                "ci_high": round(score.ci_high, 3),
                "mean_return": round(score.mean_return, 1),
                "episodes": score.episodes,
                "per_task": {task: round(rate, 2) for task, rate in score.per_task.items()},
            }
            for agent, score in baselines.agents.items()
        },
        "sim_ms_per_step": round(sim_ms, 3),
        "render_ms_per_frame": round(render_ms, 1),
        "submission_episodes": submission_episodes,
        "submission_worst_steps": worst_steps,
        "submission_worst_cpu_s": round(worst_steps * (sim_ms + render_ms) / 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", action="append", help="only these presets (repeatable)")
    parser.add_argument("--file", type=Path, help="a competition body or a list of specs")
    parser.add_argument("--episodes", "-n", type=int, default=10, help="per task and agent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip plain MT10")
    args = parser.parse_args()

    definitions: list[tuple[str, list[BenchmarkSpec]]] = []
    if args.file:
        data = json.loads(args.file.read_text())
        raw = data["benchmarks"] if isinstance(data, dict) else data
        definitions.append((args.file.stem, [BenchmarkSpec.model_validate(b) for b in raw]))
    for name in args.preset or ([] if args.file else list(PRESETS)):
        definitions.append((name, list(PRESETS[name].benchmarks)))
    if not args.no_reference and not args.file:
        definitions.append(("plain MT10 (reference)", [PLAIN_MT10]))

    load_before = os.getloadavg()[0]
    results = [measure(name, specs, args.episodes, args.seed) for name, specs in definitions]
    table = Table(title=f"Reference-agent baselines, {args.episodes} episodes per task")
    for column in ("definition", "zero", "random", "expert", "expert 95% CI", "worst CPU/sub"):
        table.add_column(column, justify="left" if column == "definition" else "right")
    for r in results:
        a = r["agents"]
        table.add_row(
            r["name"],
            f"{a['zero']['success_rate']:.3f}",
            f"{a['random']['success_rate']:.3f}",
            f"{a['expert']['success_rate']:.3f}",
            f"{a['expert']['ci_low']:.2f}–{a['expert']['ci_high']:.2f}",
            f"{r['submission_worst_cpu_s']:,.0f} s",
        )
    Console(stderr=True).print(table)
    figures = {
        "episodes_per_task": args.episodes,
        "seed": args.seed,
        "cores": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "definitions": results,
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
