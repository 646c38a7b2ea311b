"""Rounds as the unit of comparison, over the real validator WebSocket: every round the
leader and its challenger get a job on the same validator, and a challenger that is
better on the shared episodes takes over only after enough rounds."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np
from sqlalchemy import text

from kinitro.protocol import fingerprint
from kinitro.protocol.validator_ws import Ack, Episode, EvalJob

from .conftest import Net, benchmark, create_competition, login, wait_for
from .playing import completed, episodes_for
from .test_flow import commit_artifact, get


def acting(policy: int, job: EvalJob, successes: int) -> list[Episode]:
    """The job's episodes as an agent ``policy`` plays them: its actions (fingerprints)
    depend on the policy and the episode's start (seed) only."""
    out = []
    for e in episodes_for(job, successes):
        rng = np.random.default_rng([policy, e.seed])
        sketch = fingerprint.encode(rng.uniform(-1, 1, (e.steps, 4)).tolist(), 50)
        out.append(e.model_copy(update={"action_fingerprint": sketch}))
    return out


class Player:
    """An honest validator that plays every job it is sent, each miner as ``levels`` says
    (hotkey → successes out of 10, or (successes, policy) to report action fingerprints),
    never losing a job sent meanwhile."""

    def __init__(self, client: Any, levels: dict[str, int | tuple[int, int]]) -> None:
        self.client = client
        self.levels = levels
        self.jobs: list[EvalJob] = []
        self.hold: set[str] = set()  # miners whose jobs wait (a slow evaluation)

    async def _until(self, kind: str, ack_id: str | None = None) -> Any:
        while True:
            msg = await self.client.recv(within=30)
            if msg.type == "eval_job":
                self.jobs.append(msg)
                await self.client.send(Ack.of(msg))
            elif msg.type == kind and (ack_id is None or msg.ack_id == ack_id):
                return msg

    async def _deliver(self, message: Any) -> None:
        await self.client.send(message)
        ack = await self._until("ack", message.id)
        assert ack.ok, ack

    async def run(self) -> None:
        while True:
            ready = [j for j in self.jobs if j.miner_hotkey not in self.hold]
            if not ready:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until("eval_job"), timeout=0.5)
                continue
            job = ready[0]
            self.jobs.remove(job)
            level = self.levels[job.miner_hotkey]
            episodes = (
                acting(level[1], job, level[0])
                if isinstance(level, tuple)
                else episodes_for(job, level)
            )
            for episode in episodes:
                await self._deliver(episode)
            await self._deliver(completed(job, episodes))


async def test_leader_and_challenger_meet_every_round_and_the_better_takes_over(
    make_backend: Any, net: Net, registry: Any
) -> None:
    # audits off: these fake validators keep no action logs for the replay audits of
    # the rounds revealed every 2 s (they would be struck and their results dropped)
    settings = dict(
        round_duration_s=2, dethrone_min_shared=20, leader_challengers=2, audit_workers=0
    )
    async with make_backend(**settings) as backend:
        await create_competition(backend, benchmarks=[benchmark(episodes=10)], min_episodes=10)
        weak, strong = await net.neuron(), await net.neuron()
        levels = {weak.ss58_address: 6, strong.ss58_address: 10}
        players = [Player((await login(backend, await net.validator()))[0], levels) for _ in "ab"]
        tasks = [asyncio.create_task(p.run()) for p in players]
        try:
            await commit_artifact(net, registry, content=b"weak", miner=weak)

            async def leader_is(hotkey: str) -> bool:
                board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
                return (board["leader"] or {}).get("miner_hotkey") == hotkey

            await wait_for(lambda: leader_is(weak.ss58_address), within=30)
            await commit_artifact(net, registry, content=b"strong", repo="s/agent", miner=strong)
            await wait_for(lambda: leader_is(strong.ss58_address), within=120)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        async with backend.state.engine.connect() as conn:
            decisions = (
                await conn.execute(text("SELECT status, reason FROM leader_decisions ORDER BY id"))
            ).all()
            shared = (
                await conn.execute(
                    text(
                        "SELECT j.round_id, count(DISTINCT j.submission_id) AS subs,"
                        " count(DISTINCT a.validator_hotkey) AS validators"
                        " FROM jobs j JOIN job_assignments a ON a.job_id = j.id"
                        " WHERE a.state = 'completed' GROUP BY j.round_id"
                    )
                )
            ).all()
        assert [tuple(d) for d in decisions] == [
            ("dethroned", "first_leader"),
            ("leader", "beat_leader"),
        ]
        both = [r for r in shared if r.subs == 2]
        # one validator played both in every shared round (pairs only form that way) …
        assert both and all(r.validators == 1 for r in both), shared
        # … and one or two shared rounds were not enough: the test needs a third
        assert len(both) >= 3, shared

        async def dethroned_row() -> dict[str, Any] | None:
            board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
            row = next(r for r in board["rows"] if r["miner_hotkey"] == weak.ss58_address)
            return row if row["vs_leader"] else None  # the next pass tests it the other way

        old = await wait_for(dethroned_row, within=10)
        assert old["vs_leader"]["losses"] > 0 and not old["vs_leader"]["better"]
        assert len(old["detail"]["rounds"]) <= backend.settings.leader_window_rounds


