"""`kinitro evaluator` commands and `kinitro replay`.

Only typer/rich/stdlib at import time: Ray, MuJoCo and SQLAlchemy load inside commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kinitro.core.errors import KinitroError
from kinitro.core.settings import describe_settings_error
from kinitro.evaluator.baselines_cmd import baselines_command
from kinitro.evaluator.render_cmd import render_worker_command

app = typer.Typer(
    help=(
        "Evaluator: run queued jobs in sandboxes on Ray rollout workers against "
        "Meta-World benchmarks."
    ),
    no_args_is_help=True,
)

_err = Console(stderr=True)
app.command("baselines")(baselines_command)
app.command("render-worker")(render_worker_command)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


@app.command("run")
def run_command(
    config: Path | None = typer.Option(None, "--config", "-c", help="TOML config file."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Validator database URL (KINITRO_EVALUATOR_DATABASE_URL)."
    ),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Jobs at once."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Ray rollout actors per job."
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Existing Ray cluster (default: start a local Ray)."
    ),
    media: str | None = typer.Option(
        None, "--media", help="Media store: a directory or s3://bucket/prefix."
    ),
    artifacts_dir: Path | None = typer.Option(
        None, "--artifacts-dir", help="Local artifact registry directory."
    ),
    fast_timers: bool = typer.Option(
        False, "--fast-timers", help="Short queue timers (tests, devnet crash drills)."
    ),
    log_level: str | None = typer.Option(None, "--log-level", help="Log level."),
) -> None:
    """Consume evaluation jobs from the validator database until stopped (SIGINT/SIGTERM).

    Each job: fetch and verify the agent bundle, run its episodes on Ray rollout workers
    with one sandboxed agent per worker, and report status, episodes, step samples and
    the final result through the validator outbox. A job interrupted by a crash is picked
    up again after the queue's heartbeat timeout and reported once.
    """
    from kinitro.core.logging import configure_logging  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.settings import Settings  # noqa: PLC0415 - deferred: CLI start-up

    try:
        settings = Settings.load(
            config,
            database_url=database_url,
            concurrency=concurrency,
            workers_per_job=workers,
            ray_address=ray_address,
            media_url=media,
            artifacts_dir=artifacts_dir,
            fast_timers=fast_timers or None,
            log_level=log_level,
        )
    except (KinitroError, ValueError) as exc:
        raise _fail(describe_settings_error(exc, Settings)) from None
    if not settings.database_url:
        raise _fail("no database URL: pass --database-url or set KINITRO_EVALUATOR_DATABASE_URL")
    configure_logging(settings.log_level)
    from kinitro.evaluator.orchestrator import run_orchestrator  # noqa: PLC0415 - deferred: CLI start-up

    try:
        run_orchestrator(settings)
    except KinitroError as exc:
        raise _fail(str(exc), 1) from None


@app.command("local")
def local_command(
    bundle_dir: Path = typer.Argument(..., help="Agent bundle directory.", show_default=False),
    benchmark: str = typer.Option("metaworld/MT1-reach-v3", "--benchmark", "-b"),
    episodes: int = typer.Option(5, "--episodes", "-n", min=1, help="Episodes per task."),
    max_steps: int = typer.Option(500, "--max-steps", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    workers: int = typer.Option(1, "--workers", "-w", min=1),
    ray_address: str | None = typer.Option(None, "--ray-address"),
    media: str | None = typer.Option(
        ".kinitro/media", "--media", help="Where action logs go ('' disables)."
    ),
    step_log_interval: int = typer.Option(10, "--step-log-interval", min=0),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help=(
            "Evaluate under a competition preset's benchmark and knobs (its tasks, step "
            "budget, observation mode, noise, delay, dynamics) instead of --benchmark."
        ),
    ),
    jsonl: bool = typer.Option(False, "--jsonl", help="Stream JSON lines (progress, result)."),
) -> None:
    """Evaluate a local bundle on the validator path (sandbox + Ray + metrics)."""

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    def emit(event: dict[str, Any]) -> None:
        if jsonl:
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    manifest = bundle_dir / "kinitro.toml"
    if not manifest.is_file():
        emit({"event": "error", "message": f"{manifest} not found: not an agent bundle"})
        raise _fail(f"{manifest} not found: not an agent bundle")

    from kinitro.evaluator.progress import EvalProgress  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.rollout.launcher import SandboxLauncher  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.rollout.pool import ensure_ray  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.rollout.port import RolloutOptions  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.runner import EvalRequest, evaluate, plan_episodes  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.sandbox.host import prepare_host  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.common import default_reveal_task_name  # noqa: PLC0415 - deferred: CLI start-up

    # The validators' sandbox; on a machine without cgroups (a miner's laptop, non-root)
    # it still runs, with weaker limits and a warning saying so.
    try:
        report = prepare_host("bubblewrap", allow_no_cgroup=True, require_seccomp=False)
        for warning in report.warnings:
            _err.print(f"[yellow]warning:[/] {escape(warning)}")
    except KinitroError as exc:
        emit({"event": "error", "message": str(exc)})
        raise _fail(str(exc)) from None

    request = EvalRequest(
        job_id="local",
        benchmark_id=benchmark,
        episodes_per_task=episodes,
        seed=seed,
        max_steps=max_steps,
        step_log_interval=step_log_interval,
        reveal_task_name=default_reveal_task_name(benchmark),  # as validators run it
    )
    try:
        from kinitro.evaluator.envs import get_benchmark  # noqa: PLC0415 - deferred: CLI start-up

        if preset is not None:
            request = _preset_request(preset, episodes, seed, step_log_interval)
        bench = get_benchmark(request.benchmark_id, request.tasks or None)
        total = len(plan_episodes(bench, episodes, seed))
    except (KinitroError, ValueError) as exc:
        emit({"event": "error", "message": str(exc)})
        raise _fail(str(exc)) from None
    progress = EvalProgress(total)
    emit(progress.event())

    def on_result(result: Any) -> None:
        progress.add(result)
        if result.failure_cause is not None:
            emit(
                {
                    "event": "failure",
                    "episode": result.index,
                    "task": result.task,
                    "cause": str(result.failure_cause),
                    "scored": result.scored,
                    "detail": result.failure_detail or "",
                }
            )
        emit(progress.event())
        if not jsonl:
            _err.print(progress.line(), end="\r")

    from kinitro.evaluator.calibration import calibrate  # noqa: PLC0415 - deferred: CLI start-up

    try:
        ensure_ray(ray_address)
        outcome = asyncio.run(
            evaluate(
                request,
                SandboxLauncher(
                    str(bundle_dir.resolve()),
                    bubblewrap={"allow_no_cgroup": True, "require_seccomp": False},
                ),
                RolloutOptions(
                    workers=workers, media_url=media or None, host_factor=calibrate().factor
                ),
                on_result=on_result,
            )
        )
    except KinitroError as exc:
        emit({"event": "error", "message": str(exc)})
        raise _fail(str(exc), 1) from None
    metrics = outcome.metrics.to_dict()
    emit({"event": "result", "metrics": metrics})
    if not jsonl:
        typer.echo(json.dumps(metrics, indent=2))


def replay_command(
    episode: str = typer.Argument(
        ...,
        help="An action log file, or its media key (the episode's actions_ref) with --media.",
        show_default=False,
    ),
    media: str | None = typer.Option(
        None, "--media", help="Media store holding the key: a directory or s3://bucket/prefix."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config ([evaluator] S3 endpoint and credentials)."
    ),
    samples: Path | None = typer.Option(
        None,
        "--samples",
        help=(
            "The episode's step samples (JSON: a list, or a page from "
            "/api/v1/episodes/{id}/steps): also check the observations the agent was shown."
        ),
    ),
    video: Path | None = typer.Option(
        None,
        "--video",
        help="Also render the episode to this file (.webm or .mp4) from its actions, "
        "replayed with a camera (headless: MUJOCO_GL=egl or osmesa).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Re-simulate a logged episode from its seed and actions; check rewards and success.

    EPISODE is an action log file, or the episode's ``actions_ref`` key together with
    ``--media`` (S3 endpoint and credentials come from the evaluator settings:
    ``KINITRO_EVALUATOR_S3_*`` or ``--config``). The episode is re-simulated under the
    competition knobs recorded in the log (noise, delay, dynamics, hidden goal), all drawn
    from its seed; ``--samples`` also checks the observations the agent was shown. Exit
    code 0 when the replay matches the log, 1 when it does not, 2 on bad input.
    """
    from kinitro.evaluator.errors import EvaluatorError  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.replay import load_action_log, replay  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.settings import Settings  # noqa: PLC0415 - deferred: CLI start-up

    if video is not None and video.suffix.lower() not in (".webm", ".mp4"):
        raise _fail(f"--video {video}: the file must end in .webm or .mp4")
    try:
        options = Settings.load(config, media_url=media).media_options() if media else {}
        observations = _step_observations(samples) if samples else None
        log = load_action_log(episode, media, **options)
        report = replay(log, observations)
        filmed = _film(log, video) if video is not None else None
    except (EvaluatorError, KinitroError) as exc:
        raise _fail(str(exc)) from None
    if json_output:
        typer.echo(json.dumps({**report.to_dict(), "video": filmed}))
    else:
        table = Table(title=f"replay {report.task} episode {report.episode_index}")
        table.add_column("")
        table.add_column("logged", justify="right")
        table.add_column("replayed", justify="right")
        table.add_row("steps", str(report.steps), str(report.replayed_steps))
        table.add_row("return", f"{report.logged_return:.6f}", f"{report.replayed_return:.6f}")
        table.add_row("success", str(report.logged_success), str(report.replayed_success))
        if samples:
            table.add_row("observations", str(report.observations_checked), "checked")
        Console().print(table)
        if filmed is not None:
            Console().print(
                f"video {video}: {filmed['frames']} frames (one every {filmed['every']} steps) "
                f"at {filmed['fps']} fps, {filmed['bytes']} bytes, rendered in "
                f"{filmed['render_s']:.1f} s"
            )
        verdict = "[green]match[/]" if report.ok else "[red]MISMATCH[/]"
        first = report.first_mismatch_step or report.first_observation_mismatch_step
        detail = "" if report.ok else f" (first mismatch at step {first})"
        Console().print(f"{verdict}{detail}; max reward diff {report.max_reward_diff:.3g}")
    if not report.ok:
        raise typer.Exit(1)


