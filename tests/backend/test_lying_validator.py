"""Lying validators over the real WebSocket against the real backend: every lie is refused
with its reason and a strike, the honest quorum's score stands, and one validator alone
never moves the leader or the weights."""

from __future__ import annotations

from typing import Any

import pytest

from kinitro.protocol.common import ErrorCode, JobState
from kinitro.protocol.validator_ws import Ack, EvalJob, JobStatus
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, wait_for
from .playing import completed, deliver, episodes_for, metrics_for, play
from .test_flow import commit_artifact, get


async def _two_validators_one_job(backend: Backend, net: Net, registry: LocalRegistry) -> Any:
    await create_competition(backend, replication=2, min_validators=2)
    honest, liar = await net.validator(), await net.validator()
    client_h, _ = await login(backend, honest)
    client_l, _ = await login(backend, liar)
    await commit_artifact(net, registry)
    job_h = await client_h.recv_type("eval_job", within=15)
    job_l = await client_l.recv_type("eval_job", within=15)
    for client, job in ((client_h, job_h), (client_l, job_l)):
        await client.send(Ack.of(job))
    return (client_h, job_h, honest), (client_l, job_l, liar)


async def _strikes(backend: Backend, hotkey: str) -> list[dict[str, Any]]:
    page = await get(backend, "/api/v1/validators/strikes", validator_hotkey=hotkey)
    return list(page["items"])


def _lie(job: EvalJob, kind: str) -> list[Any]:
    """The messages a liar sends for ``job`` (its last one is the one refused)."""
    honest = episodes_for(job, 0)
    if kind == "inflated_metrics":  # honest failures, a perfect score claimed
        perfect = metrics_for(job, episodes_for(job, job.benchmark.total_episodes))
        return [*honest, completed(job, honest, metrics=perfect)]
    if kind == "wrong_seed":
        return [honest[0].model_copy(update={"seed": honest[0].seed ^ 1})]
    if kind == "wrong_task_slot":  # claims a task episode outside the plan
        return [honest[0].model_copy(update={"task_episode": 5})]
    if kind == "over_budget":
        return [honest[0].model_copy(update={"steps": job.benchmark.max_steps + 1})]
    if kind == "fewer_episodes":  # reports one episode and metrics over just that one
        only = honest[:1]
        return [*only, completed(job, only, metrics=metrics_for(job, only))]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("inflated_metrics", "metrics_mismatch"),
        ("wrong_seed", "seed_mismatch"),
        ("wrong_task_slot", "wrong_episode"),
        ("over_budget", "step_budget_exceeded"),
    ],
)
async def test_lies_are_refused_struck_and_the_honest_result_stands(
    make_backend: Any, net: Net, registry: LocalRegistry, kind: str, reason: str
) -> None:
    async with make_backend() as backend:
        (client_h, job_h, _), (client_l, job_l, liar) = await _two_validators_one_job(
            backend, net, registry
        )
        *accepted, lie = _lie(job_l, kind)
        for message in accepted:
            assert (await deliver(client_l, message)).ok
        ack = await deliver(client_l, lie)
        assert not ack.ok and ack.error_code is ErrorCode.CROSS_CHECK_FAILED
        assert ack.detail.startswith(f"{reason}: "), ack.detail
        # the lie is counted once, whatever the liar resends
        assert not (await deliver(client_l, lie)).ok
        [strike] = await _strikes(backend, liar.ss58_address)
        assert strike["reason"] == reason and strike["job_id"] == job_l.job_id
        # the honest validator's result is accepted, but alone it is not a quorum
        assert (await play(client_h, job_h, 1)).ok
        board = await wait_for(lambda: _row(backend), within=15)
        assert board["awaiting_quorum"] and board["quorum"] == {"have": 1, "need": 2}
        detail = await get(backend, f"/api/v1/jobs/{job_l.job_id}")
        states = {a["validator_hotkey"]: a["state"] for a in detail["assignments"]}
        assert states[liar.ss58_address] == "rejected"  # freed for another validator
        vals = {v["hotkey"]: v for v in await get(backend, "/api/v1/validators")}
        assert vals[liar.ss58_address]["strikes"] == 1
        for c in (client_h, client_l):
            await c.close()


