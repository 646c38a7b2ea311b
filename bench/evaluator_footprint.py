"""What one evaluator rollout worker costs: memory, disk and jobs per hour, per competition.

For each competition of the sizing table in docs/guides/production.md, one job runs on
the validator path (one Ray rollout worker with its own bubblewrap sandbox, the
zero-compute agent of agent_rpc.py, step logging and action logs on), while a sampler
reads the proportional set size (PSS, so shared libraries count once) of this process and
its descendants every 0.2 s from /proc, grouped as: the rollout worker (Ray actor), the
agent sandbox (bwrap and the agent runtime), the Ray runtime (raylet, GCS, dashboard
agent, idle workers …) and the evaluator process itself. Disk is what the job left: the
action logs in the media store. Jobs per hour per worker = 3600 / the job's wall time; with
a real agent add the agent's own compute per step.

    .venv/bin/python bench/evaluator_footprint.py [--competition reach-guide] [--slots 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent_rpc import make_bundle  # bench/ is this script's directory
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import ensure_ray
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate


@dataclass(frozen=True)
class Competition:
    name: str
    benchmark_id: str
    episodes_per_task: int
    max_steps: int
    note: str


COMPETITIONS = {
    c.name: c
    for c in (
        Competition("reach-devnet", "metaworld/MT1-reach-v3", 10, 150, "kinitro devnet up"),
        Competition("reach-guide", "metaworld/MT1-reach-v3", 10, 500, "backend guide example"),
        Competition("mt10", "metaworld/MT10-v3", 2, 500, "MT10 mix, 2 episodes per task"),
    )
}
GROUPS = ("rollout worker", "agent sandbox", "ray runtime", "evaluator")


def _group(pid: int, cmdline: str) -> str | None:
    if pid == os.getpid():
        return "evaluator"
    if "RolloutWorker" in cmdline:
        return "rollout worker"
    if "bwrap" in cmdline or ("runtime" in cmdline and "kinitro" in cmdline):
        return "agent sandbox"
    if "ray" in cmdline and ("raylet" in cmdline or "gcs_server" in cmdline or "ray/" in cmdline):
        return "ray runtime"
    return None


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (other tenants' processes are not ours)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


def sample() -> dict[str, int]:
    """PSS in KiB per group, now, over this process and its descendants (Ray's GCS and
    raylet, the actors they start, the sandboxes the actors start)."""
    totals = dict.fromkeys(GROUPS, 0)
    for pid in _descendants(os.getpid()):
        try:
            cmdline = (
                Path(f"/proc/{pid}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        group = _group(pid, cmdline) or ("ray runtime" if pid != os.getpid() else None)
        if group is not None:
            totals[group] += _pss_kib(pid)
    return totals


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def run(competition: Competition, bundle: Path, work: Path, slots: int) -> dict[str, float]:
    peaks = dict.fromkeys(GROUPS, 0)
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            for group, kib in sample().items():
                peaks[group] = max(peaks[group], kib)
            stop.wait(0.2)

    media = work / f"media-{competition.name}"
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    outcome = asyncio.run(
        evaluate(
            EvalRequest(
                job_id=f"footprint-{competition.name}",
                benchmark_id=competition.benchmark_id,
                episodes_per_task=competition.episodes_per_task,
                seed=1,
                max_steps=competition.max_steps,
                step_log_interval=10,
            ),
            SandboxLauncher(str(bundle)),
            RolloutOptions(workers=1, media_url=str(media), env_slots=slots),
        )
    )
    wall = time.perf_counter() - t0
    stop.set()
    thread.join()
    if outcome.metrics.overall.failures:
        raise SystemExit(f"episodes failed: {outcome.metrics.overall.failures}")
    steps = sum(r.steps for r in outcome.results)
    episodes = len(outcome.results)
    return {
        "episodes": episodes,
        "steps": steps,
        "job_wall_s": round(wall, 2),
        "jobs_per_hour_per_worker": round(3600 / wall, 1),
        "steps_per_s_whole_job": round(steps / wall, 1),
        **{f"peak_pss_mib_{g.replace(' ', '_')}": round(peaks[g] / 1024, 1) for g in GROUPS},
        "media_bytes_per_episode": round(_du(media) / max(1, episodes)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--competition", choices=sorted(COMPETITIONS), action="append", help="default: all"
    )
    parser.add_argument("--slots", type=int, default=8, help="episodes per agent round trip")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kinitro-footprint-"))
    work.chmod(0o755)
    bundle = make_bundle(work / "zero", args.slots)
    ensure_ray(num_cpus=os.cpu_count() or 2)
    results = {name: run(COMPETITIONS[name], bundle, work, args.slots)
               for name in (args.competition or sorted(COMPETITIONS))}  # fmt: skip
    figures = {
        "cores": os.cpu_count(),
        "slots": args.slots,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "competitions": results,
    }
    table = Table(title="One rollout worker: memory, disk, jobs per hour (zero-compute agent)")
    table.add_column("competition")
    for column in ("episodes × steps", "job s", "jobs/h", "worker MiB", "sandbox MiB",
                   "ray MiB", "evaluator MiB", "media/episode"):  # fmt: skip
        table.add_column(column, justify="right")
    for name, r in results.items():
        c = COMPETITIONS[name]
        table.add_row(
            f"{name} ({c.benchmark_id})",
            f"{r['episodes']} × {c.max_steps}",
            f"{r['job_wall_s']:.1f}",
            f"{r['jobs_per_hour_per_worker']:.0f}",
            f"{r['peak_pss_mib_rollout_worker']:.0f}",
            f"{r['peak_pss_mib_agent_sandbox']:.0f}",
            f"{r['peak_pss_mib_ray_runtime']:.0f}",
            f"{r['peak_pss_mib_evaluator']:.0f}",
            f"{r['media_bytes_per_episode'] / 1024:.1f} KiB",
        )
    Console(stderr=True).print(table)
    Console(stderr=True).print(f"host load average (1 min): {os.getloadavg()[0]:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