def _film(log: Any, out: Path) -> dict[str, Any]:
    """The episode's video in ``out`` (:mod:`kinitro.evaluator.render`); its report."""
    from kinitro.evaluator.render import write_video  # noqa: PLC0415 - deferred: CLI start-up

    def progress(done: int, total: int) -> None:
        _err.print(f"rendering step {done}/{total}", end="\r")

    return write_video(log, out, progress=progress).to_dict()


def _step_observations(path: Path) -> dict[int, list[float]]:
    """Step → observation from a step-samples JSON file (a list or an API page)."""
    from kinitro.evaluator.errors import EpisodeLogError  # noqa: PLC0415 - deferred: CLI start-up

    try:
        data = json.loads(path.read_text())
        rows = data["items"] if isinstance(data, dict) else data
        return {int(row["step"]): [float(x) for x in row["observation"]] for row in rows}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise EpisodeLogError(f"--samples {path}: not a list of step samples ({exc})") from None


def _preset_request(name: str, episodes: int, seed: int, step_log_interval: int) -> Any:
    """The evaluation request of a preset's (single) benchmark, ``episodes`` per task."""
    from kinitro.evaluator.runner import EvalRequest  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.protocol.presets import get_preset  # noqa: PLC0415 - deferred: CLI start-up

    specs = get_preset(name).benchmarks
    if len(specs) != 1:
        raise ValueError(f"preset {name!r} has {len(specs)} benchmarks; evaluate them one by one")
    spec = specs[0].model_copy(
        update={"episodes_per_task": episodes, "step_log_interval": step_log_interval}
    )
    return EvalRequest.from_spec("local", spec, seed)
