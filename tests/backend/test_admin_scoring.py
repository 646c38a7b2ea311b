"""Admin API keys and roles; scoring end to end: approval mode, copies get nothing,
weights broadcast and exposed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, wait_for
from .playing import play
from .test_flow import commit_artifact, get


async def test_admin_routes_need_an_admin_key(backend: Backend) -> None:
    body = {"id": "x1", "name": "X", "benchmarks": [], "active": True}
    async with backend.client(None) as anon:
        resp = await anon.post("/api/v1/admin/competitions", json=body)
        assert resp.status_code == 401 and resp.json()["code"] == "unauthorized"
    async with backend.client("kin_nope_nope") as bad:
        assert (await bad.get("/api/v1/admin/api-keys")).status_code == 401
    async with backend.client() as admin:
        created = (
            await admin.post("/api/v1/admin/api-keys", json={"name": "ro", "roles": ["read"]})
        ).json()
        full = (
            await admin.post("/api/v1/admin/api-keys", json={"name": "ops", "roles": ["admin"]})
        ).json()
        listed = (await admin.get("/api/v1/admin/api-keys")).json()
        assert {k["name"] for k in listed} == {"ro", "ops"}
        assert all(k.get("key") is None for k in listed)  # the secret is shown only once
    async with backend.client(created["key"]) as reader:
        resp = await reader.get("/api/v1/admin/api-keys")
        assert resp.status_code == 403
    async with backend.client(full["key"]) as ops:
        resp = await ops.post("/api/v1/admin/competitions", json=body)
        assert resp.status_code == 422  # benchmarks must not be empty: a specific error
        assert (await ops.get("/api/v1/admin/api-keys")).status_code == 200
        assert (await ops.delete(f"/api/v1/admin/api-keys/{created['id']}")).status_code == 204
    async with backend.client(created["key"]) as revoked:
        resp = await revoked.get("/api/v1/admin/api-keys")
        assert resp.status_code == 401 and "revoked" in resp.json()["detail"]
    async with backend.state.engine.begin() as conn:
        await conn.execute(
            text("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = :i"),
            {"i": full["id"]},
        )
    async with backend.client(full["key"]) as expired:
        resp = await expired.get("/api/v1/admin/api-keys")
        assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    # stored hashed: the secret never appears in the table
    async with backend.state.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT key_hash FROM api_keys"))).scalars().all()
    assert full["key"] not in stored and len(stored[0]) == 64


async def test_competition_admin_crud(backend: Backend) -> None:
    await create_competition(backend, "c1", active=False)
    async with backend.client() as admin:
        dup = await admin.post(
            "/api/v1/admin/competitions",
            json={"id": "c1", "name": "again", "benchmarks": [_bench()]},
        )
        assert dup.status_code == 409
        patched = await admin.patch(
            "/api/v1/admin/competitions/c1", json={"min_episodes": 40, "min_leader_score": 0.1}
        )
        assert (patched.json()["min_episodes"], patched.json()["min_leader_score"]) == (40, 0.1)
        stale = await admin.patch("/api/v1/admin/competitions/c1", json={"win_margin": 0.1})
        assert stale.status_code == 422  # the fixed margin is gone: a paired test decides
        assert (patched.json()["quorum"], patched.json()["min_validators"]) == (1, None)
        # a quorum the replication can never reach is refused, naming both
        unreachable = await admin.patch("/api/v1/admin/competitions/c1", json={"min_validators": 2})
        assert unreachable.status_code == 400
        assert "min_validators 2 exceeds replication 1" in unreachable.json()["detail"]
        both = await admin.patch(
            "/api/v1/admin/competitions/c1", json={"min_validators": 2, "replication": 3}
        )
        assert (both.json()["quorum"], both.json()["effective_replication"]) == (2, 3)
        assert (await admin.post("/api/v1/admin/competitions/c1/activate")).json()["active"]
        missing = await admin.post("/api/v1/admin/competitions/zz/activate")
        assert missing.status_code == 404
    listed = await get(backend, "/api/v1/competitions", active=True)
    assert [c["id"] for c in listed] == ["c1"]


def _bench() -> dict[str, Any]:
    return {"benchmark_id": "metaworld/MT1-reach-v3", "tasks": ["reach-v3"], "episodes_per_task": 2}


async def _evaluate(client: Any, n: int, successes: int) -> list[str]:
    done = []
    for _ in range(n):
        job = await client.recv_type("eval_job", within=15)
        await client.send(Ack.of(job))
        assert (await play(client, job, successes)).ok
        done.append(job.job_id)
    return done


async def test_copy_gets_nothing_and_weights_reach_validators(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await create_competition(backend)
    validator = await net.validator()
    client, _ = await login(backend, validator)
    original = await commit_artifact(net, registry, content=b"agent")
    await _evaluate(client, 1, successes=1)
    copier = await commit_artifact(net, registry, content=b"agent", repo="copier/agent")
    await _evaluate(client, 1, successes=2)  # the copy even scores better here

    board = await wait_for(lambda: _board_with(backend, 2), within=15)
    rows = {r["miner_hotkey"]: r for r in board["rows"]}
    assert rows[copier.ss58_address]["copy_of"] == rows[original.ss58_address]["submission_id"]
    assert rows[copier.ss58_address]["eligible"] is False
    assert board["leader"]["miner_hotkey"] == original.ss58_address

    uid = rows[original.ss58_address]["miner_uid"]
    weights = await wait_for(lambda: _weights_for(backend, uid), within=15)
    assert sum(weights["weights"].values()) == 1.0
    msg = await client.recv_type("set_weights", within=15)
    while msg.weights_id != weights["weights_id"]:
        msg = await client.recv_type("set_weights", within=15)
    assert msg.weights == {uid: 1.0}
    await client.close()


async def _board_with(backend: Backend, n: int) -> dict[str, Any] | None:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    return board if len(board["rows"]) >= n and board["leader"] else None


async def _weights_for(backend: Backend, uid: int) -> dict[str, Any] | None:
    async with backend.client(None) as http:
        resp = await http.get("/api/v1/weights/latest")
    if resp.status_code != 200:
        return None
    w = resp.json()
    return w if w["weights"].get(str(uid)) == 1.0 else None


async def test_admin_approval_mode(backend: Backend, net: Net, registry: LocalRegistry) -> None:
    await create_competition(backend, approval_mode="admin")
    client, _ = await login(backend, await net.validator())
    miner = await commit_artifact(net, registry)
    await _evaluate(client, 1, successes=7)

    async def candidate() -> dict[str, Any] | None:
        async with backend.client() as admin:
            rows = (await admin.get("/api/v1/admin/leader-candidates")).json()
        return rows[0] if rows else None

    cand = await wait_for(candidate, within=15)
    assert cand["miner_hotkey"] == miner.ss58_address
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    assert board["leader"] is None and len(board["pending_candidates"]) == 1
    async with backend.client() as admin:
        resp = await admin.post(f"/api/v1/admin/leader-candidates/{cand['id']}/approve")
        assert resp.status_code == 200
        again = await admin.post(f"/api/v1/admin/leader-candidates/{cand['id']}/approve")
        assert again.status_code == 409
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    assert board["leader"]["miner_hotkey"] == miner.ss58_address
    assert (board["min_episodes"], board["min_leader_score"]) == (1, 0.0)
    await client.close()


async def test_job_rerun_reassigns(backend: Backend, net: Net, registry: LocalRegistry) -> None:
    await create_competition(backend)
    client, _ = await login(backend, await net.validator())
    await commit_artifact(net, registry)
    [job_id] = await _evaluate(client, 1, successes=3)
    await wait_for(lambda: _job_state(backend, job_id, "completed"))
    async with backend.client() as admin:
        resp = await admin.post(f"/api/v1/admin/jobs/{job_id}/rerun")
        assert resp.status_code == 200
    job = await client.recv_type("eval_job", within=15)
    assert job.job_id == job_id
    await client.close()


async def _job_state(backend: Backend, job_id: str, state: str) -> bool:
    return bool((await get(backend, f"/api/v1/jobs/{job_id}"))["state"] == state)
