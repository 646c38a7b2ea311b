"""Cost of an episode video: replay + headless rendering + PyAV encoding, per episode.

Renders a synthetic episode (a sweep of the arm on ``reach-v3``) of ``--steps`` steps the
way the render worker does (``kinitro.evaluator.render``), ``--repeat`` times per format,
and reports wall and CPU seconds per video and per frame, and bytes. CPU seconds are this
process's (MuJoCo's software rasteriser runs in it), so they hold on a loaded machine
where wall time does not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from kinitro.evaluator.episode_logger import ActionLog
from kinitro.evaluator.render import MAX_FRAMES, render_video


def _log(steps: int) -> ActionLog:
    t = np.linspace(0, 2 * np.pi, steps)
    actions = np.stack([np.sin(t), np.cos(t), 0.3 * np.sin(2 * t), np.zeros(steps)], axis=1)
    return ActionLog(
        benchmark_id="metaworld/MT1-reach-v3",
        task="reach-v3",
        job_id="bench",
        episode_index=0,
        seed=1,
        max_steps=steps,
        actions=actions.astype(np.float32),
        rewards=np.zeros(steps),
        successes=np.zeros(steps, dtype=bool),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150, help="episode length (devnet: 150)")
    parser.add_argument("--max-frames", type=int, default=MAX_FRAMES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--formats", default="webm,mp4")
    args = parser.parse_args()
    log = _log(args.steps)
    render_video(log, fmt="webm", max_frames=4)  # warm-up: imports, GL context
    table = Table(title=f"episode video, {args.steps} steps, 320×240")
    for col in ("format", "frames", "wall s", "CPU s", "CPU ms/frame", "KiB"):
        table.add_column(col, justify="right")
    out: dict[str, object] = {"steps": args.steps}
    for fmt in args.formats.split(","):
        walls, cpus = [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            data, report = render_video(log, fmt=fmt, max_frames=args.max_frames)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        table.add_row(
            fmt,
            str(report.frames),
            f"{wall:.1f}",
            f"{cpu:.1f}",
            f"{1000 * cpu / report.frames:.0f}",
            f"{len(data) / 1024:.0f}",
        )
        out[fmt] = {
            "frames": report.frames,
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "cpu_ms_per_frame": round(1000 * cpu / report.frames, 1),
            "bytes": len(data),
        }
    Console().print(table)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
