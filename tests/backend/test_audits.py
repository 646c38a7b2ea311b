"""Replay audits over the real WebSocket, backend and audit workers: after the round's
reveal, a lying validator's fabricated action log (a stronger policy's actions, metrics
consistent with it) is caught, its result discarded and struck, the job rerun by another
validator, and the honest quorum's score is what counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from kinitro.evaluator.replay import load_action_log, replay
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, wait_for
from .playing import completed, deliver
from .simulated import expert, play_for_real
from .test_flow import commit_artifact, get
from .test_lying_validator import _two_validators_one_job


async def _report(client: Any, job: Any, episodes: list[Any]) -> Ack:
    for episode in episodes:
        ack = await deliver(client, episode)
        assert ack.ok, ack
    return await deliver(client, completed(job, episodes))


async def _reveal(backend: Backend, job_id: str) -> None:
    """End the job's round now: the scheduler reveals it, the auditor starts."""
    async with backend.state.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE eval_rounds SET ends_at = now() - interval '1 second' "
                "WHERE id = (SELECT round_id FROM jobs WHERE id = :job)"
            ),
            {"job": job_id},
        )


async def _validators(backend: Backend) -> dict[str, dict[str, Any]]:
    return {v["hotkey"]: v for v in await get(backend, "/api/v1/validators")}


async def _row(backend: Backend) -> dict[str, Any] | None:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    return board["rows"][0] if board["rows"] else None


FAVOURITE_SEED = 7  # one the expert solves within the test benchmark's 50 steps
LIES = {
    # a stronger policy's episodes on a seed of the liar's choosing, the header naming
    # it: `kinitro replay` of the log says "ok", the audit (derived seed) does not
    "fabricated_log": dict(policy=expert, seed_of=lambda seed: FAVOURITE_SEED),
    # the same claims with no action log where the episode says it is
    "missing_log": dict(policy=expert, seed_of=lambda seed: FAVOURITE_SEED, upload=False),
}


@pytest.mark.parametrize("lie", sorted(LIES))
async def test_a_fabricated_action_log_is_caught_by_the_audit_after_the_reveal(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path, lie: str
) -> None:
    media = tmp_path / "media"
    async with make_backend(
        media_url=str(media), audit_workers=1, audit_rate=1.0, audit_interval_s=0.3
    ) as backend:
        (client_h, job_h, honest), (client_l, job_l, liar) = await _two_validators_one_job(
            backend, net, registry
        )

        assert (await _report(client_h, job_h, play_for_real(job_h, media))).ok
        fake = play_for_real(job_l, media, **LIES[lie])
        assert all(e.success for e in fake)  # the lie: a perfect score, consistent
        if lie == "fabricated_log":  # replayed on the seed its header names, it is "ok"
            assert replay(load_action_log(str(fake[0].actions_ref), str(media))).ok
        assert (await _report(client_l, job_l, fake)).ok  # passes every cross-check
        row = await wait_for(lambda: _settled(backend), within=20)
        before = row["success_rate"]
        assert before > 0  # before the reveal, the lie lifts the median

        await _reveal(backend, job_l.job_id)
        [strike] = await wait_for(
            lambda: _strikes(backend, liar.ss58_address), within=60, interval=0.5
        )
        assert strike["reason"] == "audit_mismatch" and strike["job_id"] == job_l.job_id
        page = await get(backend, "/api/v1/validators/audits", validator_hotkey=liar.ss58_address)
        failed = [a for a in page["items"] if a["state"] == "failed"]
        assert failed and failed[0]["replayed"]["seed"] == fake[failed[0]["episode_index"]].seed
        vals = await _validators(backend)
        assert vals[liar.ss58_address]["audits_failed"] >= 1
        assert vals[liar.ss58_address]["audit_pass_rate"] == 0.0
        await wait_for(lambda: _audited(backend, honest.ss58_address), within=60, interval=0.5)
        vals = await _validators(backend)
        assert vals[honest.ss58_address]["audit_pass_rate"] == 1.0
        assert vals[honest.ss58_address]["strikes"] == 0

        # the liar's result is discarded: the job waits for another validator
        detail = await get(backend, f"/api/v1/jobs/{job_l.job_id}")
        states = {a["validator_hotkey"]: a["state"] for a in detail["assignments"]}
        assert states[liar.ss58_address] == "rejected"
        row = await wait_for(lambda: _awaiting(backend), within=20)
        assert row["quorum"] == {"have": 1, "need": 2}

        second = await net.validator()
        client_2, _ = await login(backend, second)
        job_2 = await client_2.recv_type("eval_job", within=15)
        assert job_2.job_id == job_l.job_id
        await client_2.send(Ack.of(job_2))
        assert (await _report(client_2, job_2, play_for_real(job_2, media))).ok
        row = await wait_for(lambda: _settled(backend), within=20)
        assert row["success_rate"] == 0.0 < before  # the honest quorum's score
        await wait_for(lambda: _audited(backend, second.ss58_address), within=60, interval=0.5)
        for c in (client_h, client_l, client_2):
            await c.close()


async def _strikes(backend: Backend, hotkey: str) -> list[dict[str, Any]]:
    page = await get(backend, "/api/v1/validators/strikes", validator_hotkey=hotkey)
    return list(page["items"])


async def _audited(backend: Backend, hotkey: str) -> bool:
    v = (await _validators(backend)).get(hotkey, {})
    return bool(v.get("audits_passed"))


async def _awaiting(backend: Backend) -> dict[str, Any] | None:
    row = await _row(backend)
    return row if row and row["awaiting_quorum"] else None


async def _settled(backend: Backend) -> dict[str, Any] | None:
    row = await _row(backend)
    return row if row and not row["awaiting_quorum"] else None


async def test_an_episode_stored_under_older_seed_rules_is_skipped_not_struck(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    """Episodes stored before sealed rounds carry the old shared round seed: the derived
    seed would not replay them, and that is nobody's fault."""
    media = tmp_path / "media"
    async with make_backend(
        media_url=str(media), audit_workers=1, audit_rate=1.0, audit_interval_s=0.3
    ) as backend:
        await create_competition(backend, replication=1, min_validators=1)
        validator = await net.validator()
        client, _ = await login(backend, validator)
        await commit_artifact(net, registry)
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        assert (await _report(client, job, play_for_real(job, media))).ok
        async with backend.state.engine.begin() as conn:  # as stored before the upgrade
            await conn.execute(
                text("UPDATE episodes SET seed = seed + 1 WHERE job_id = :job"), {"job": job.job_id}
            )
        await _reveal(backend, job.job_id)

        async def skipped() -> bool:
            page = await get(backend, "/api/v1/validators/audits", state="skipped")
            return page["total"] == job.benchmark.total_episodes

        await wait_for(skipped, within=60, interval=0.5)
        assert await _strikes(backend, validator.ss58_address) == []
        await client.close()
