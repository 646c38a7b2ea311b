"""Free denial of service, refused over the real backend: a validator holds at most
``max_jobs_per_validator`` unfinished jobs, and a miner has at most ``submission_limit``
submissions accepted per competition and window (the next is rejected ``rate_limited``)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from kinitro.core.db import dsn
from kinitro.protocol.commitment import encode_commitment
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, upload, wait_for
from .playing import play
from .test_flow import commit_artifact, get


async def _submissions(backend: Backend, hotkey: str) -> list[dict[str, Any]]:
    page = await get(backend, "/api/v1/submissions", miner_hotkey=hotkey)
    return sorted(page["items"], key=lambda s: s["id"])


async def test_a_validator_holds_at_most_its_in_flight_cap(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(max_jobs_per_validator=1) as backend:
        await create_competition(backend)
        client, _ = await login(backend, await net.validator())
        await commit_artifact(net, registry, content=b"one", repo="a/agent")
        await commit_artifact(net, registry, content=b"two", repo="b/agent")
        first = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(first))
        try:  # the second job waits while the first is unfinished
            extra = await client.recv_type("eval_job", within=3)
            raise AssertionError(f"a second job past the cap: {extra.job_id}")
        except TimeoutError:
            pass
        jobs = await get(backend, "/api/v1/jobs")
        assert jobs["total"] == 2
        assert (await play(client, first, 1)).ok
        second = await client.recv_type("eval_job", within=15)  # capacity freed
        assert second.job_id != first.job_id
        await client.close()


async def test_submissions_over_the_rate_limit_are_rejected_rate_limited(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(submission_limit=1, submission_window_s=3600) as backend:
        await create_competition(backend)
        miner = await commit_artifact(net, registry, content=b"v1")
        other = await commit_artifact(net, registry, content=b"x1", repo="other/agent")
        [v1] = await wait_for(lambda: _scheduled(backend, miner.ss58_address), within=15)
        await asyncio.sleep(0.3)  # the chain's commit rate limit: one block
        ref = upload(registry, "miner/agent", b"v2")
        text = encode_commitment(
            competition_id="mt1",
            registry="local",
            repo=ref.repo,
            revision=ref.revision,
            sha256=ref.sha256,
        )
        await net.chain.commit(miner, text)

        async def rejected() -> dict[str, Any] | None:
            subs = await _submissions(backend, miner.ss58_address)
            return subs[-1] if len(subs) == 2 and subs[-1]["status"] == "rejected" else None

        v2 = await wait_for(rejected, within=15)
        assert v2["rejection_reason"] == "rate_limited", v2
        assert (
            "1 submissions to 'mt1' accepted in the last 3600s (limit 1)"
            in (v2["rejection_detail"])
        )
        assert (await get(backend, f"/api/v1/submissions/{v1['id']}"))["status"] == "scheduled"
        assert await _scheduled(backend, other.ss58_address)  # other miners are unaffected


async def _scheduled(backend: Backend, hotkey: str) -> list[dict[str, Any]] | None:
    subs = await _submissions(backend, hotkey)
    return subs if subs and subs[0]["status"] == "scheduled" else None


async def test_a_superseded_job_is_cancelled_on_its_validator_and_frees_its_slot(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(max_jobs_per_validator=1) as backend:
        await create_competition(backend)
        validator = await net.validator()
        client, _ = await login(backend, validator)
        miner = await commit_artifact(net, registry, content=b"v1")
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        await commit_artifact(net, registry, content=b"other", repo="other/agent")  # waits
        await asyncio.sleep(0.3)  # the chain's commit rate limit: one block
        ref = upload(registry, "miner/agent", b"v2")
        await net.chain.commit(
            miner,
            encode_commitment(
                competition_id="mt1",
                registry="local",
                repo=ref.repo,
                revision=ref.revision,
                sha256=ref.sha256,
            ),
        )
        cancel = await client.recv_type("cancel_job", within=15)
        assert cancel.job_id == job.job_id and cancel.reason.startswith("superseded by submission")
        await client.close()  # not acked: sent again on the next connection
        client, _ = await login(backend, validator)
        got = await _first_of_each(client, {"cancel_job", "eval_job"})
        assert got["cancel_job"].id == cancel.id
        await client.send(Ack.of(got["cancel_job"]))
        assert got["eval_job"].job_id != job.job_id  # the cancelled job freed the cap
        detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
        assert detail["state"] == "cancelled"
        assert [a["state"] for a in detail["assignments"]] == ["cancelled"]
        await client.close()
        client, _ = await login(backend, validator)  # acked: never sent again
        try:
            extra = await client.recv_type("cancel_job", within=2)
            raise AssertionError(f"cancel_job sent again: {extra}")
        except TimeoutError:
            pass
        await client.close()


async def _first_of_each(client: Any, kinds: set[str], within: float = 15.0) -> dict[str, Any]:
    """The first message of each of ``kinds``, whatever the order they come in."""
    loop = asyncio.get_running_loop()
    deadline, got = loop.time() + within, {}
    while set(got) != kinds:
        message = await client.recv(within=max(0.05, deadline - loop.time()))
        if message.type in kinds:
            got.setdefault(message.type, message)
    return got


async def test_an_operator_cancels_a_running_job_on_its_validator(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.send(Ack.of(job))
    async with backend.client() as http:
        resp = await http.post(f"/api/v1/admin/jobs/{job.job_id}/cancel")
        assert resp.status_code == 200 and resp.json()["state"] == "cancelled", resp.text
        cancel = await client.recv_type("cancel_job", within=15)
        assert cancel.job_id == job.job_id and cancel.reason.startswith("cancelled by ")
        await client.send(Ack.of(cancel))
        again = await http.post(f"/api/v1/admin/jobs/{job.job_id}/cancel")  # nothing left
        assert again.status_code == 200 and again.json()["state"] == "cancelled"
        missing = await http.post("/api/v1/admin/jobs/no-such-job/cancel")
        assert missing.status_code == 404
    assert (await get(backend, f"/api/v1/jobs/{job.job_id}"))["state"] == "cancelled"
    await client.close()


async def test_a_cancel_meeting_an_ack_in_flight_waits_for_it(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    """An ack locks the job's assignment and then its job; a cancel arriving between the
    two once locked the job first and waited for the assignment, a deadlock PostgreSQL broke
    by aborting one side (the operator got 409). Played here step by step: the ack's two
    statements on our own connection, the operator's cancel over REST in between."""
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    conn = await asyncpg.connect(dsn(backend.settings.database_url))
    try:
        async with backend.client() as http:
            async with conn.transaction():
                await conn.execute(
                    "SELECT id FROM job_assignments WHERE job_id = $1 FOR UPDATE", job.job_id
                )
                url = f"/api/v1/admin/jobs/{job.job_id}/cancel"
                cancel = asyncio.create_task(http.post(url))
                await asyncio.sleep(0.5)  # the cancel is now waiting on a lock
                assert not cancel.done(), cancel.result().text
                # a deadlock error here if the cancel holds the job's row
                await conn.execute("UPDATE jobs SET updated_at = now() WHERE id = $1", job.job_id)
            resp = await asyncio.wait_for(cancel, 15)
        assert resp.status_code == 200 and resp.json()["state"] == "cancelled", resp.text
    finally:
        await conn.close()
    await client.close()


