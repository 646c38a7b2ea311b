"""A video of a logged episode: replay its actions with a camera on, encode with PyAV.

Evaluation never renders for a video (a CPU frame costs ~100 ms, a step ~1 ms): a validator
logs every action, and this module re-simulates the episode afterwards — same seed, same
knobs, same actions (:mod:`.replay`) — with a camera that only :meth:`render` reads
(``EnvConfig.video``), so what is filmed is exactly what was scored. It runs in the render
worker (:mod:`.render_worker`) and in ``kinitro replay EPISODE --video out.mp4``.

One frame is taken after the reset and one every ``every`` steps after it (``every`` is
the smallest stride that keeps the video under ``max_frames``), plus the last step, at
``FPS`` frames per second: frame ``i`` shows the state after step ``min(i * every,
steps)``, which is how the dashboard maps the video's time to its charts' step cursor.

Formats: WebM (VP9, what the dashboard plays) and MP4 (H.264, ``+faststart``), both
``yuv420p`` at even sizes. Rendering headless on a CPU needs EGL (``MUJOCO_GL=egl``, the
default: Debian's ``libegl1 libegl-mesa0 libgl1-mesa-dri``) or OSMesa (``MUJOCO_GL=osmesa``
with ``libosmesa6``); without either, :class:`RenderUnavailable` says so.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.episode_logger import ActionLog
from kinitro.evaluator.errors import EvaluatorError, RenderUnavailable, UnknownBenchmarkError

FPS = 25
MAX_FRAMES = 300
DEFAULT_SIZE = (320, 240)
DEFAULT_CAMERA = "corner"
FORMATS = {
    "webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "34", "b": "0"}),
    "mp4": ("libx264", {"preset": "veryfast", "crf": "26"}),
}
CONTENT_TYPES = {"webm": "video/webm", "mp4": "video/mp4"}


@dataclass(frozen=True, slots=True)
class VideoReport:
    """What was rendered: ``frame i`` shows the state after step ``min(i * every, steps)``."""

    format: str
    frames: int
    every: int
    fps: int
    steps: int
    width: int
    height: int
    bytes: int
    render_s: float
    """Wall-clock seconds spent replaying, rendering and encoding."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def frame_steps(steps: int, max_frames: int = MAX_FRAMES) -> tuple[int, list[int]]:
    """(every, the steps after which a frame is taken): 0 (the reset), every k-th, last."""
    every = max(1, math.ceil(steps / max(1, max_frames - 2)))
    taken = list(range(0, steps + 1, every))
    if taken[-1] != steps:
        taken.append(steps)
    return every, taken


def render_video(
    log: ActionLog,
    *,
    fmt: str = "webm",
    size: tuple[int, int] = DEFAULT_SIZE,
    camera: str = DEFAULT_CAMERA,
    max_frames: int = MAX_FRAMES,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[bytes, VideoReport]:
    """Replay ``log`` with a camera and return the encoded video and its report.

    ``progress(done, total)`` is called with steps replayed (every few frames).
    """
    if fmt not in FORMATS:
        raise EvaluatorError(f"video format {fmt!r}: one of {', '.join(FORMATS)}")
    width, height = (size[0] // 2) * 2, (size[1] // 2) * 2
    started = time.monotonic()
    bench = _scene(log)
    config = EnvConfig(
        max_steps=log.max_steps,
        conditions=log.conditions,
        camera=camera,
        resolution=(width, height),
        video=True,
    )
    every, taken = frame_steps(log.steps, max_frames)
    wanted = set(taken)
    encoder = _Encoder(fmt, width, height)
    env = make_env(bench, log.task, config)
    try:
        env.reset(log.seed)
        encoder.add(_frame(env))
        for step, action in enumerate(log.actions, 1):
            env.step(np.asarray(action, dtype=np.float32))
            if step in wanted:
                encoder.add(_frame(env))
                if progress is not None and (encoder.frames % 10 == 0 or step == log.steps):
                    progress(step, log.steps)
    finally:
        env.close()
    data = encoder.finish()
    report = VideoReport(
        format=fmt,
        frames=encoder.frames,
        every=every,
        fps=FPS,
        steps=log.steps,
        width=width,
        height=height,
        bytes=len(data),
        render_s=time.monotonic() - started,
    )
    return data, report


def _scene(log: ActionLog) -> Any:
    """The log's benchmark, restricted to its task; a benchmark this evaluator does not
    know (a newer series, a custom task list) films the task's own scene (``MT1-<task>``):
    a video needs the task, not the benchmark around it."""
    try:
        return get_benchmark(log.benchmark_id, [log.task])
    except UnknownBenchmarkError:
        provider = log.benchmark_id.split("/", 1)[0]
        return get_benchmark(f"{provider}/MT1-{log.task}", [log.task])


def write_video(log: ActionLog, out: Path, **options: Any) -> VideoReport:
    """:func:`render_video` into ``out``; the format follows its suffix (.webm, .mp4)."""
    fmt = out.suffix.lstrip(".").lower()
    data, report = render_video(log, fmt=fmt, **options)
    out.write_bytes(data)
    return report


def _frame(env: Any) -> np.ndarray[Any, Any]:
    try:
        frame = env.render()
    except Exception as exc:  # GL failures come as many types
        raise RenderUnavailable(_no_gl(exc)) from exc
    if frame is None:
        raise RenderUnavailable("this environment renders no frames")
    return np.ascontiguousarray(frame[::-1] if _upside_down(env) else frame)


def _upside_down(env: Any) -> bool:
    """MuJoCo's offscreen buffer starts at the bottom row: Meta-World's corner cameras
    return it as is (the gymnasium renderer flips only its own default camera)."""
    return bool(getattr(env, "camera", DEFAULT_CAMERA) != "topview")


def _no_gl(exc: BaseException) -> str:
    gl = os.environ.get("MUJOCO_GL", "egl")
    return (
        f"headless rendering failed with MUJOCO_GL={gl} ({type(exc).__name__}: {exc}); "
        "install libegl1 libegl-mesa0 libgl1-mesa-dri (EGL) or libosmesa6 and set "
        "MUJOCO_GL=osmesa"
    )


class _Encoder:
    """Frames → a WebM/MP4 with PyAV, in a temporary file (MP4's faststart rewrites it)."""

    def __init__(self, fmt: str, width: int, height: int) -> None:
        codec, options = FORMATS[fmt]
        self._av = av
        self._tmp = tempfile.TemporaryDirectory(prefix="kinitro-video-")
        self._path = Path(self._tmp.name) / f"video.{fmt}"
        container_options = {"movflags": "+faststart"} if fmt == "mp4" else {}
        self._container = av.open(str(self._path), mode="w", options=container_options)
        stream: Any = self._container.add_stream(codec, rate=FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        self._stream = stream
        self.frames = 0

    def add(self, rgb: np.ndarray[Any, Any]) -> None:
        frame = self._av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def finish(self) -> bytes:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        try:
            return self._path.read_bytes()
        finally:
            self._tmp.cleanup()
