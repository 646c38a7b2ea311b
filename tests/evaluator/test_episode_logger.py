"""Episode logger: action log codec, step recorder, PNG frames (telemetry: test_telemetry)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from kinitro.evaluator.episode_logger import (
    ActionLog,
    EpisodeRecorder,
    decode_action_log,
    encode_action_log,
    encode_png,
)
from kinitro.evaluator.errors import EpisodeLogError
from kinitro.protocol import fingerprint


def _log(steps: int = 7) -> ActionLog:
    rng = np.random.default_rng(0)
    return ActionLog(
        benchmark_id="metaworld/MT1-reach-v3",
        task="reach-v3",
        job_id="job-1",
        episode_index=4,
        seed=2**62 + 5,
        max_steps=100,
        actions=rng.uniform(-1, 1, (steps, 4)).astype(np.float32),
        rewards=rng.uniform(0, 10, steps),
        successes=np.arange(steps) >= steps - 2,
    )


def test_action_log_roundtrip_is_exact_and_compact() -> None:
    log = _log()
    data = encode_action_log(log)
    assert len(data) < 200 + 7 * (16 + 8 + 1)
    back = decode_action_log(data)
    assert back.seed == log.seed and back.task == log.task and back.episode_index == 4
    assert back.actions.dtype == np.float32 and np.array_equal(back.actions, log.actions)
    assert np.array_equal(back.rewards, log.rewards)
    assert np.array_equal(back.successes, log.successes)
    empty = decode_action_log(encode_action_log(_log(0)))
    assert empty.steps == 0


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d[:10], "header"),
        (lambda d: b"XXXX" + d[4:], "magic"),
        (lambda d: d[:4] + struct.pack("<H", 9) + d[6:], "version"),
        (lambda d: d[:-1], "expected"),
        (lambda d: d + b"\0", "expected"),
    ],
)
def test_action_log_rejects_bad_input(mutate, match: str) -> None:
    with pytest.raises(EpisodeLogError, match=match):
        decode_action_log(mutate(encode_action_log(_log())))


def test_recorder_samples_every_interval_and_last_step() -> None:
    rec = EpisodeRecorder(max_steps=50, action_dim=4, step_log_interval=10)
    obs = np.zeros(39, np.float32)
    for step in range(1, 24):
        rec.record(step, obs, np.full(4, 0.5, np.float32), 1.0, False, {}, last=step == 23)
    assert [s.step for s in rec.samples] == [1, 11, 21, 23]
    log = rec.action_log(
        benchmark_id="b", task="t", job_id="j", episode_index=0, seed=1, max_steps=50
    )
    assert log.steps == 23 and log.rewards.sum() == 23


def test_recorder_fingerprint_samples_the_actions_taken() -> None:
    rec = EpisodeRecorder(max_steps=150, action_dim=4, step_log_interval=0)
    assert rec.fingerprint(150) is None  # no step, nothing to sketch
    obs = np.zeros(39, np.float32)
    for step in range(1, 61):
        rec.record(step, obs, np.full(4, step / 100, np.float32), 0.0, False, {})
    text = rec.fingerprint(150)
    decoded = fingerprint.decode(text or "")
    assert decoded is not None and (decoded.stride, decoded.samples) == (5, 12)  # steps 1, 6, …
    assert decoded.values[4:8] == pytest.approx([0.06] * 4, abs=1e-3)
    assert text == fingerprint.encode(rec.actions[:60].tolist(), 150)


def test_png_frames_decode() -> None:
    frame = np.zeros((6, 5, 3), np.uint8)
    frame[2, 3] = (255, 10, 20)
    png = encode_png(frame)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (5, 6)
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    rows = [raw[i * 16 + 1 : (i + 1) * 16] for i in range(6)]
    assert rows[2][9:12] == bytes([255, 10, 20])
