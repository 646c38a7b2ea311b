"""The validator node against a scripted WebSocket backend (real server on loopback) and a
real validator database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bittensor_wallet import Keypair
from sqlalchemy import text

from kinitro.core.db import create_engine
from kinitro.jobqueue import JobNotFoundError, JobQueue
from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.validator_ws import Ack, CancelJob, ErrorMessage
from kinitro.validator.node import ValidatorNode, latest_weights_url
from kinitro.validator.settings import Settings

from .factories import make_episode, make_job, make_result, make_steps
from .peer import ScriptedBackend


@pytest.fixture(scope="module")
def keypair() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


def fast_settings(url: str, db: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend_url": url,
        "database_url": db,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.3,
        "outbox_poll_s": 0.05,
        "nack_retry_s": 0.2,
        "auth_timeout_s": 3,
        "connect_timeout_s": 3,
        "ping_interval_s": 5,
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def running(
    peer: ScriptedBackend, jq: JobQueue, keypair: Keypair, db: str, **overrides: Any
) -> AsyncIterator[ValidatorNode]:
    node = ValidatorNode(fast_settings(peer.url, db, **overrides), jq, keypair)
    task = asyncio.create_task(node.run())
    try:
        yield node
    finally:
        node.stop()
        await asyncio.wait_for(task, 10)


def acks_for(peer: ScriptedBackend, message_id: str) -> list[Ack]:
    return [a for a in peer.answers if isinstance(a, Ack) and a.ack_id == message_id]


async def test_job_is_stored_and_queued_before_ack(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url) as node:
        job = make_job()
        await peer.push(job)
        await peer.wait_for(lambda: acks_for(peer, job.id))
        # the ack implies the job is durable and queued
        assert await jq.get_job(job.job_id) == job
        assert (await jq.depths()).jobs_queued == 1
        # redelivery (same message) is recognised and acked again
        await peer.push(job)
        await peer.wait_for(lambda: len(acks_for(peer, job.id)) == 2)
        assert (await jq.depths()).jobs_queued == 1
        assert node.stats.jobs_duplicate == 1
        # heartbeats report the queue
        await peer.wait_for(lambda: any(h.queue_depth == 1 for h in peer.heartbeats))
        conn = await jq.connection()
        assert conn.state == "connected" and conn.uid == 1 and conn.hotkey == keypair.ss58_address


async def test_cancel_job_marks_the_job_before_ack(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url):
        job = make_job()
        await peer.push(job)
        await peer.wait_for(lambda: acks_for(peer, job.id))
        cancel = CancelJob(job_id=job.job_id, reason="superseded by submission 9")
        await peer.push(cancel)
        await peer.wait_for(lambda: acks_for(peer, cancel.id))
        record = await jq.get_job_record(job.job_id)  # the ack implies it is marked
        assert record.state is JobState.CANCELLED and record.detail == cancel.reason
        unknown = CancelJob(job_id="never-received", reason="superseded by submission 9")
        await peer.push(unknown)  # nothing to cancel: acked all the same
        await peer.wait_for(lambda: acks_for(peer, unknown.id))


async def test_outbox_delivered_in_order_and_deleted_after_ack(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    await jq.report_status(job.job_id, JobState.STARTING, episodes_total=2)
    for i in range(2):
        await jq.append_outbox(make_episode(job.job_id, i))
        await jq.append_outbox(make_steps(job.job_id, i, 0))
        await jq.report_status(job.job_id, JobState.RUNNING, episodes_done=i + 1)
    await jq.append_outbox(make_result(job.job_id))
    expected = [e.message_id for e in await jq.pending_outbox()]
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url):
        await peer.wait_for(lambda: job.job_id in peer.results())
        await peer.wait_for(lambda: True)
        for _ in range(50):
            if (await jq.depths()).outbox == 0:
                break
            await asyncio.sleep(0.05)
        assert (await jq.depths()).outbox == 0
        assert [m.id for m in peer.received] == expected
        assert peer.seq_by_job[job.job_id] == [1, 2, 3]


async def test_unacked_messages_are_resent_after_reconnect_and_window_bounds_inflight(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    for i in range(20):
        await jq.append_outbox(make_episode(job.job_id, i))
    async with (
        ScriptedBackend(ack_outbox=False) as peer,
        running(peer, jq, keypair, validator_db_url, outbox_window=4, ack_timeout_s=30),
    ):
        await peer.wait_for(lambda: len(peer.received) >= 4)
        await asyncio.sleep(0.3)
        assert len(peer.received) == 4  # backpressure: never more than the window unacked
        peer.ack_outbox = True
        assert peer.live is not None
        await peer.live.close()  # connection lost before any ack
        await peer.wait_for(lambda: len(peer.store) == 20, timeout=15)
        assert peer.authenticated >= 2
        resent = [m.id for m in peer.received[4:8]]
        assert resent == [m.id for m in peer.received[:4]]  # same ids, same order
        for _ in range(50):
            if (await jq.depths()).outbox == 0:
                break
            await asyncio.sleep(0.05)
        assert (await jq.depths()).outbox == 0


async def test_stuck_acks_trigger_reconnect(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    await jq.append_outbox(make_episode(job.job_id, 0))
    async with (
        ScriptedBackend(ack_outbox=False) as peer,
        running(peer, jq, keypair, validator_db_url, ack_timeout_s=0.5),
    ):
        await peer.wait_for(lambda: len(peer.received) >= 1)
        peer.ack_outbox = True
        await peer.wait_for(lambda: len(peer.store) == 1)
        assert peer.authenticated >= 2


async def test_nacks_retry_or_dead_letter(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    await jq.append_outbox(make_episode(job.job_id, 0))
    async with (
        ScriptedBackend(nack_code=ErrorCode.UNAVAILABLE) as peer,
        running(peer, jq, keypair, validator_db_url),
    ):
        await peer.wait_for(lambda: len(peer.store) == 1)  # retried after the nack
        peer.nack_code = ErrorCode.INVALID_MESSAGE
        await jq.append_outbox(make_episode(job.job_id, 1))
        for _ in range(100):
            depths = await jq.depths()
            if depths.outbox_dead == 1:
                break
            await asyncio.sleep(0.05)
        assert depths.outbox_dead == 1 and depths.outbox == 0
        assert len(peer.store) == 1


async def test_garbage_and_mid_frame_drops_do_not_crash(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url) as node:
        await peer.wait_for(lambda: peer.live is not None)
        bad_job = make_job().model_dump(mode="json") | {"seed": -1}

        for frame in (
            "not json",
            b"\xff\xfe\x00binary",
            "[1,2,3]",
            '{"type":"no_such_type","id":"' + "a" * 32 + '"}',
            json.dumps(bad_job),
            "{" * 10_000,
        ):
            await peer.send_raw(frame)
        await peer.wait_for(lambda: len(peer.answers) >= 6)
        rejected = [a for a in peer.answers if isinstance(a, Ack) and not a.ok]
        assert any(a.ack_id == bad_job["id"] for a in rejected)
        assert all(isinstance(a, (Ack, ErrorMessage)) for a in peer.answers)
        assert node.stats.bad_frames == 6
        with pytest.raises(JobNotFoundError):
            await jq.get_job(bad_job["job_id"])

        peer.drop_mid_frame()
        await peer.wait_for(lambda: peer.authenticated >= 2)
        job = make_job()
        await peer.push(job)
        await peer.wait_for(lambda: acks_for(peer, job.id))
        assert (await jq.get_job(job.job_id)).job_id == job.job_id


async def test_backend_restart_and_unacked_job_redelivery(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url):
        await peer.wait_for(lambda: peer.live is not None)
        await peer.stop()
        job = make_job()
        peer.pending[job.id] = job  # queued at the backend while the validator is away
        for _ in range(300):  # the node notices the lost socket (> 0.3 s on a loaded host)
            if (await jq.connection()).state == "disconnected":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the validator did not notice that the backend was gone")
        await peer.restart()
        await peer.wait_for(lambda: acks_for(peer, job.id), timeout=15)
        assert (await jq.get_job(job.job_id)).job_id == job.job_id


async def test_auth_rejected_keeps_retrying(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with (
        ScriptedBackend(reject_auth=True) as peer,
        running(peer, jq, keypair, validator_db_url),
    ):
        await peer.wait_for(lambda: peer.connections >= 3)
        conn = await jq.connection()
        assert conn.state == "disconnected"
        assert conn.last_error is not None and "authentication failed" in conn.last_error
        peer.reject_auth = False
        await peer.wait_for(lambda: peer.authenticated >= 1, timeout=5)


async def test_lite_mode_refuses_jobs(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    async with ScriptedBackend() as peer, running(peer, jq, keypair, validator_db_url, lite=True):
        job = make_job()
        await peer.push(job)
        await peer.wait_for(lambda: acks_for(peer, job.id))
        (ack,) = acks_for(peer, job.id)
        assert not ack.ok and ack.error_code is ErrorCode.UNEXPECTED_MESSAGE
        with pytest.raises(JobNotFoundError):
            await jq.get_job(job.job_id)


def test_latest_weights_url() -> None:
    assert (
        latest_weights_url("wss://b.example:8443/ws/validator")
        == "https://b.example:8443/api/v1/weights/latest"
    )


async def test_silent_server_times_out_and_stop_is_prompt(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    accepted = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        await reader.read()  # never answers the WebSocket handshake
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws/validator"
    node = ValidatorNode(
        fast_settings(url, validator_db_url, connect_timeout_s=0.5, auth_timeout_s=0.5), jq, keypair
    )
    task = asyncio.create_task(node.run())
    try:
        for _ in range(100):
            if accepted >= 2:
                break
            await asyncio.sleep(0.05)
        assert accepted >= 2  # timed out and reconnected
        conn = await jq.connection()
        assert conn.state == "disconnected" and conn.last_error
        # stop while a connection attempt hangs: returns promptly, not after the timeout
        node.settings = fast_settings(url, validator_db_url, connect_timeout_s=30)
        await asyncio.sleep(0.3)
        started = asyncio.get_running_loop().time()
        node.stop()
        await asyncio.wait_for(task, 5)
        assert asyncio.get_running_loop().time() - started < 2
        assert (await jq.connection()).state == "stopped"
    finally:
        server.close()
        if not task.done():
            task.cancel()


async def test_appends_wake_the_sender_without_polling(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    async with (
        ScriptedBackend() as peer,
        running(peer, jq, keypair, validator_db_url, outbox_poll_s=60) as node,
    ):
        await peer.wait_for(lambda: peer.live is not None)
        await asyncio.sleep(0.3)  # the sender is now idle, waiting for NOTIFY or the 60 s poll
        started = asyncio.get_running_loop().time()
        await jq.report_status(job.job_id, JobState.RUNNING, episodes_total=2)
        await jq.append_outbox_many([make_episode(job.job_id, 0), make_steps(job.job_id, 0, 0)])
        await peer.wait_for(lambda: len(peer.store) == 3, timeout=5)
        latency = asyncio.get_running_loop().time() - started
        assert latency < 2, latency
        assert node.stats.sessions == 1


async def test_chaotic_backend_exactly_once_in_effect(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    seed = random.randrange(2**32)
    jobs = [make_job() for _ in range(5)]
    async with (
        ScriptedBackend(chaos=random.Random(seed), chaos_p=0.04) as peer,
        running(peer, jq, keypair, validator_db_url, outbox_window=8) as node,
    ):
        for job in jobs:
            await peer.push(job)
        await peer.wait_for(lambda: not peer.pending, timeout=20)

        async def evaluator(job_id: str) -> None:
            await jq.report_status(job_id, JobState.STARTING, episodes_total=4)
            for i in range(4):
                await jq.append_outbox_many([make_episode(job_id, i), make_steps(job_id, i, 0)])
                await jq.report_status(job_id, JobState.RUNNING, episodes_done=i + 1)
            await jq.append_outbox(make_result(job_id))

        await asyncio.gather(*(evaluator(job.job_id) for job in jobs))
        expected = len(jobs) * (1 + 4 * 3 + 1)
        await peer.wait_for(lambda: len(peer.store) == expected, timeout=60)
        for _ in range(100):
            depths = await jq.depths()
            if depths.outbox == 0:
                break
            await asyncio.sleep(0.05)
        assert depths.outbox == 0 and depths.outbox_dead == 0, (seed, depths)
        assert all(sorted(s) == list(range(1, 6)) for s in peer.seq_by_job.values()), seed
        assert len(peer.results()) == len(jobs)
        assert node.stats.sessions >= 1
        print(f"seed={seed} chaos={dict(peer.chaos_events)} sessions={peer.authenticated}")


async def test_database_connections_killed_mid_flow(
    jq: JobQueue, keypair: Keypair, validator_db_url: str
) -> None:
    job = make_job()
    await jq.enqueue_job(job)
    async with (
        ScriptedBackend() as peer,
        running(peer, jq, keypair, validator_db_url, outbox_poll_s=60),
    ):
        await jq.append_outbox(make_episode(job.job_id, 0))
        await peer.wait_for(lambda: len(peer.store) == 1)
        admin = create_engine(validator_db_url, pool_size=1)
        async with admin.connect() as conn:
            killed = (
                await conn.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
            ).scalar()
        await admin.dispose()
        assert killed and killed >= 2  # the node's pool and its LISTEN connection
        for i in range(1, 4):
            for _ in range(20):  # the evaluator side retries its own transient failures
                try:
                    await jq.append_outbox(make_episode(job.job_id, i))
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        # delivered without the 60 s poll: the LISTEN connection healed itself
        await peer.wait_for(lambda: len(peer.store) == 4, timeout=20)
        await asyncio.sleep(1.5)
        await jq.append_outbox(make_episode(job.job_id, 4))
        await peer.wait_for(lambda: len(peer.store) == 5, timeout=5)
        job2 = make_job()
        await peer.push(job2)
        await peer.wait_for(lambda: acks_for(peer, job2.id), timeout=20)