async def test_a_near_copy_committed_later_is_a_copy_and_earns_nothing(
    make_backend: Any, net: Net, registry: Any
) -> None:
    """The copier changed one comment (another sha256), so only its behaviour gives it
    away: on the same seeds it takes the author's actions. Its evaluation even ends before
    the author's: it is not crowned meanwhile."""
    async with make_backend(copy_min_episodes=10) as backend:
        await create_competition(backend, benchmarks=[benchmark(episodes=10)], min_episodes=10)
        author, copier, other = await net.neuron(), await net.neuron(), await net.neuron()
        levels: dict[str, int | tuple[int, int]] = {
            author.ss58_address: (8, 1),
            copier.ss58_address: (8, 1),  # the same policy: the same actions
            other.ss58_address: (7, 2),
        }
        bundle = b"# reach agent\nact = lambda obs: obs[:4]\n"
        near = bundle.replace(b"# reach agent", b"# my reach agent")
        player = Player((await login(backend, await net.validator()))[0], levels)
        task = asyncio.create_task(player.run())
        try:

            async def board_of(n: int, *, leader: bool = True) -> dict[str, Any] | None:
                board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
                rows = {r["miner_hotkey"]: r for r in board["rows"]}
                done = len(rows) == n and not any(r["awaiting_quorum"] for r in rows.values())
                return rows if done and (board["leader"] or not leader) else None

            # the author's evaluation is slow: the copy (committed later) is scored first …
            player.hold.add(author.ss58_address)
            await commit_artifact(net, registry, content=bundle, miner=author)
            await wait_for(lambda: len(player.jobs) == 1, within=30)
            await commit_artifact(net, registry, content=near, repo="c/agent", miner=copier)
            rows = await wait_for(lambda: board_of(1, leader=False), within=30)
            assert rows[copier.ss58_address]["copy_of"] is None  # nothing to compare with yet
            await asyncio.sleep(5 * backend.settings.scoring_interval_s)
            board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
            assert board["leader"] is None  # … but not crowned while the author is pending
            player.hold.clear()
            await wait_for(lambda: board_of(2), within=30)
            await commit_artifact(net, registry, content=b"other", repo="o/agent", miner=other)
            rows = await wait_for(lambda: board_of(3), within=30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        original, copy = rows[author.ss58_address], rows[copier.ss58_address]
        assert copy["artifact_sha256"] != original["artifact_sha256"]
        assert copy["copy_of"] == original["submission_id"]
        assert copy["detail"]["copy_kind"] == "behaviour" and copy["eligible"] is False
        assert rows[other.ss58_address]["copy_of"] is None
        assert rows[other.ss58_address]["eligible"] is True
        board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
        assert board["leader"]["miner_hotkey"] == author.ss58_address

        async def weights() -> dict[str, float] | None:
            async with backend.client(None) as http:
                resp = await http.get("/api/v1/weights/latest")
            return resp.json()["weights"] if resp.status_code == 200 else None

        # the metagraph's uid of the author takes it all; the copier's gets nothing
        assert await wait_for(weights, within=15) == {str(original["miner_uid"]): 1.0}
        # fingerprints are the backend's business only: never on the public API
        episodes = await get(backend, "/api/v1/episodes", limit=5)
        assert episodes["items"] and all("action_fingerprint" not in e for e in episodes["items"])


async def test_a_copy_stays_a_copy_after_its_round_left_the_window(
    make_backend: Any, net: Net, registry: Any
) -> None:
    """The leader plays every round; the copy only its first. Once the leader's score
    window (here one round) has moved on, no shared episode is left: the copy stays one."""
    settings = dict(
        copy_min_episodes=10, round_duration_s=2, leader_window_rounds=1, audit_workers=0
    )
    async with make_backend(**settings) as backend:
        await create_competition(backend, benchmarks=[benchmark(episodes=10)], min_episodes=10)
        author, copier = await net.neuron(), await net.neuron()
        levels: dict[str, int | tuple[int, int]] = {
            author.ss58_address: (8, 1),
            copier.ss58_address: (8, 1),
        }
        player = Player((await login(backend, await net.validator()))[0], levels)
        task = asyncio.create_task(player.run())

        async def rows() -> dict[str, Any]:
            board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
            return {r["miner_hotkey"]: r for r in board["rows"]}

        async def copy_found() -> dict[str, Any] | None:
            r = (await rows()).get(copier.ss58_address)
            return r if r and r["copy_of"] else None

        async def window_moved_on(first_round: str) -> bool:
            r = (await rows())[author.ss58_address]
            return first_round not in r["detail"]["rounds"]

        try:
            await commit_artifact(net, registry, content=b"agent", miner=author)
            await wait_for(lambda: rows(), within=30)
            await commit_artifact(net, registry, content=b"agent #", repo="c/a", miner=copier)
            copy = await wait_for(copy_found, within=30)
            [shared] = copy["detail"]["rounds"]
            await wait_for(lambda: window_moved_on(shared), within=30)
            await asyncio.sleep(3 * backend.settings.scoring_interval_s)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        still = (await rows())[copier.ss58_address]
        assert still["copy_of"] == copy["copy_of"] and still["eligible"] is False
        assert still["detail"]["copy_kind"] == "behaviour"
