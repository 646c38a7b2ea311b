"""Commitment on LocalChain → submission → job → validator, and back: results ingested
idempotently over the real WebSocket into PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets

from kinitro.protocol.commitment import encode_commitment
from kinitro.protocol.common import (
    ErrorCode,
    EvalMetrics,
    FailureCause,
    JobState,
    TaskMetrics,
    wilson_interval,
)
from kinitro.protocol.validator_ws import (
    Ack,
    Episode,
    EpisodeSteps,
    EvalResult,
    Heartbeat,
    JobStatus,
    StepSample,
)
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, upload, wait_for
from .playing import completed, episodes_for, play


async def commit_artifact(
    net: Net,
    registry: LocalRegistry,
    *,
    cid: str = "mt1",
    content: bytes = b"bundle-1",
    repo: str = "miner/agent",
    sha256: str | None = None,
    miner: Any = None,
) -> Any:
    ref = upload(registry, repo, content)
    miner = miner or await net.neuron()
    text = encode_commitment(
        competition_id=cid,
        registry="local",
        repo=ref.repo,
        revision=ref.revision,
        sha256=sha256 or ref.sha256,
    )
    await net.chain.commit(miner, text)
    return miner


def metrics(successes: int, episodes: int) -> EvalMetrics:
    low, high = wilson_interval(successes, episodes)
    tm = TaskMetrics(
        episodes=episodes,
        successes=successes,
        success_rate=successes / episodes,
        ci_low=low,
        ci_high=high,
        mean_return=1.0,
        scored_episodes=episodes,
    )
    return EvalMetrics(per_task={"reach-v3": tm}, overall=tm)


def result(job_id: str, successes: int = 1, episodes: int = 2) -> EvalResult:
    now = datetime.now(UTC)
    return EvalResult(
        job_id=job_id,
        state=JobState.COMPLETED,
        metrics=metrics(successes, episodes),
        started_at=now,
        finished_at=now,
        evaluator_version="test",
    )


async def get(backend: Backend, path: str, **params: Any) -> Any:
    async with backend.client(None) as http:
        resp = await http.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return resp.json()


async def test_commitment_becomes_job_and_results_are_idempotent(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await _commitment_to_results(backend, net, registry, "/media")


async def _commitment_to_results(
    backend: Backend, net: Net, registry: LocalRegistry, media: str
) -> None:
    await create_competition(backend)
    validator = await net.validator()
    client, ok = await login(backend, validator)
    assert ok.type == "auth_ok"
    miner = await commit_artifact(net, registry)

    job = await client.recv_type("eval_job", within=15)
    assert job.miner_hotkey == miner.ss58_address
    assert job.artifact.registry == "local" and job.benchmark.benchmark_id.startswith("metaworld/")
    await client.send(Ack.of(job))
    subs = await get(backend, "/api/v1/submissions")
    assert subs["total"] == 1 and subs["items"][0]["status"] == "scheduled"

    now = datetime.now(UTC)
    status = JobStatus(
        job_id=job.job_id, state=JobState.RUNNING, seq=1, episodes_done=0, episodes_total=2, at=now
    )
    first, second = episodes_for(job, 1)
    episode = first.model_copy(
        update={"media_refs": ["videos/ep0.mp4"], "actions_ref": "actions/ep0.bin"}
    )
    steps = EpisodeSteps(
        job_id=job.job_id,
        episode_index=0,
        batch_index=0,
        samples=[
            StepSample(step=i, observation=[0.1, 0.2], action=[0.0], reward=0.1, success=False)
            for i in range(5)
        ],
    )
    final = completed(job, [episode, second])
    for message in (status, episode, steps, second, final):
        for _ in range(2):  # every message twice: the duplicate is acked, never counted
            await client.send(message)
            ack = await client.recv_type("ack")
            assert ack.ack_id == message.id and ack.ok, ack

    detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
    assert detail["state"] == "completed"
    assert len(detail["status_history"]) == 1 and len(detail["results"]) == 1
    assert detail["assignments"][0]["state"] == "completed"
    eps = await get(backend, "/api/v1/episodes", job_id=job.job_id)
    assert eps["total"] == 2
    # the round is open: seeds and samples are sealed (tests/backend/test_sealed_rounds.py)
    assert all(e["seed"] is None and e["sealed_until"] for e in eps["items"])
    one = await get(backend, f"/api/v1/episodes/{eps['items'][0]['id']}")
    assert one["media_urls"] == [f"{media}/videos/ep0.mp4"]
    assert one["actions_url"] == f"{media}/actions/ep0.bin"
    async with backend.client(None) as http:
        sealed = await http.get(f"/api/v1/episodes/{one['id']}/steps")
    assert sealed.status_code == 403 and sealed.json()["sealed_until"] == one["sealed_until"]
    sub = await get(backend, f"/api/v1/submissions/{subs['items'][0]['id']}")
    assert sub["status"] == "evaluated"
    stats = await get(backend, "/api/v1/stats")
    assert stats["step_samples"] == 5 and stats["episodes"] == 2 and stats["results"] == 1

    # the leader is crowned and weights are broadcast to the validator
    weights = await client.recv_type("set_weights", within=15)
    while set(weights.weights) <= {0}:  # the owner's share before the leader was crowned
        await client.send(Ack.of(weights))
        weights = await client.recv_type("set_weights", within=15)
    assert sum(weights.weights.values()) > 0.99
    await client.send(Ack.of(weights))
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    assert board["leader"]["miner_hotkey"] == miner.ss58_address
    await client.close()


async def test_garbage_frames_get_typed_errors_and_socket_survives(
    backend: Backend, net: Net
) -> None:
    client, _ = await login(backend, await net.validator())
    await client.send_raw("{not json")
    err = await client.recv_type("error")
    assert err.code == "malformed_frame"
    await client.send_raw('{"type": "warp_drive", "id": "' + "a" * 32 + '"}')
    assert (await client.recv_type("error")).code == "unknown_message_type"
    bad_status = '{"type": "job_status", "id": "' + "b" * 32 + '", "job_id": "x", "seq": -1}'
    await client.send_raw(bad_status)
    nack = await client.recv_type("ack")
    assert nack.ack_id == "b" * 32 and not nack.ok and nack.error_code == "invalid_message"
    # a result for a job that does not exist is refused by ack, not by closing
    missing = result("no-such-job")
    await client.send(missing)
    nack = await client.recv_type("ack")
    assert nack.ack_id == missing.id and nack.error_code == "unknown_job"
    # still alive
    await client.send(Heartbeat(sent_at=datetime.now(UTC), queue_depth=3, jobs_in_flight=1))
    vals = await get(backend, "/api/v1/validators")
    await wait_for(lambda: True)
    assert vals[0]["connected"] is True
    await client.close()


async def test_abusive_peer_is_disconnected(make_backend: Any, net: Net) -> None:
    async with make_backend(max_bad_frames=3) as backend:
        client, _ = await login(backend, await net.validator())
        for _ in range(4):
            await client.send_raw("garbage")
        codes = []
        try:
            while True:
                await asyncio.wait_for(client.ws.recv(), timeout=5)
        except websockets.ConnectionClosed as exc:
            codes.append(exc.rcvd.code if exc.rcvd else None)
        assert codes == [1008]


async def test_reconnect_replays_unacknowledged_jobs(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    validator = await net.validator()
    client, _ = await login(backend, validator)
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.close()  # crash before acking

    client, _ = await login(backend, validator)
    again = await client.recv_type("eval_job", within=10)
    assert (again.job_id, again.id) == (job.job_id, job.id)  # same message id: a resend
    await client.send(Ack.of(again))
    await wait_for(lambda: _assignment_state(backend, job.job_id, "acked"))
    await client.close()

    client, _ = await login(backend, validator)
    try:
        extra = await client.recv_type("eval_job", within=1.5)
    except TimeoutError:
        extra = None
    assert extra is None  # acked jobs are not replayed
    await client.close()


async def _assignment_state(backend: Backend, job_id: str, state: str) -> bool:
    detail = await get(backend, f"/api/v1/jobs/{job_id}")
    return bool(detail["assignments"]) and detail["assignments"][0]["state"] == state


async def test_expired_lease_is_reassigned(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(lease_s=1.0) as backend:
        await create_competition(backend)
        first, second = await net.validator(), await net.validator()
        a, _ = await login(backend, first)
        await commit_artifact(net, registry)
        job = await a.recv_type("eval_job", within=15)
        await a.send(Ack.of(job))  # ... then silence: no progress within the lease
        b, _ = await login(backend, second)  # connected before the lease runs out
        moved = await b.recv_type("eval_job", within=10)
        assert moved.job_id == job.job_id
        detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
        states = {x["validator_hotkey"]: x["state"] for x in detail["assignments"]}
        assert states[first.ss58_address] == "expired"
        assert states[second.ss58_address] in ("assigned", "acked")
        await a.close()
        await b.close()


async def test_refused_job_goes_to_another_validator_and_lite_gets_none(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    lite, _ = await login(backend, await net.validator(), lite=True)
    a, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await a.recv_type("eval_job", within=15)
    await a.send(Ack.reject(job.id, ErrorCode.UNAVAILABLE, "disk full"))
    b, _ = await login(backend, await net.validator())
    moved = await b.recv_type("eval_job", within=10)
    assert moved.job_id == job.job_id
    try:
        extra = await lite.recv_type("eval_job", within=1.0)
    except TimeoutError:
        extra = None
    assert extra is None  # lite validators only follow weights
    for c in (lite, a, b):
        await c.close()


@pytest.mark.parametrize(
    ("state", "cause"),
    [("failed", "worker_lost"), ("timed_out", "host_timeout")],  # the slow host's deadline
)
async def test_infrastructure_failure_is_retried_not_scored(
    backend: Backend, net: Net, registry: LocalRegistry, state: str, cause: str
) -> None:
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.send(Ack.of(job))
    now = datetime.now(UTC)
    lost = EvalResult(
        job_id=job.job_id,
        state=JobState(state),
        failure_cause=FailureCause(cause),
        error="ray worker died",
        started_at=now,
        finished_at=now,
        evaluator_version="test",
    )
    await client.send(lost)
    assert (await client.recv_type("ack")).ack_id == lost.id
    again = await client.recv_type("eval_job", within=10)  # nobody else: a new attempt
    assert again.job_id == job.job_id and again.attempt == job.attempt + 1
    await client.send(Ack.of(again))
    assert (await play(client, again, 2)).ok
    detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
    assert detail["state"] == "completed"
    assert [r["state"] for r in detail["results"]] == ["completed"]
    await client.close()


async def test_jobs_reach_a_validator_on_another_replica(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as one, make_backend() as two:
        await create_competition(one)
        # background tasks (monitor, scheduler) run on one replica; the socket is on the other
        client, ok = await login(two, await net.validator())
        assert ok.type == "auth_ok"
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        assert (await play(client, job, 1)).ok
        detail = await get(one, f"/api/v1/jobs/{job.job_id}")
        assert detail["state"] == "completed"
        await client.close()


async def test_job_running_past_its_deadline_is_offered_again(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(job_deadline_s=1) as backend:
        await create_competition(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        status = JobStatus(job_id=job.job_id, state=JobState.RUNNING, seq=1, at=datetime.now(UTC))
        await client.send(status)  # progress renews the lease, but not the deadline
        again = await client.recv_type("eval_job", within=10)
        assert again.job_id == job.job_id and again.attempt == 2
        await client.close()


async def test_agent_text_with_nul_characters_is_stored_not_stuck(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    """Crash output of a miner's agent reaches the backend in free-text fields: NUL
    characters (which PostgreSQL text refuses) must not turn the message into one the
    validator resends forever."""
    async with make_backend(round_duration_s=3) as backend:
        await _agent_text_with_nul(backend, net, registry)


async def _agent_text_with_nul(backend: Backend, net: Net, registry: LocalRegistry) -> None:
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.send(Ack.of(job))
    now = datetime.now(UTC)
    messages = [
        JobStatus(
            job_id=job.job_id, state=JobState.RUNNING, seq=1, at=now, detail="agent said \x00"
        ),
        Episode(
            job_id=job.job_id,
            episode_index=0,
            task="reach-v3",
            task_episode=0,
            seed=episodes_for(job, 0)[0].seed,
            success=False,
            total_reward=0.0,
            steps=1,
            terminated=True,
            truncated=False,
            duration_s=0.1,
            failure_cause=FailureCause.AGENT_CRASH,
            failure_detail="Traceback\x00\x00 boom",
        ),
        EpisodeSteps(
            job_id=job.job_id,
            episode_index=0,
            batch_index=0,
            samples=[
                StepSample(
                    step=0,
                    observation=[0.0],
                    action=[0.0],
                    reward=0.0,
                    success=False,
                    info={"note\x00": "v\x00"},
                )
            ],
        ),
    ]
    for message in messages:
        await client.send(message)
        ack = await client.recv_type("ack")
        assert ack.ack_id == message.id and ack.ok, ack

    async def revealed() -> Any:  # the free text and the samples open at the reveal
        found = await get(backend, "/api/v1/episodes", job_id=job.job_id)
        return found if found["items"][0]["sealed_until"] is None else None

    episodes = await wait_for(revealed, within=15)
    detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
    assert detail["status_history"][0]["detail"] == "agent said \ufffd"
    assert episodes["items"][0]["failure_detail"] == "Traceback\ufffd\ufffd boom"
    steps = await get(backend, f"/api/v1/episodes/{episodes['items'][0]['id']}/steps")
    assert steps["items"][0]["samples"][0]["info"] == {"note\x00": "v\x00"}
    await client.close()
