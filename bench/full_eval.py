"""Full-benchmark evaluation against the hardware limit, in one run.

Measures, on the same episode plan (``--episodes`` per task of ``--benchmark``, each
``--max-steps`` long, seeds as a job derives them):

* **limit**: ``--workers`` processes, one per core, stepping the benchmark's Meta-World
  environments with zero actions — reset with the episode's seed, then ``--max-steps``
  raw ``env.step`` calls — taking episodes from one shared queue (perfect balance, to
  within one episode). Environments are built before the clock starts. The wall time
  from the start signal to the last process done: no evaluator can beat it on these
  cores. Measured before and again right after the timed job; ``limit_s`` is the mean
  of the two (both are in the JSON): a shared host's speed drifts over minutes.
* **actual**: the whole evaluation through the real path (``runner.evaluate``, as
  ``kinitro evaluator run`` and ``kinitro miner eval`` call it): Ray rollout actors, each
  with its own bubblewrap sandbox running a zero-compute agent over the agent RPC (the
  agent grants ``--slots`` concurrent episodes), step logging on (samples every
  ``--step-log-interval`` steps, every action in the action log written to a local media
  store). ``actual_s`` runs from the call to its return on a running event loop: sandbox
  start, environment builds, play, upload flush, releasing the actors. By default the job
  is the one after a warm-up job (``--warmup-episodes`` per task, same benchmark), so its
  actors are warm, as for every job of an evaluator but its first: their process, imports,
  compiled models and environments are kept between jobs (``RolloutOptions.reuse_workers``),
  never an agent sandbox. ``--cold`` times a first job on new actors instead (actor start,
  imports and model compiles included). Ray itself is started before (once per evaluator
  process, not per job); its start time is reported apart.
* **breakdown** of ``actual_s - limit_s`` from the rollout pool's timeline (means over
  workers): start-up (actor boot, env builds, agent start), the per-step overhead (time
  playing batches beyond the limit: agent RPC, logging, lockstep), idle tail (a worker
  done while another still plays), and the rest (upload flush, teardown, dispatch).
* **CPU** of the evaluation by role, in seconds and µs per step (:class:`CpuSampler`):
  rollout workers (start-up included), agents, driver, Ray's processes; next to the
  limit's (the simulator alone). Robust where wall time is not: on a shared machine
  other tenants add wall time, hardly CPU time.
* ``--speedup``: the full evaluation again with one worker, for the 1 → N speed-up on the
  same plan.

Prints a table, then one JSON line with ``limit_s``, ``actual_s``, ``ratio`` (= limit_s /
actual_s), ``workers``, ``steps``, the breakdown and the load average.

    .venv/bin/python bench/full_eval.py [--benchmark metaworld/MT10-v3] [--episodes 50]
        [--workers 2] [--max-steps 500] [--slots 8] [--speedup] [--cold]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from agent_rpc import make_bundle  # bench/ is this script's directory
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.rollout import warm
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import ensure_ray
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate, plan_episodes

console = Console(stderr=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> tuple[str, float] | None:
    """(name, user + system CPU seconds) of a live process, from ``/proc/<pid>/stat``."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    close = stat.rfind(")")
    fields = stat[close + 2 :].split()
    return stat[stat.find("(") + 1 : close], (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


class CpuSampler:
    """CPU seconds spent by this process tree during a run, by role: the rollout workers
    (``ray::RolloutWorker`` actors, their upload threads included), the agents (everything
    a worker started: bubblewrap and the agent runtime), the driver (this process: the
    event loop awaiting results, and this sampler) and Ray (raylet, GCS, its agents).

    Cheap enough not to disturb what it measures: every ``interval_s`` it reads the
    ``/proc/<pid>/stat`` of the processes it knows (a few dozen reads), and walks the tree
    for new ones (``/proc/<pid>/task/*/children``, ~8 ms with Ray's many threads) 1, 2, 4
    and then every 8 seconds. A process that exits counts up to its last reading (the
    workers and agents exit at teardown, idle by then). Readings at :meth:`start` are
    subtracted."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._seen: dict[int, tuple[str, float, str]] = {}  # pid → (name, cpu_s, role)
        self._base: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _walk(self) -> None:
        stack = [(os.getpid(), "driver")]
        while stack:
            pid, role = stack.pop()
            reading = _cpu_s(pid)
            if reading is None:
                continue
            name, cpu = reading
            if role == "ray" and name.startswith("ray::Rollout"):
                role = "workers"
            self._seen[pid] = (name, cpu, role)
            child_role = {"driver": "ray", "workers": "agents"}.get(role, role)
            stack += [(child, child_role) for child in _children(pid)]

    def _read(self) -> None:
        for pid, (name, _, role) in list(self._seen.items()):
            reading = _cpu_s(pid)
            if reading is not None and reading[0] == name:
                self._seen[pid] = (name, reading[1], role)

    def _run(self) -> None:
        started = last_walk = time.monotonic()
        gap = 1.0
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            if now - last_walk >= gap or now - started < 0.5:
                self._walk()
                last_walk, gap = now, min(8.0, gap * 2)
            else:
                self._read()

    def start(self) -> None:
        self._walk()
        self._base = {pid: cpu for pid, (_, cpu, _) in self._seen.items()}
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds by role since :meth:`start`."""
        self._stop.set()
        self._thread.join()
        self._walk()
        out = dict.fromkeys(("workers", "agents", "driver", "ray"), 0.0)
        for pid, (_, cpu, role) in self._seen.items():
            out[role] += cpu - self._base.get(pid, 0.0)
        return out


def _raw_process(
    core: int | None,
    benchmark_id: str,
    max_steps: int,
    work: Any,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})
    bench = get_benchmark(benchmark_id)
    envs = {task: make_env(bench, task, EnvConfig(max_steps=max_steps)) for task in bench.tasks}
    zero = np.zeros(envs[bench.tasks[0]].action_spec().shape, np.float32)
    ready.release()
    go.wait()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    steps = 0
    while (item := work.get()) is not None:
        task, seed = item
        env = envs[task]
        env.reset(seed)
        inner = env._env  # the simulator itself, no kinitro wrapper
        for _ in range(max_steps):
            inner.step(zero)
        steps += max_steps
    out.put((time.perf_counter() - t0, steps, time.process_time() - cpu0))
    for env in envs.values():
        env.close()


