"""`kinitro evaluator render-worker`: render the backend's queued episode videos
(:mod:`kinitro.evaluator.render_worker`)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from kinitro.core.errors import KinitroError

_err = Console(stderr=True)


def render_worker_command(
    backend_url: str = typer.Option(
        ..., "--backend-url", envvar="KINITRO_RENDER_BACKEND_URL", help="Backend base URL."
    ),
    api_key: str = typer.Option(
        ...,
        "--api-key",
        envvar="KINITRO_RENDER_API_KEY",
        help="API key with the render (or admin) role.",
        show_default=False,
    ),
    media: str | None = typer.Option(
        None,
        "--media",
        help="Media store the action logs are in and videos go to: a directory or "
        "s3://bucket/prefix (default: the evaluator's media_url).",
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="TOML config ([evaluator] media_url, S3 credentials)."
    ),
    poll: float = typer.Option(5.0, "--poll", min=0.1, help="Seconds between empty polls."),
    max_frames: int = typer.Option(
        300, "--max-frames", min=2, help="Frames per video at most (a stride of steps beyond)."
    ),
    once: bool = typer.Option(False, "--once", help="Exit when the queue is empty."),
) -> None:
    """Render queued episode videos: claim a render, replay the episode's action log with a
    camera, store the WebM in the media store, report it (never during evaluation)."""

    from kinitro.evaluator.render_worker import RenderWorkerOptions, run_render_worker  # noqa: PLC0415 - deferred: CLI start-up
    from kinitro.evaluator.settings import Settings  # noqa: PLC0415 - deferred: CLI start-up

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
    try:
        settings = Settings.load(config, media_url=media)
        opts = RenderWorkerOptions(
            backend_url=backend_url.rstrip("/"),
            api_key=api_key,
            media_url=settings.media_url,
            media_options=settings.media_options(),
            poll_s=poll,
            max_frames=max_frames,
            once=once,
        )
        done = run_render_worker(opts)
    except (KinitroError, ValueError) as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    _err.print(f"rendered {done} videos")
