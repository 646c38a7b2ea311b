"""Threat 1 and the audit, over the real wire: a throwaway submission watching every
public route, /media and the realtime feed during its round learns no seed-derived byte;
after the reveal the same links open, ``kinitro round verify`` passes, and a tampered
log, a wrong seed or a reveal that does not match the chain fails naming what is wrong.
Two validators play real simulator episodes on their own seeds (threat 2: one's seeds
do not re-create the other's episodes)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from kinitro.core.db import dsn
from kinitro.evaluator.episode_logger import ActionLog, decode_action_log, encode_action_log
from kinitro.protocol import rounds
from kinitro.protocol.validator_ws import Ack
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, create_competition, login, wait_for
from .playing import completed, deliver
from .scraping import Feed, known_ids, leaks, public_urls
from .sealed_play import play_real
from .test_flow import commit_artifact, get
from .test_sealed_rounds import SEED_SECRET, sealed_backend_settings

ROUND_SECONDS = 25


async def test_throwaway_submission_learns_nothing_then_the_round_verifies(
    make_backend: Any, net: Net, registry: LocalRegistry, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    settings = await sealed_backend_settings(
        net, tmp_path, media_url=str(media), replication=2, min_validators=2
    )
    async with make_backend(**settings) as backend:
        await create_competition(backend, round_seconds=ROUND_SECONDS)
        feed = await Feed.open(backend)
        keys = [await net.validator(), await net.validator()]
        clients = [(await login(backend, key))[0] for key in keys]
        await commit_artifact(net, registry)  # the throwaway submission
        jobs = [await c.recv_type("eval_job", within=15) for c in clients]
        played = []
        for client, job in zip(clients, jobs, strict=True):
            await client.send(Ack.of(job))
            episodes, steps = await asyncio.to_thread(play_real, job, media)
            for message in (*episodes, *steps, completed(job, episodes)):
                assert (await deliver(client, message)).ok
            played.append((job, episodes, steps))
        rnd = await get(backend, f"/api/v1/rounds/{jobs[0].round_id}")
        assert rnd["secret"] is None, "the round ended before the scrape: raise ROUND_SECONDS"

        # threat 2: the other validator's seeds do not re-create these episodes
        (_, eps_a, steps_a), (_, eps_b, steps_b) = played
        assert {e.seed for e in eps_a}.isdisjoint(e.seed for e in eps_b)
        assert steps_a[0].samples[0].observation != steps_b[0].samples[0].observation

        # threat 1: scrape everything public while the round is open
        secret = rounds.round_secret(SEED_SECRET.encode(), rnd["id"])
        needles = {secret.hex(), *(str(job.seed) for job in jobs)}
        for _, episodes, steps in played:
            needles |= {str(e.seed) for e in episodes}
            needles |= {
                json.dumps(x)
                for batch in steps
                for s in batch.samples
                for x in s.observation
                if len(repr(x)) > 10  # distinctive floats (positions), not 0.0 or 1.0
            }
        bodies = await _scrape(backend, media, played)
        frames = await feed.drain()
        await feed.close()
        assert len(frames) > 2, "the realtime feed carried no event"
        found = leaks(bodies, frames, needles)
        assert not found, found[:5]

        # the reveal opens everything under the same links
        async def revealed() -> Any:
            r = await get(backend, f"/api/v1/rounds/{rnd['id']}")
            return r if r["secret"] else None

        rnd = await wait_for(revealed, within=ROUND_SECONDS + 20, interval=0.5)
        assert bytes.fromhex(rnd["secret"]) == secret
        eps = (await get(backend, "/api/v1/episodes", round_id=rnd["id"]))["items"]
        assert {e["seed"] for e in eps} == {e.seed for _, es, _ in played for e in es}
        async with backend.client(None) as http:
            for ep in eps:
                log = await http.get(ep["actions_url"])
                assert log.status_code == 200 and decode_action_log(log.content).seed == ep["seed"]
                assert (await http.get(f"/api/v1/episodes/{ep['id']}/steps")).status_code == 200

        # kinitro round verify: passes, then fails on each tampering, naming it
        ok = await _verify(backend, net, rnd["id"], sample=len(eps))
        assert ok["ok"] and ok["replayed"] == len(eps) and ok["logs_checked"] == len(eps), ok
        assert ok["commitment_on_chain"] and ok["reveal_matches"]
        assert set(ok["validators"]) == {k.ss58_address for k in keys}

        target = eps[1]
        path = media / target["actions_url"].removeprefix("/media/")
        original = path.read_bytes()
        log = decode_action_log(original)
        actions = log.actions.copy()
        actions[0] = -actions[0]  # another trajectory, same claimed rewards
        path.write_bytes(encode_action_log(_with(log, actions=actions)))
        tampered = await _verify(backend, net, rnd["id"], sample=len(eps))
        assert not tampered["ok"]
        assert [f["episode_id"] for f in tampered["failures"]] == [target["id"]]
        assert "replay does not match" in tampered["failures"][0]["problem"]

        path.write_bytes(encode_action_log(_with(log, seed=log.seed + 1)))
        wrong_seed = await _verify(backend, net, rnd["id"], sample=0)
        assert [f["episode_id"] for f in wrong_seed["failures"]] == [target["id"]]
        assert "not the derived seed" in wrong_seed["failures"][0]["problem"]
        path.write_bytes(original)

        conn = await asyncpg.connect(dsn(backend.settings.database_url))
        try:  # a backend that reveals another secret than it committed
            await conn.execute(
                "UPDATE eval_rounds SET secret = $1 WHERE id = $2", "ab" * 32, rnd["id"]
            )
        finally:
            await conn.close()
        lied = await _verify(backend, net, rnd["id"], sample=0)
        assert not lied["ok"] and not lied["reveal_matches"]
        assert "does not match the commitment" in lied["failures"][0]["problem"]
        assert all(f["episode_id"] for f in lied["failures"][1:])  # every episode flagged
        for client in clients:
            await client.close()


def _with(log: ActionLog, **changes: Any) -> ActionLog:
    fields = {name: getattr(log, name) for name in ActionLog.__dataclass_fields__}
    return ActionLog(**{**fields, **changes})


async def _scrape(backend: Backend, media: Path, played: list[Any]) -> list[tuple[str, str]]:
    """Every public GET route with every id we know, and every media file's URL."""
    values = await known_ids(
        backend, job_id=[job.job_id for job, _, _ in played], round_id=[played[0][0].round_id]
    )
    urls = public_urls(backend, values)
    files = await asyncio.to_thread(lambda: [p for p in media.rglob("*") if p.is_file()])
    media_urls = [f"/media/{path.relative_to(media)}" for path in files]
    assert len(media_urls) == sum(len(es) for _, es, _ in played)
    bodies = []
    async with backend.client(None) as http:
        for url in urls + media_urls:
            response = await http.get(url)
            if url.startswith("/media") or url.endswith("/steps"):
                assert response.status_code == 403, (url, response.status_code)
                assert response.json()["sealed_until"], url
            bodies.append((url, response.content.decode("utf-8", "replace")))
    assert any("/episodes/" in u for u, _ in bodies) and len(bodies) > 30
    return bodies


async def _verify(backend: Backend, net: Net, round_id: str, *, sample: int) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kinitro",
        "round",
        "verify",
        round_id,
        "--backend",
        backend.url,
        "--chain-url",
        net.chain.url,
        "--netuid",
        str(net.chain.netuid),
        "--sample",
        str(sample),
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    report = json.loads(out)
    assert proc.returncode == (0 if report["ok"] else 1), err.decode()
    return report


def test_tampering_helper_keeps_the_log_valid() -> None:
    log = ActionLog(
        benchmark_id="metaworld/MT1-reach-v3",
        task="reach-v3",
        job_id="j",
        episode_index=0,
        seed=1,
        max_steps=3,
        actions=np.zeros((2, 4), dtype=np.float32),
        rewards=np.zeros(2),
        successes=np.zeros(2, dtype=bool),
    )
    assert decode_action_log(encode_action_log(_with(log, seed=2))).seed == 2