def raw_limit(benchmark_id: str, plan: list[Any], workers: int, max_steps: int) -> dict[str, Any]:
    """The plan stepped raw by ``workers`` processes (one per core) from a shared queue."""
    ctx = mp.get_context("spawn")
    work, out = ctx.Queue(), ctx.Queue()
    ready, go = ctx.Semaphore(0), ctx.Event()
    cores = sorted(os.sched_getaffinity(0))
    procs = [
        ctx.Process(
            target=_raw_process,
            args=(cores[i % len(cores)], benchmark_id, max_steps, work, ready, go, out),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for spec in plan:
        work.put((spec.task, spec.seed))
    for _ in procs:
        work.put(None)
    for _ in procs:
        ready.acquire()
    t0 = time.perf_counter()
    go.set()
    per_process = [out.get() for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return {
        "limit_s": wall,
        "steps": sum(steps for _, steps, _ in per_process),
        "process_s": [round(s, 2) for s, _, _ in per_process],
        "cpu_s": sum(cpu for _, _, cpu in per_process),
    }


async def warm_up(bundle: Path, media: Path, args: argparse.Namespace, workers: int) -> float:
    """A first, shorter job of the same benchmark (``--warmup-episodes`` per task), as the
    job before this one on a validator: its actors stay warm for the measured job."""
    request = EvalRequest(
        job_id=f"warm-up-{workers}w",
        benchmark_id=args.benchmark,
        episodes_per_task=args.warmup_episodes,
        seed=args.seed + 1,
        max_steps=args.max_steps,
        step_log_interval=args.step_log_interval,
    )
    t0 = time.perf_counter()
    await evaluate(
        request,
        SandboxLauncher(str(bundle)),
        RolloutOptions(workers=workers, media_url=str(media), env_slots=args.slots),
    )
    return time.perf_counter() - t0


async def full_evaluation(
    bundle: Path,
    media: Path,
    args: argparse.Namespace,
    workers: int,
) -> dict[str, Any]:
    """The timed job: from the call to ``evaluate`` to its return, on the event loop of a
    running evaluator (this process's loop outlives the job, as the evaluator's does)."""
    request = EvalRequest(
        job_id=f"full-eval-{workers}w",
        benchmark_id=args.benchmark,
        episodes_per_task=args.episodes,
        seed=args.seed,
        max_steps=args.max_steps,
        step_log_interval=args.step_log_interval,
    )
    sampler = CpuSampler()
    sampler.start()
    t0 = time.perf_counter()
    outcome = await evaluate(
        request,
        SandboxLauncher(str(bundle)),
        RolloutOptions(
            workers=workers,
            media_url=str(media),
            env_slots=args.slots,
            reuse_workers=not args.cold,
        ),
    )
    actual = time.perf_counter() - t0
    cpu = sampler.stop()
    failures = outcome.metrics.overall.failures
    if failures:
        raise SystemExit(f"episodes failed: {failures}")
    timeline = outcome.timeline
    assert timeline is not None
    n = max(1, len(timeline.workers))

    def mean(name: str) -> float:
        return float(sum(getattr(w, name) for w in timeline.workers)) / n

    return {
        "actual_s": actual,
        "steps": sum(r.steps for r in outcome.results),
        "episodes": len(outcome.results),
        "play_s": timeline.play_s,
        "boot_s": mean("boot_s"),
        "env_build_s": mean("env_build_s"),
        "envs_built": mean("envs_built"),
        "agent_start_s": mean("agent_start_s"),
        "busy_s": mean("busy_s"),
        "idle_tail_s": mean("idle_tail_s"),
        "cpu_s": {role: round(v, 2) for role, v in cpu.items()},
    }


def breakdown(run: dict[str, Any], limit_s: float) -> dict[str, float]:
    """``actual_s - limit_s`` split by cause (seconds, means over workers)."""
    startup = run["boot_s"] + run["env_build_s"] + run["agent_start_s"]
    stepping = run["busy_s"] - run["env_build_s"] - run["agent_start_s"]
    per_step = stepping - limit_s
    imbalance = run["idle_tail_s"]
    rest = run["actual_s"] - limit_s - startup - per_step - imbalance
    return {
        "startup_s": round(startup, 2),
        "startup_boot_s": round(run["boot_s"], 2),
        "startup_env_build_s": round(run["env_build_s"], 2),
        "envs_built_per_worker": round(run["envs_built"], 1),
        "startup_agent_s": round(run["agent_start_s"], 2),
        "per_step_overhead_s": round(per_step, 2),
        "imbalance_s": round(imbalance, 2),
        "other_s": round(rest, 2),
    }


def cpu_figures(limit: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds of the run by role, and µs per step: the limit's simulator alone, the
    workers' (simulator + loop + logging), the agents', and the driver's and Ray's."""
    steps = max(1, run["steps"])
    cpu = run["cpu_s"]
    out: dict[str, Any] = {f"{role}_s": v for role, v in cpu.items()}
    out["total_s"] = round(sum(cpu.values()), 2)
    per_step = {role: round(v / steps * 1e6, 1) for role, v in cpu.items()}
    if limit is not None:
        out["limit_s"] = round(limit["cpu_s"], 2)
        per_step["limit"] = round(limit["cpu_s"] / max(1, limit["steps"]) * 1e6, 1)
    out["us_per_step"] = per_step
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmark", default="metaworld/MT10-v3")
    parser.add_argument("--episodes", type=int, default=50, help="episodes per task")
    parser.add_argument("--workers", type=int, default=2, help="rollout workers (and cores)")
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--slots", type=int, default=8, help="episodes per agent round trip")
    parser.add_argument("--step-log-interval", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--speedup", action="store_true", help="also run the evaluation with 1 worker"
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="time a first job on new actors (default: the job after a warm-up job, whose "
        "actors it reuses, as every job but an evaluator's first)",
    )
    parser.add_argument(
        "--warmup-episodes", type=int, default=8, help="episodes per task of the warm-up job"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    plan = plan_episodes(get_benchmark(args.benchmark), args.episodes, args.seed)
    work = Path(tempfile.mkdtemp(prefix="kinitro-full-eval-"))
    work.chmod(0o755)
    bundle = make_bundle(work / "zero", args.slots)

    console.print(f"limit: {len(plan)} episodes raw on {args.workers} processes …")
    limit = raw_limit(args.benchmark, plan, args.workers, args.max_steps)
    t0 = time.perf_counter()
    ensure_ray(num_cpus=max(args.workers, os.cpu_count() or 1))
    ray_start = time.perf_counter() - t0

    async def jobs() -> tuple[float | None, dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        warm_s = None
        if not args.cold:
            console.print(f"warm-up job: {args.warmup_episodes} episodes/task …")
            warm_s = await warm_up(bundle, work / "warm", args, args.workers)
        console.print(f"full evaluation on {args.workers} workers …")
        run = await full_evaluation(bundle, work / "media", args, args.workers)
        console.print("limit again, after the evaluation …")
        after = await asyncio.to_thread(
            raw_limit, args.benchmark, plan, args.workers, args.max_steps
        )
        one = None
        if args.speedup and args.workers > 1:
            console.print("full evaluation on 1 worker …")
            one = await full_evaluation(bundle, work / "media1", args, 1)
        warm.drop_all()
        return warm_s, run, after, one

    warm_s, run, after, one = asyncio.run(jobs())
    before = limit
    # The limit on both sides of the job, averaged: a shared host's speed drifts over the
    # minutes a run takes (other tenants, SMT siblings), and one side alone would charge
    # that drift to the evaluation, or credit it.
    limit = {
        "limit_s": (before["limit_s"] + after["limit_s"]) / 2,
        "steps": before["steps"],
        "process_s": before["process_s"] + after["process_s"],
        "cpu_s": (before["cpu_s"] + after["cpu_s"]) / 2,
    }
    limit_s, actual_s = limit["limit_s"], run["actual_s"]
    parts = breakdown(run, limit_s)
    figures: dict[str, Any] = {
        "bench": "full_eval",
        "benchmark": args.benchmark,
        "workers": args.workers,
        "episodes": run["episodes"],
        "steps": run["steps"],
        "limit_s": round(limit_s, 2),
        "limit_before_s": round(before["limit_s"], 2),
        "limit_after_s": round(after["limit_s"], 2),
        "actual_s": round(actual_s, 2),
        "ratio": round(limit_s / actual_s, 3),
        "ray_start_s": round(ray_start, 2),
        "workers_were": "new (cold)" if args.cold else "warm (a job ran before)",
        "warmup_job_s": None if warm_s is None else round(warm_s, 2),
        "breakdown": parts,
        "limit_process_s": limit["process_s"],
        "speedup_1_to_n": round(one["actual_s"] / actual_s, 3) if one else None,
        "actual_1_worker_s": round(one["actual_s"], 2) if one else None,
        "slots": args.slots,
        "step_log_interval": args.step_log_interval,
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cores": os.cpu_count(),
        "cpu": cpu_figures(limit, run),
        "cpu_1_worker": cpu_figures(None, one) if one else None,
    }
    if limit["steps"] != run["steps"]:
        figures["warning"] = f"limit stepped {limit['steps']} steps, evaluation {run['steps']}"

    table = Table(
        title=f"Full evaluation vs the hardware limit — {args.benchmark}, "
        f"{args.episodes} episodes/task, {args.workers} workers"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("steps (episodes)", f"{run['steps']:,} ({run['episodes']})"),
        (
            f"limit: raw env.step on {args.workers} processes (before / after the job)",
            f"{limit_s:.1f} s ({before['limit_s']:.1f} / {after['limit_s']:.1f})",
        ),
        ("actual: whole evaluation (real path)", f"{actual_s:.1f} s"),
        ("ratio limit / actual (target ≥ 0.85)", f"{figures['ratio']:.3f}"),
        ("  start-up per worker: actor boot", f"{parts['startup_boot_s']:.1f} s"),
        (
            f"  start-up per worker: {parts['envs_built_per_worker']:.0f} env builds",
            f"{parts['startup_env_build_s']:.1f} s",
        ),
        ("  start-up per worker: agent sandbox + hello", f"{parts['startup_agent_s']:.1f} s"),
        ("  per-step overhead (playing beyond the limit)", f"{parts['per_step_overhead_s']:.1f} s"),
        ("  imbalance: idle at the tail", f"{parts['imbalance_s']:.1f} s"),
        ("  other: flush, teardown, dispatch", f"{parts['other_s']:.1f} s"),
        ("Ray start (once per evaluator process, not counted)", f"{ray_start:.1f} s"),
        (
            "actors",
            "new (cold)" if args.cold else f"warm (after a {warm_s:.1f} s warm-up job)",
        ),
    ]
    if one:
        rows += [
            ("actual with 1 worker", f"{one['actual_s']:.1f} s"),
            (
                f"speed-up 1 → {args.workers} workers (target ≥ 1.8)",
                f"{figures['speedup_1_to_n']:.2f}×",
            ),
        ]
    cpu = figures["cpu"]
    us = cpu["us_per_step"]
    rows += [
        ("CPU µs per step: limit (simulator alone)", f"{us['limit']:.0f}"),
        (
            "CPU µs per step: rollout workers (all: sim, loop, logs, start-up)",
            f"{us['workers']:.0f}",
        ),
        ("CPU µs per step: agents (sandboxed runtime)", f"{us['agents']:.1f}"),
        ("CPU µs per step: driver / Ray processes", f"{us['driver']:.1f} / {us['ray']:.1f}"),
    ]
    rows.append(
        ("load average before / after (1 min)", "{:.2f} / {:.2f}".format(*figures["loadavg"]))
    )
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
