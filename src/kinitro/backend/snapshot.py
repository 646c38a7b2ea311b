"""The realtime snapshot: what a new subscriber sees before the event stream.

A snapshot reads several tables; a thousand dashboards reconnecting together (after a
deploy, or an attacker opening sockets) must not become a thousand of those reads.
:class:`SnapshotBuilds` shares one build among every subscriber asking for the same view
while it waits to start, and runs at most ``SNAPSHOT_CONCURRENCY`` builds at once (the
rest of the pool stays free for REST and ingest). A subscriber that arrives after a build
started waits for the next one: the build it joins always starts reading after it
subscribed, so it misses no event (see :mod:`.broadcaster`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from kinitro.backend.db import (
    repo_competitions,
    repo_jobs,
    repo_scoring,
    repo_submissions,
    repo_validators,
)
from kinitro.backend.explain import Rules, explained_board
from kinitro.backend.quorum import annotate_board
from kinitro.backend.standing import with_standing
from kinitro.backend.stats import collect_stats
from kinitro.protocol.realtime import dump_snapshot_data, snapshot_data
from kinitro.protocol.views import SnapshotData

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from kinitro.backend.settings import Settings
    from kinitro.protocol.realtime import Subscribe

SNAPSHOT_CONCURRENCY = 2


class SnapshotBuilds:
    """Snapshot data (serialised JSON) by view, one shared build per waiting crowd."""

    def __init__(
        self, engine: AsyncEngine, settings: Settings, concurrency: int = SNAPSHOT_CONCURRENCY
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.builds = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._waiting: dict[object, asyncio.Future[str]] = {}

    async def get(self, sub: Subscribe) -> str:
        key = tuple(sub.filters)
        future = self._waiting.get(key)
        if future is None:
            future = self._waiting[key] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._build(key, sub, future), name="realtime-snapshot")
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(future)

    async def _build(self, key: object, sub: Subscribe, future: asyncio.Future[str]) -> None:
        try:
            async with self._slots:
                # from here on the data is being read: later subscribers need a later build
                if self._waiting.get(key) is future:
                    del self._waiting[key]
                self.builds += 1
                data = await build_snapshot(self.engine, self.settings, sub)
                future.set_result(dump_snapshot_data(data))
        except BaseException as exc:
            if self._waiting.get(key) is future:
                del self._waiting[key]
            if not future.done():
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise


async def build_snapshot(engine: AsyncEngine, settings: Settings, sub: Subscribe) -> SnapshotData:
    """Keys: competitions, leaderboards, recent_submissions, live_jobs, validators,
    latest_weights, stats — narrowed by the subscription's filters."""
    f = {k: v for k, v in sub.filters if v is not None}
    async with engine.connect() as conn:
        competitions = await repo_competitions.list_competitions(conn)
        if "competition_id" in f:
            competitions = [c for c in competitions if c["id"] == f["competition_id"]]
        leaders = {c["id"]: await repo_scoring.current_leader(conn, c["id"]) for c in competitions}
        boards = {
            c["id"]: explained_board(
                annotate_board(await repo_scoring.leaderboard(conn, c["id"])),
                Rules.of(c, settings),
                leaders[c["id"]],
            )
            for c in competitions
        }
        submissions, _ = await repo_submissions.list_submissions(
            conn,
            competition_id=f.get("competition_id"),
            miner_hotkey=f.get("miner_hotkey"),
            limit=50,
        )
        jobs = await repo_jobs.live_jobs(conn)
        validators = await with_standing(conn, await repo_validators.list_validators(conn))
        weights = await repo_scoring.latest_weights(conn)
        stats = await collect_stats(conn)
    if "competition_id" in f:
        jobs = [j for j in jobs if j["competition_id"] == f["competition_id"]]
    if "miner_hotkey" in f:
        jobs = [j for j in jobs if j["miner_hotkey"] == f["miner_hotkey"]]
    if "job_id" in f:
        jobs = [j for j in jobs if j["id"] == f["job_id"]]
    if "validator_hotkey" in f:
        validators = [v for v in validators if v["hotkey"] == f["validator_hotkey"]]
    if "submission_id" in f:
        jobs = [j for j in jobs if str(j["submission_id"]) == f["submission_id"]]
        submissions = [x for x in submissions if str(x["id"]) == f["submission_id"]]
    return snapshot_data(
        {
            "competitions": [{**c, "leader": leaders[c["id"]]} for c in competitions],
            "leaderboards": boards,
            "recent_submissions": submissions,
            "live_jobs": jobs,
            "validators": validators,
            "latest_weights": weights,
            "stats": stats,
        }
    )
