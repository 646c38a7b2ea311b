"""Chain monitor: rejections with reasons (API + realtime feed), dedup, resumable scan."""

from __future__ import annotations

import asyncio
from typing import Any

from kinitro.backend.chain_monitor import ChainMonitor
from kinitro.chain.models import CommitmentRecord
from kinitro.protocol.commitment import encode_commitment
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, new_key, upload, wait_for
from .test_flow import commit_artifact, get
from .test_realtime import next_event, subscribe


async def _submission_of(backend: Backend, hotkey: str) -> dict[str, Any] | None:
    page = await get(backend, "/api/v1/submissions", miner_hotkey=hotkey)
    return page["items"][0] if page["items"] else None


async def _rejected(backend: Backend, hotkey: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        sub = await _submission_of(backend, hotkey)
        return sub if sub and sub["status"] == "rejected" else None

    try:
        return dict(await wait_for(check, within=15))
    except AssertionError:
        raise AssertionError(f"{hotkey}: {await _submission_of(backend, hotkey)}") from None


async def test_rejections_carry_reasons(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(artifact_max_bytes=1000) as backend:
        await create_competition(backend, "mt1")
        await create_competition(backend, "sleepy", active=False)
        feed, _ = await subscribe(backend, event_types=["submission_rejected"])

        garbage = await net.neuron()
        await net.chain.commit(garbage, "this is not a commitment")
        unknown = await commit_artifact(net, registry, cid="nope")
        inactive = await commit_artifact(net, registry, cid="sleepy", content=b"b2")
        mismatch = await commit_artifact(net, registry, content=b"b3", sha256="0" * 64)
        huge = await commit_artifact(net, registry, content=b"x" * 5000, repo="miner/big")
        missing = await net.neuron()
        await net.chain.commit(
            missing,
            encode_commitment(
                competition_id="mt1",
                registry="local",
                repo="miner/ghost",
                revision="0123456789abcdef",
                sha256="1" * 64,
            ),
        )
        expected = {
            garbage.ss58_address: "invalid_commitment",
            unknown.ss58_address: "unknown_competition",
            inactive.ss58_address: "competition_inactive",
            mismatch.ss58_address: "sha256_mismatch",
            huge.ss58_address: "artifact_too_large",
            missing.ss58_address: "artifact_not_found",
        }
        for hotkey, reason in expected.items():
            sub = await _rejected(backend, hotkey)
            assert sub["rejection_reason"] == reason, sub
            assert sub["rejection_detail"]
        seen = {}
        while len(seen) < len(expected):
            event = await next_event(feed, within=10)
            seen[event.miner_hotkey] = event.reason
        assert seen == expected
        jobs = await get(backend, "/api/v1/jobs")
        assert jobs["total"] == 0
        await feed.close()


async def test_unregistered_hotkeys_are_ignored_and_scan_resumes(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend)
        miner = await commit_artifact(net, registry)
        await wait_for(lambda: _submission_of(backend, miner.ss58_address), within=15)
        progress = await _scan_block(backend)
        assert progress is not None
        # a commitment whose hotkey is no longer registered (uid None) is ignored
        monitor = ChainMonitor(backend.state)
        gone = CommitmentRecord(
            netuid=net.chain.netuid,
            hotkey=new_key().ss58_address,
            uid=None,
            block=3,
            data="whatever",
        )
        assert await monitor.record(gone) is False
        assert await _submission_of(backend, gone.hotkey) is None
    # the scan position survives a restart and the same commitment is not recorded twice
    async with make_backend() as backend:
        await asyncio.sleep(1.0)
        page = await get(backend, "/api/v1/submissions")
        assert page["total"] == 1
        assert (await _scan_block(backend) or 0) >= progress


async def _scan_block(backend: Backend) -> int | None:
    from kinitro.backend.db import repo_chain

    async with backend.state.engine.connect() as conn:
        return await repo_chain.last_block(conn, "commitments")


async def test_new_commitment_supersedes_and_copies_are_credited_to_the_first(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    original = await commit_artifact(net, registry, content=b"same-bundle")
    first = await wait_for(lambda: _scheduled(backend, original.ss58_address), within=15)
    copier = await commit_artifact(net, registry, content=b"same-bundle", repo="copier/agent")
    copy = await wait_for(lambda: _scheduled(backend, copier.ss58_address), within=15)
    assert copy["credited_submission_id"] == first["id"]
    assert first["credited_submission_id"] == first["id"]
    # the original miner commits a new bundle: the old submission is superseded
    await asyncio.sleep(0.3)  # commit rate limit: one block
    ref = upload(registry, "miner/agent", b"v2")
    await net.chain.commit(
        original,
        encode_commitment(
            competition_id="mt1",
            registry="local",
            repo=ref.repo,
            revision=ref.revision,
            sha256=ref.sha256,
        ),
    )

    async def superseded() -> bool:
        sub = await get(backend, f"/api/v1/submissions/{first['id']}")
        return sub["status"] == "superseded" and all(j["state"] == "cancelled" for j in sub["jobs"])

    await wait_for(superseded, within=15)


async def _scheduled(backend: Backend, hotkey: str) -> dict[str, Any] | None:
    sub = await _submission_of(backend, hotkey)
    return sub if sub and sub["status"] == "scheduled" else None
