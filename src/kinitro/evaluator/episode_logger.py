"""Episode logging in the rollout worker: compact action logs, step samples, media.

Two pieces:

* :class:`EpisodeRecorder` lives in the rollout hot loop. It writes each step's action,
  reward and success flag into preallocated arrays (no allocation, no I/O per step) and
  keeps a full :class:`StepSample` every ``step_log_interval`` steps (and on the last step).
* :func:`encode_action_log` / :func:`decode_action_log` — the compact binary record of an
  episode, enough to replay it (``kinitro replay``)::

      magic "KACT" | u16 version | u16 action_dim | u32 steps | u32 max_steps | u64 seed
      | u32 episode_index | u8 flags | u16 len + benchmark_id | u16 len + task | u16 len +
      job_id | u16 len + conditions (v2) | steps×action_dim float32 actions | steps
      float64 rewards | steps u8 success

  All little-endian. The float32 actions are exactly what the agent sent; version 2 adds
  the episode's competition knobs (``Conditions`` as compact JSON, ``reveal_goal``
  explicit), from which replay re-creates the noise, delay and dynamics the simulator
  applied on top of them. Version 1 logs (no knobs; flag bit 0 = goal hidden) are still
  read.

Uploads (action logs, frames) run on a small thread pool owned by the rollout worker
(:class:`MediaUploader`), so the hot loop never waits for the media store. What the
driver makes of finished episodes (wire messages, the outbox) is
:mod:`kinitro.evaluator.telemetry`.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from kinitro.evaluator.errors import EpisodeLogError
from kinitro.evaluator.results import StepSample
from kinitro.protocol import fingerprint
from kinitro.protocol.conditions import Conditions

log = logging.getLogger(__name__)

MAGIC = b"KACT"
VERSION = 2
READABLE_VERSIONS = (1, 2)
_HEAD = struct.Struct("<4sHHIIQIB")
FLAG_GOAL_HIDDEN = 1
ACTION_LOG_CONTENT_TYPE = "application/x-kinitro-actions"
NO_KNOBS = Conditions(reveal_goal=True)
"""The conditions of an episode played without any knob (goal shown)."""


@dataclass(frozen=True, slots=True)
class ActionLog:
    """A decoded action log: everything needed to re-simulate one episode."""

    benchmark_id: str
    task: str
    job_id: str
    episode_index: int
    seed: int
    max_steps: int
    actions: npt.NDArray[np.float32]  # (steps, action_dim)
    rewards: npt.NDArray[np.float64]  # (steps,)
    successes: npt.NDArray[np.bool_]  # (steps,)
    conditions: Conditions = NO_KNOBS

    @property
    def steps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def goal_hidden(self) -> bool:
        return self.conditions.reveal_goal is False


def _short(text: str, what: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:
        raise EpisodeLogError(f"{what} too long for an action log")
    return struct.pack("<H", len(raw)) + raw


def _compact_json(conditions: Conditions) -> str:
    """The knobs that differ from their defaults, and always the version."""
    fields = conditions.model_dump(mode="json", exclude_defaults=True)
    return json.dumps({**fields, "version": conditions.version}, separators=(",", ":"))


def encode_action_log(log_: ActionLog) -> bytes:
    steps, dim = log_.actions.shape if log_.actions.ndim == 2 else (0, 0)
    head = _HEAD.pack(
        MAGIC,
        VERSION,
        dim,
        steps,
        log_.max_steps,
        log_.seed,
        log_.episode_index,
        FLAG_GOAL_HIDDEN if log_.goal_hidden else 0,
    )
    return b"".join(
        [
            head,
            _short(log_.benchmark_id, "benchmark_id"),
            _short(log_.task, "task"),
            _short(log_.job_id, "job_id"),
            _short(_compact_json(log_.conditions), "conditions"),
            np.ascontiguousarray(log_.actions, dtype="<f4").tobytes(),
            np.ascontiguousarray(log_.rewards, dtype="<f8").tobytes(),
            np.ascontiguousarray(log_.successes, dtype=np.uint8).tobytes(),
        ]
    )


def decode_action_log(data: bytes) -> ActionLog:
    """Parse an action log; raise :class:`EpisodeLogError` naming what is wrong."""
    if len(data) < _HEAD.size:
        raise EpisodeLogError("action log truncated: header incomplete")
    magic, version, dim, steps, max_steps, seed, index, flags = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise EpisodeLogError("not a Kinitro action log (bad magic)")
    if version not in READABLE_VERSIONS:
        raise EpisodeLogError(f"unsupported action log version {version}")
    pos = _HEAD.size
    texts: list[str] = []
    fields = ("benchmark_id", "task", "job_id", "conditions")[: 3 if version == 1 else 4]
    for what in fields:
        if pos + 2 > len(data):
            raise EpisodeLogError(f"action log truncated in {what}")
        (n,) = struct.unpack_from("<H", data, pos)
        pos += 2
        if pos + n > len(data):
            raise EpisodeLogError(f"action log truncated in {what}")
        try:
            texts.append(data[pos : pos + n].decode())
        except UnicodeDecodeError as exc:
            raise EpisodeLogError(f"action log {what} is not UTF-8") from exc
        pos += n
    expected = pos + steps * dim * 4 + steps * 8 + steps
    if len(data) != expected:
        raise EpisodeLogError(
            f"action log body has {len(data) - pos} bytes, expected {expected - pos}"
        )
    actions = np.frombuffer(data, "<f4", steps * dim, pos).reshape(steps, dim)
    pos += steps * dim * 4
    rewards = np.frombuffer(data, "<f8", steps, pos)
    pos += steps * 8
    successes = np.frombuffer(data, np.uint8, steps, pos).astype(bool)
    if version == 1:
        conditions = Conditions(reveal_goal=not flags & FLAG_GOAL_HIDDEN)
    else:
        try:
            conditions = Conditions.model_validate_json(texts[3])
        except ValidationError as exc:
            raise EpisodeLogError(f"action log conditions are invalid: {exc}") from None
    return ActionLog(
        benchmark_id=texts[0],
        task=texts[1],
        job_id=texts[2],
        episode_index=index,
        seed=seed,
        max_steps=max_steps,
        actions=actions.astype(np.float32),
        rewards=rewards.astype(np.float64),
        successes=successes,
        conditions=conditions,
    )


def _episode_dir(job_id: str, episode_index: int, run_id: str) -> str:
    """``episodes/<job_id>/[<run_id>/]<index>``: the job first, so the backend's media
    route finds the round whose embargo applies; the run (one validator's attempt) next,
    so validators sharing a store keep their own logs."""
    run = f"{run_id}/" if run_id else ""
    return f"episodes/{job_id}/{run}{episode_index:06d}"


def action_log_key(job_id: str, episode_index: int, run_id: str = "") -> str:
    return f"{_episode_dir(job_id, episode_index, run_id)}/actions.kact"


def frame_key(job_id: str, episode_index: int, step: int, run_id: str = "") -> str:
    return f"{_episode_dir(job_id, episode_index, run_id)}/frame-{step:05d}.png"


class EpisodeRecorder:
    """Per-episode recording in the hot loop: O(1), allocation-free per step.

    A sampled step keeps only what the arrays do not hold (its state, copied, and the
    scalar entries of ``info``); :attr:`samples` builds the :class:`StepSample` list once,
    when the episode is over (``tolist`` gives exactly the floats of ``float(x)``)."""

    def __init__(self, max_steps: int, action_dim: int, step_log_interval: int) -> None:
        self.actions = np.zeros((max_steps, action_dim), dtype=np.float32)
        self.rewards = np.zeros(max_steps, dtype=np.float64)
        self.successes = np.zeros(max_steps, dtype=bool)
        self.interval = max(0, step_log_interval)
        self._sampled: list[tuple[int, npt.NDArray[Any], dict[str, Any]]] = []
        self.steps = 0

    def record(
        self,
        step: int,
        observation: Any,
        action: npt.NDArray[np.float32],
        reward: float,
        success: bool,
        info: dict[str, Any],
        *,
        last: bool = False,
    ) -> None:
        i = step - 1
        self.actions[i] = action
        self.rewards[i] = reward
        self.successes[i] = success
        self.steps = step
        if self.interval and (i % self.interval == 0 or last):
            state = observation.get("state", ()) if isinstance(observation, dict) else observation
            self._sampled.append((step, np.array(state).ravel(), _scalars(info)))

    @property
    def samples(self) -> list[StepSample]:
        """The sampled steps (every ``step_log_interval``-th and the last), built now."""
        return [
            StepSample(
                step=step,
                observation=state.tolist(),
                action=self.actions[step - 1].tolist(),
                reward=float(self.rewards[step - 1]),
                success=bool(self.successes[step - 1]),
                info=info,
            )
            for step, state, info in self._sampled
        ]

    def fingerprint(self, max_steps: int) -> str | None:
        """The episode's :mod:`kinitro.protocol.fingerprint` (sampled actions)."""
        rows = self.actions[list(fingerprint.sample_steps(self.steps, max_steps))]
        return fingerprint.encode_samples(rows.tolist(), fingerprint.stride_for(max_steps))

    def action_log(
        self,
        *,
        benchmark_id: str,
        task: str,
        job_id: str,
        episode_index: int,
        seed: int,
        max_steps: int,
        conditions: Conditions = NO_KNOBS,
    ) -> ActionLog:
        n = self.steps
        return ActionLog(
            benchmark_id=benchmark_id,
            task=task,
            job_id=job_id,
            episode_index=episode_index,
            seed=seed,
            max_steps=max_steps,
            actions=self.actions[:n].copy(),
            rewards=self.rewards[:n].copy(),
            successes=self.successes[:n].copy(),
            conditions=conditions,
        )


def _scalars(info: dict[str, Any]) -> dict[str, Any]:
    """Finite numeric / boolean entries of an env info dict, as JSON-friendly values."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, bool | np.bool_):
            out[str(key)] = bool(value)
        elif isinstance(value, int | float | np.integer | np.floating):
            try:
                number = float(value)
            except OverflowError:  # an int beyond any float: not finite either
                continue
            if math.isfinite(number):
                out[str(key)] = number
    return out


def encode_png(frame: npt.NDArray[np.uint8]) -> bytes:
    """Minimal RGB8 PNG encoder (zlib; no imaging dependency)."""
    height, width, channels = frame.shape
    if channels != 3:
        raise EpisodeLogError("frames must be RGB")
    raw = b"".join(b"\x00" + frame[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


class MediaUploader:
    """Uploads to a media store off the hot loop (small thread pool); ``flush`` waits."""

    def __init__(self, store: Any, workers: int = 2) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="media-upload")
        self._pending: list[Future[str]] = []
        self.failures: list[str] = []

    def submit(self, key: str, data: bytes, content_type: str) -> str:
        self._pending.append(self._pool.submit(self._put, key, data, content_type))
        return key

    def _put(self, key: str, data: bytes, content_type: str) -> str:
        self._store.put(key, data, content_type=content_type)
        return key

    def flush(self) -> list[str]:
        """Wait for every pending upload; return the keys that failed (and log them)."""
        failed: list[str] = []
        pending, self._pending = self._pending, []
        for fut in pending:
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - an upload failure must not kill the job
                log.warning("media upload failed: %s", exc)
                failed.append(str(exc))
        self.failures += failed
        return failed

    def close(self) -> None:
        self.flush()
        self._pool.shutdown(wait=True)
