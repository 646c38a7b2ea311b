"""`kinitro miner eval`: evaluate a local agent bundle exactly as validators do.

The miner role never imports the evaluator role (import-linter forbids it), so this command
runs the evaluator's local entry point, ``python -m kinitro evaluator local``, as a child
process. That child uses the same path as a validator — the agent sandbox, Ray rollout
workers and the metrics code — and streams JSON lines (progress events and the final
metrics) on stdout, which this command renders as a Rich progress bar and a results table.

Before starting anything it runs ``package``'s static validation (manifest, entrypoint,
syntax), so a broken bundle fails in a second with the same message as ``package`` instead
of after a sandbox start. Every failed episode's cause and detail (the evaluator's words:
the call, the agent's traceback or the tail of its stderr) is printed under the table and
carried in the JSON output as ``failure_details`` (:mod:`kinitro.miner.failures`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from kinitro.miner.failures import group_failures, print_failures
from kinitro.storage.bundle import validate_bundle
from kinitro.storage.errors import StorageError


def eval_command(
    bundle_dir: Path = typer.Argument(
        ..., help="Agent bundle directory (with its kinitro manifest).", show_default=False
    ),
    benchmark: str = typer.Option(
        "metaworld/MT1-reach-v3",
        "--benchmark",
        "-b",
        help="Benchmark id, e.g. metaworld/MT1-reach-v3, metaworld/MT10-v3, metaworld/MT50-v3.",
    ),
    episodes: int = typer.Option(5, "--episodes", "-n", min=1, help="Episodes per task."),
    max_steps: int = typer.Option(500, "--max-steps", min=1, help="Step budget per episode."),
    seed: int = typer.Option(0, "--seed", min=0, help="Base seed (episode seeds derive from it)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Ray rollout workers."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Existing Ray cluster address (default: start a local Ray)."
    ),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help=(
            "Evaluate under a competition preset (e.g. generalization, vision): its tasks, "
            "step budget, observation mode and knobs replace --benchmark and --max-steps."
        ),
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a local agent bundle in the sandbox on a benchmark, like a validator would."""
    console = Console(stderr=True, soft_wrap=True)
    _validate(console, bundle_dir)
    argv = [
        sys.executable,
        "-m",
        "kinitro",
        "evaluator",
        "local",
        str(bundle_dir.resolve()),
        "--benchmark",
        benchmark,
        "--episodes",
        str(episodes),
        "--max-steps",
        str(max_steps),
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--jsonl",
    ]
    if ray_address:
        argv += ["--ray-address", ray_address]
    if preset:
        argv += ["--preset", preset]
    result, error, failure_events = _run_child(argv, console, show_progress=not json_output)
    if result is None:
        console.print(f"[red]error:[/] {escape(error or 'evaluation failed')}")
        raise typer.Exit(1)
    groups = group_failures(failure_events)
    result["failure_details"] = [g.to_dict() for g in groups]
    if json_output:
        typer.echo(json.dumps(result))
        return
    out = Console()
    _print_table(out, f"preset {preset}" if preset else benchmark, result)
    print_failures(out, groups)
    if groups:
        out.print(f"next: fix the failures above, then kinitro miner eval {bundle_dir} again")
    else:
        out.print(f"next: kinitro miner upload {bundle_dir} --repo <you>/<name>")


def _validate(console: Console, bundle_dir: Path) -> None:
    """``package``'s static checks (never imports the agent): fail in a second, not later."""

    try:
        validate_bundle(bundle_dir)
    except StorageError as exc:
        console.print(f"[red]error:[/] invalid bundle: {escape(str(exc))}")
        raise typer.Exit(2) from None


def _run_child(
    argv: list[str], console: Console, *, show_progress: bool
) -> tuple[dict[str, Any] | None, str | None, list[dict[str, Any]]]:
    result: dict[str, Any] | None = None
    error: str | None = None
    failures: list[dict[str, Any]] = []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = Progress(
        TextColumn("[bold]evaluating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("episodes"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        disable=not show_progress,
    )
    try:
        with progress:
            bar = progress.add_task("eval", total=None, rate="")
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue
                kind = event.get("event")
                if kind == "progress":
                    rate = event.get("steps_per_s")
                    progress.update(
                        bar,
                        completed=event["done"],
                        total=event["total"],
                        rate=f"{rate:,.0f} steps/s" if rate else "",
                    )
                elif kind == "failure":
                    failures.append(event)
                elif kind == "result":
                    result = event["metrics"]
                elif kind == "error":
                    error = str(event.get("message"))
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code != 0 and error is None:
        error = f"evaluator exited with code {code}: {stderr.strip()[-2000:]}"
    return (result if code == 0 else None), error, failures


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _print_table(console: Console, benchmark: str, metrics: dict[str, Any]) -> None:
    table = Table(title=f"{benchmark}", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("task", no_wrap=True)
    table.add_column("eps", justify="right")
    table.add_column("success (95% CI)", justify="right", no_wrap=True)
    table.add_column("return", justify="right")
    table.add_column("steps", justify="right")
    table.add_column("failures", no_wrap=True)
    rows = [*sorted(metrics["per_task"].items()), ("overall", metrics["overall"])]
    for name, task in rows:
        steps = task.get("mean_steps_to_success")
        failures = "\n".join(f"{k}={v}" for k, v in sorted(task.get("failures", {}).items()))
        table.add_row(
            f"[bold]{name}[/]" if name == "overall" else name,
            str(task["episodes"]),
            f"{_pct(task['success_rate'])} "
            f"({100 * task['ci_low']:.0f}–{100 * task['ci_high']:.0f})",
            f"{task['mean_return']:.1f}",
            "-" if steps is None else f"{steps:.0f}",
            failures or "-",
        )
    console.print(table)
    console.print("steps = mean steps to success; return = mean episode return", style="dim")