async def test_missing_episodes_are_held_then_refused(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(result_grace_s=1.0) as backend:
        _, (client_l, job_l, liar) = await _two_validators_one_job(backend, net, registry)
        *accepted, result = _lie(job_l, "fewer_episodes")
        for message in accepted:
            assert (await deliver(client_l, message)).ok
        held = await deliver(client_l, result)  # maybe the rest is still on its way
        assert not held.ok and held.error_code is ErrorCode.UNAVAILABLE
        assert "waits for 1 episode" in held.detail
        await wait_for(lambda: _refused(client_l, result), within=15, interval=1.2)
        [strike] = await _strikes(backend, liar.ss58_address)
        assert strike["reason"] == "missing_episodes"
        await client_l.close()


async def _refused(client: Any, message: Any) -> bool:
    ack = await deliver(client, message)
    return not ack.ok and ack.error_code is ErrorCode.CROSS_CHECK_FAILED


async def test_episodes_after_the_result_are_waited_for(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    """An honest outbox may redeliver an episode after the result (a retried nack): the
    result is held, then accepted once the episode is in — nothing lost, nothing struck."""
    async with make_backend() as backend:
        (client, job, honest), _ = await _two_validators_one_job(backend, net, registry)
        episodes = episodes_for(job, 1)
        assert (await deliver(client, episodes[0])).ok
        result = completed(job, episodes)
        assert (await deliver(client, result)).error_code is ErrorCode.UNAVAILABLE
        assert (await deliver(client, episodes[1])).ok
        assert (await deliver(client, result)).ok
        assert (await deliver(client, result)).ok  # a duplicate is acked again
        assert await _strikes(backend, honest.ss58_address) == []
        await client.close()


async def test_a_job_never_assigned_is_refused_and_struck(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend, replication=1, min_validators=1)
        worker, stranger = await net.validator(), await net.validator()
        client_w, _ = await login(backend, worker)
        await commit_artifact(net, registry)
        job = await client_w.recv_type("eval_job", within=15)
        await client_w.send(Ack.of(job))
        client_s, _ = await login(backend, stranger)  # too late: the job is taken
        status = JobStatus(job_id=job.job_id, state=JobState.RUNNING, seq=1, at=job.created_at)
        ack = await deliver(client_s, status)
        assert not ack.ok and ack.error_code is ErrorCode.CROSS_CHECK_FAILED
        assert ack.detail.startswith("not_assigned: ")
        # replaying the assigned validator's episodes as its own is the same lie
        ack = await deliver(client_s, episodes_for(job, 1)[0])
        assert not ack.ok
        [strike] = await _strikes(backend, stranger.ss58_address)
        assert strike["reason"] == "not_assigned"
        for c in (client_w, client_s):
            await c.close()


async def test_one_validator_alone_never_changes_the_leader_or_the_weights(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend, replication=2, min_validators=2)
        a, b = await net.validator(), await net.validator()
        client_a, _ = await login(backend, a)
        client_b, _ = await login(backend, b)
        leader = await commit_artifact(net, registry, content=b"leader")
        for client in (client_a, client_b):
            job = await client.recv_type("eval_job", within=15)
            await client.send(Ack.of(job))
            assert (await play(client, job, 1)).ok  # 1/2 each: a quorum
        board = await wait_for(lambda: _leader(backend), within=20)
        assert board["leader"]["miner_hotkey"] == leader.ss58_address
        # the weights follow once the backend's metagraph has the leader's uid
        weights = await wait_for(lambda: _weights_with_a_leader(backend), within=20)

        challenger = await commit_artifact(net, registry, content=b"challenger", repo="c/agent")
        job = await client_a.recv_type("eval_job", within=15)
        await client_a.send(Ack.of(job))
        assert (await play(client_a, job, 2)).ok  # a perfect score, from one validator only
        row = await wait_for(lambda: _row(backend, challenger.ss58_address), within=15)
        assert row["awaiting_quorum"] and not row["eligible"] and row["quorum"]["have"] == 1
        board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
        assert board["leader"]["miner_hotkey"] == leader.ss58_address
        assert (await get(backend, "/api/v1/weights/latest"))["digest"] == weights["digest"]
        for c in (client_a, client_b):
            await c.close()


async def _leader(backend: Backend) -> dict[str, Any] | None:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    return board if board["leader"] else None


async def _weights_with_a_leader(backend: Backend) -> dict[str, Any] | None:
    weights = await get(backend, "/api/v1/weights/latest")
    share = weights["summary"].get("mt1")
    return weights if share is not None and share["leader_uid"] is not None else None


async def _row(backend: Backend, miner: str | None = None) -> dict[str, Any] | None:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    rows = [r for r in board["rows"] if miner is None or r["miner_hotkey"] == miner]
    return rows[0] if rows else None