async def test_a_full_panel_member_keeps_its_rounds_jobs(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    """The cap never splits a round's pairs: a job of a round whose validator is full
    waits for it instead of going to another validator (paired comparisons need one
    validator to play both submissions on the same seeds)."""
    async with make_backend(max_jobs_per_validator=1) as backend:
        await create_competition(backend)
        clients = [(await login(backend, await net.validator()))[0] for _ in "ab"]
        await commit_artifact(net, registry, content=b"one", repo="a/agent")
        holder, first = await _next_job(clients)
        await holder.send(Ack.of(first))
        other = next(c for c in clients if c is not holder)
        await commit_artifact(net, registry, content=b"two", repo="b/agent")
        try:
            extra = await other.recv_type("eval_job", within=3)
            raise AssertionError(f"the round's second job went elsewhere: {extra.job_id}")
        except TimeoutError:
            pass
        assert (await play(holder, first, 1)).ok
        second = await holder.recv_type("eval_job", within=15)
        assert second.job_id != first.job_id and second.round_id == first.round_id
        for c in clients:
            await c.close()


async def _next_job(clients: list[Any], within: float = 15.0) -> tuple[Any, Any]:
    """The first ``eval_job`` any of ``clients`` receives, and which one got it."""
    waits = {asyncio.create_task(c.recv_type("eval_job", within=within)): c for c in clients}
    done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    task = done.pop()
    return waits[task], task.result()
