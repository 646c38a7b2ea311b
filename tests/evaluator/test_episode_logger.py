"""Episode logger: action log codec, PNG frames, telemetry batching off the hot loop."""

from __future__ import annotations

import struct
import threading
import time
import zlib

import numpy as np
import pytest

from kinitro.evaluator.episode_logger import (
    ActionLog,
    EpisodeRecorder,
    TelemetryBatcher,
    decode_action_log,
    encode_action_log,
    encode_png,
    episode_messages,
)
from kinitro.evaluator.errors import EpisodeLogError
from kinitro.evaluator.results import EpisodeResult, StepSample


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


def _result(index: int, samples: int) -> EpisodeResult:
    return EpisodeResult(
        index=index,
        task="reach-v3",
        task_episode=index,
        seed=1,
        success=True,
        total_reward=2.0,
        steps=samples,
        steps_to_success=samples,
        terminated=True,
        actions_ref=f"episodes/j/{index:06d}/actions.kact",
        samples=[
            StepSample(
                step=i,
                observation=[0.0] * 39,
                action=[0.0] * 4,
                reward=1.0,
                success=False,
                info={"near_object": 0.5},
            )
            for i in range(samples)
        ],
        failure_cause="agent_timeout" if index == 2 else None,
        failure_detail="act: no answer" if index == 2 else None,
    )


def test_episode_messages_are_valid_wire_messages() -> None:
    msgs = episode_messages("job-9", _result(2, 120), batch_size=50)
    assert [m.type for m in msgs] == ["episode", "episode_steps", "episode_steps", "episode_steps"]
    assert msgs[0].failure_cause == "agent_timeout" and msgs[0].actions_ref
    assert [m.batch_index for m in msgs[1:]] == [0, 1, 2]
    assert sum(len(m.samples) for m in msgs[1:]) == 120


def test_batcher_never_blocks_the_producer_and_delivers_everything() -> None:
    delivered: list = []
    gate = threading.Event()

    def slow_sink(batch) -> None:
        gate.wait(5)
        delivered.extend(batch)

    batcher = TelemetryBatcher("job-9", slow_sink, batch_messages=4, flush_interval_s=0.05)
    t0 = time.perf_counter()
    for i in range(20):
        batcher.submit(_result(i, 3))
    assert time.perf_counter() - t0 < 0.05  # submit is a queue put, the sink is stuck
    gate.set()
    batcher.close()
    episodes = [m for m in delivered if m.type == "episode"]
    assert sorted(m.episode_index for m in episodes) == list(range(20))
    assert batcher.sent == len(delivered) == 40 and batcher.dropped == 0


def test_batcher_retries_a_failing_sink() -> None:
    calls = {"n": 0}
    got: list = []

    def flaky(batch) -> None:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("database away")
        got.extend(batch)

    batcher = TelemetryBatcher("job-9", flaky, batch_messages=100, flush_interval_s=0.05)
    batcher.submit(_result(0, 1))
    batcher.close()
    assert len(got) == 2 and calls["n"] == 3
