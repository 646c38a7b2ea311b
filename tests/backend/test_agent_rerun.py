"""The agent re-run audit over the real WebSocket, backend and audit workers: a liar that
plays a stronger policy on its *true* seeds passes every cross-check and its replay audit,
but the miner's bundle declares ``deterministic = true``, so after the reveal two other
validators re-run the agent on the liar's seed — they agree with each other, not with the
liar's log: a strike, and the liar's result is discarded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinitro.protocol.commitment import encode_commitment
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.bundle import package_bundle

from .conftest import Net, create_competition, login, wait_for
from .simulated import expert, idle, play_for_real
from .test_audits import _report, _reveal, _strikes, _validators
from .test_flow import get


async def _commit_bundle(net: Net, registry: LocalRegistry, tmp: Path, deterministic: bool) -> Any:
    root = tmp / "bundle"
    root.mkdir()
    flag = str(deterministic).lower()
    (root / "kinitro.toml").write_text(
        f'name = "still"\nentrypoint = "agent:Agent"\ndeterministic = {flag}\n'
    )
    (root / "agent.py").write_text(
        "import numpy as np\n\nclass Agent:\n    def act(self, observation):\n"
        "        return np.zeros(4, dtype=np.float32)\n"
    )
    bundle = package_bundle(root, tmp / "bundle.tar")
    ref = registry.upload(bundle.path, "miner/still")
    miner = await net.neuron()
    text = encode_commitment(
        competition_id="mt1", registry="local", repo=ref.repo, revision=ref.revision,
        sha256=ref.sha256,
    )  # fmt: skip
    await net.chain.commit(miner, text)
    return miner


async def _rerun_scenario(
    backend: Any, net: Net, registry: LocalRegistry, tmp: Path, *, audited: Any, reruns: Any
) -> tuple[Any, Any, Any, Any]:
    """Validator A plays ``audited`` on its job; after the reveal, the two others play
    the re-run job with ``reruns`` (one policy each). Returns (A, A's job, B, C)."""
    media = Path(backend.settings.media_url)
    await create_competition(backend, replication=2, min_validators=2)
    b_key, a_key = await net.validator(), await net.validator()
    client_b, _ = await login(backend, b_key)
    client_a, _ = await login(backend, a_key)
    await _commit_bundle(net, registry, tmp, deterministic=True)
    job_b = await client_b.recv_type("eval_job", within=15)
    job_a = await client_a.recv_type("eval_job", within=15)
    for client, job in ((client_b, job_b), (client_a, job_a)):
        await client.send(Ack.of(job))
    assert (await _report(client_b, job_b, play_for_real(job_b, media))).ok
    assert (await _report(client_a, job_a, play_for_real(job_a, media, audited))).ok
    c_key = await net.validator()
    client_c, _ = await login(backend, c_key)

    await _reveal(backend, job_a.job_id)
    # the re-run job goes to the two others, with A's seed
    for client, policy in zip((client_b, client_c), reruns, strict=True):
        while True:
            job = await client.recv_type("eval_job", within=60)
            if job.seed == job_a.seed:
                break
        assert job.job_id != job_a.job_id and job.benchmark.total_episodes <= 2
        await client.send(Ack.of(job))
        assert (await _report(client, job, play_for_real(job, media, policy))).ok
    for c in (client_a, client_b, client_c):
        await c.close()
    return a_key, job_a, b_key, c_key


async def _audits_of(backend: Any, hotkey: str) -> set[tuple[str, str]]:
    page = await get(backend, "/api/v1/validators/audits", validator_hotkey=hotkey)
    return {(a["kind"], a["state"]) for a in page["items"]}


async def test_a_stronger_policy_on_the_true_seeds_is_caught_by_the_agent_rerun(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    settings = dict(audit_workers=1, audit_rate=1.0, audit_interval_s=0.3, agent_rerun_rate=1.0)
    async with make_backend(media_url=str(tmp_path / "media"), **settings) as backend:
        # the liar: the expert on its own derived seeds, a log that replays exactly
        liar, job, honest, third = await _rerun_scenario(
            backend, net, registry, tmp_path, audited=expert, reruns=(idle, idle)
        )
        [strike] = await wait_for(lambda: _strikes(backend, liar.ss58_address), within=60)
        assert strike["reason"] == "agent_rerun_mismatch", strike
        kinds = await _audits_of(backend, liar.ss58_address)
        assert ("replay", "passed") in kinds and ("agent_rerun", "failed") in kinds
        vals = await _validators(backend)
        assert vals[liar.ss58_address]["audits_failed"] == 1
        assert vals[honest.ss58_address]["strikes"] == vals[third.ss58_address]["strikes"] == 0
        detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
        states = {a["validator_hotkey"]: a["state"] for a in detail["assignments"]}
        assert states[liar.ss58_address] == "rejected"
        await wait_for(lambda: _quorum_have(backend, 1))  # only the honest result counts


async def test_one_lying_rerun_cannot_frame_an_honest_validator(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    settings = dict(audit_workers=1, audit_rate=1.0, audit_interval_s=0.3, agent_rerun_rate=1.0)
    async with make_backend(media_url=str(tmp_path / "media"), **settings) as backend:
        audited, _, _, _ = await _rerun_scenario(
            backend, net, registry, tmp_path, audited=idle, reruns=(idle, expert)
        )
        await wait_for(
            lambda: _has(backend, audited.ss58_address, ("agent_rerun", "passed")), within=60
        )
        assert await _strikes(backend, audited.ss58_address) == []


async def _quorum_have(backend: Any, have: int) -> bool:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    return bool(board["rows"]) and board["rows"][0]["quorum"]["have"] == have


async def _has(backend: Any, hotkey: str, kind: tuple[str, str]) -> bool:
    return kind in await _audits_of(backend, hotkey)
