"""The realtime snapshot: what a new subscriber sees before the event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinitro.backend.db import (
    repo_competitions,
    repo_jobs,
    repo_scoring,
    repo_submissions,
    repo_validators,
)
from kinitro.backend.quorum import annotate_board
from kinitro.backend.standing import with_standing
from kinitro.backend.stats import collect_stats

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.protocol.realtime import Subscribe


async def build_snapshot(state: BackendState, sub: Subscribe) -> dict[str, Any]:
    """Keys: competitions, leaderboards, recent_submissions, live_jobs, validators,
    latest_weights, stats — narrowed by the subscription's filters."""
    f = {k: v for k, v in sub.filters if v is not None}
    async with state.engine.connect() as conn:
        competitions = await repo_competitions.list_competitions(conn)
        if "competition_id" in f:
            competitions = [c for c in competitions if c["id"] == f["competition_id"]]
        boards = {
            c["id"]: annotate_board(await repo_scoring.leaderboard(conn, c["id"]))
            for c in competitions
        }
        leaders = {c["id"]: await repo_scoring.current_leader(conn, c["id"]) for c in competitions}
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
    return {
        "competitions": [{**c, "leader": leaders[c["id"]]} for c in competitions],
        "leaderboards": boards,
        "recent_submissions": submissions,
        "live_jobs": jobs,
        "validators": validators,
        "latest_weights": weights,
        "stats": stats,
    }
