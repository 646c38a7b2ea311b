"""Scoring and weights on a schedule (one replica at a time).

Per active competition: load the completed results of scorable submissions, keep one
evaluator runtime per submission (:func:`.runtimes.one_runtime_per_submission`: results of
different simulator versions are never combined) and its last ``leader_window_rounds``
complete rounds (:mod:`.window`), find behavioural copies among their paired episodes
(:mod:`.copies`), apply :mod:`.scoring` (median across validators, quorum
:func:`.quorum.quorum_of`, copies, threshold), decide the leader (crowning rules, and the
paired test of :mod:`.paired` on the scored episodes the leader and each qualified
challenger share), store the scores (a submission with results but not at quorum yet is
stored *awaiting quorum*, never eligible; ``detail.vs_leader`` holds a challenger's test)
and apply the decision (``approval_mode`` ``auto`` crowns directly, ``admin`` records a
candidate for an admin to approve), then compute the weights across
competitions and, when they changed, store a new weight set and queue ``set_weights`` to
every known validator (sent now to connected ones, on reconnect to the others).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend import copies, events, paired, runtimes, scoring, window
from kinitro.backend.db import repo_competitions, repo_scoring, repo_submissions, repo_validators
from kinitro.backend.db.common import utcnow
from kinitro.backend.locks import SCORING, LeaderLock
from kinitro.backend.quorum import quorum_of
from kinitro.backend.validator_outgoing import set_weights_payload
from kinitro.chain.errors import ChainError
from kinitro.core.db import dsn
from kinitro.protocol.common import FailureCause
from kinitro.protocol.realtime import (
    LeaderboardEntry,
    LeaderboardUpdatedEvent,
    WeightsUpdatedEvent,
)
from kinitro.protocol.views import QuorumProgress

if TYPE_CHECKING:
    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

LEADERBOARD_EVENT_ROWS = 20  # keeps the event under the NOTIFY payload limit


async def score_competition(
    conn: AsyncConnection,
    competition: dict[str, Any],
    *,
    band: float,
    policy: runtimes.RuntimePolicy,
    settings: Settings,
) -> tuple[list[scoring.Scored], scoring.LeaderDecision]:
    cid = competition["id"]
    need = quorum_of(competition, settings)
    subs = [s for s in await repo_submissions.scorable(conn, cid) if s["artifact_sha256"]]
    results, runtime_of = runtimes.one_runtime_per_submission(
        await repo_scoring.results_for_scoring(conn, cid),
        policy,
        quorum=need,
    )
    rounds: dict[int, dict[str, window.RoundJobs]] = defaultdict(dict)
    for row in await repo_scoring.job_counts(conn, cid):
        rounds[row["submission_id"]][row["round_id"]] = window.RoundJobs(
            row["starts_at"], expected=row["jobs"]
        )
    for r in results:
        rj = rounds[r["submission_id"]].get(r["round_id"])
        if rj is not None and (r["episodes"] or 0) > 0:
            rj.results[r["job_id"]] = rj.results.get(r["job_id"], 0) + 1
    counted = {
        sid: window.recent_rounds(rs, quorum=need, window=settings.leader_window_rounds)
        for sid, rs in rounds.items()
    }
    per_job: dict[int, dict[str, list[scoring.ValidatorResult]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in results:
        if r["round_id"] in counted.get(r["submission_id"], ()):
            per_job[r["submission_id"]][r["job_id"]].append(
                scoring.ValidatorResult(
                    r["validator_hotkey"], r["successes"] or 0, r["episodes"] or 0
                )
            )
    records = await _episodes(conn, set(per_job), per_job, results)
    rules = copies.CopyRules(
        settings.copy_tolerance, settings.copy_min_episodes, settings.copy_match_share
    )
    order = {s["id"]: (s["commitment_block"], s["id"]) for s in subs}
    found = copies.behavioural_copies(
        {sid: r for sid, r in records.items() if sid in order}, order, rules
    )
    # a copy stays one: once the leader's window has moved past the round it shared with
    # its copy, the evidence is no longer in the records, but it was
    behaviour = {**found, **await repo_scoring.behavioural_copies(conn, cid)}
    candidates = [
        scoring.Candidate(
            submission_id=s["id"],
            miner_hotkey=s["miner_hotkey"],
            miner_uid=s["miner_uid"],
            commitment_block=s["commitment_block"],
            sha256=s["artifact_sha256"],
            jobs=per_job.get(s["id"], {}),
            expected_jobs=sum(rounds[s["id"]][r].expected for r in counted.get(s["id"], ())),
        )
        for s in subs
    ]
    scored = scoring.score(
        candidates,
        quorum=need,
        band=band,
        min_success_rate=competition["min_success_rate"],
        earlier=await repo_submissions.earliest_artifacts(conn, cid),
        behaviour=behaviour,
    )
    crowning = scoring.Crowning(
        competition["min_episodes"],
        competition["min_leader_score"],
        settings.dethrone_confidence,
        settings.dethrone_min_shared,
    )
    current = await repo_scoring.current_leader(conn, cid)
    contenders = {s.submission_id for s in scored if crowning.qualifies(s)}
    # commitments still in their first evaluation (live jobs, no complete round yet):
    # nobody committed after them is crowned yet (a later one may be their behavioural
    # copy, found once both are evaluated); a cancelled or failed evaluation holds nobody
    live = await repo_scoring.with_live_jobs(conn, cid)
    first_pending = min(
        (
            order[s["id"]]
            for s in subs
            if s["id"] in live
            and not any(r.complete(need) for r in rounds.get(s["id"], {}).values())
        ),
        default=None,
    )
    decision = scoring.decide_leader(
        scored,
        current["submission_id"] if current else None,
        held={sid for sid, o in order.items() if first_pending is not None and o > first_pending},
        crowning=crowning,
        episodes={sid: r for sid, r in records.items() if sid in contenders},
    )
    # a scorable submission none of whose results stands (all discarded) has no score
    await repo_scoring.drop_scores(conn, [x["id"] for x in subs if x["id"] not in per_job])
    for s in scored:
        if s.submission_id not in per_job:
            continue
        test = decision.tests.get(s.submission_id)
        await repo_scoring.save_score(
            conn,
            dict(
                submission_id=s.submission_id,
                competition_id=cid,
                success_rate=s.success_rate,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
                episodes=s.episodes,
                successes=s.successes,
                validators=s.validators,
                disagreement=s.disagreement,
                eligible=s.eligible,
                copy_of=s.copy_of,
                detail={
                    "complete": s.complete,
                    "copy_kind": s.copy_kind,
                    "qualified": crowning.qualifies(s),
                    "rounds": counted.get(s.submission_id, []),
                    "vs_leader": test.as_json() if test is not None else None,
                    "quorum": {"have": s.quorum_have, "need": s.quorum_need},
                    "runtime": runtime_of.get(s.submission_id),
                    "jobs": [
                        {
                            "job_id": j.job_id,
                            "rate": j.rate,
                            "validators": j.validators,
                            "spread": j.spread,
                            "disagreement": j.disagreement,
                        }
                        for j in s.jobs
                    ],
                },
            ),
        )
    return scored, decision


async def _episodes(
    conn: AsyncConnection,
    submissions: set[int],
    per_job: dict[int, dict[str, list[scoring.ValidatorResult]]],
    results: list[Any],
) -> dict[int, dict[paired.Key, paired.EpisodeRecord]]:
    """Scored episodes (with their action fingerprints) of the counted results of these
    submissions, by pairing key."""
    jobs = [j for sid in submissions for j in per_job.get(sid, {})]
    counted = {(r["job_id"], r["validator_hotkey"]) for r in results}
    records: dict[int, list[paired.EpisodeRecord]] = defaultdict(list)
    for e in await repo_scoring.episodes_of_jobs(conn, jobs):
        cause = e["failure_cause"]
        if (e["job_id"], e["validator_hotkey"]) not in counted:
            continue
        if cause is not None and not FailureCause(cause).is_agent_fault:
            continue  # an infrastructure fault is never scored
        records[e["submission_id"]].append(
            paired.EpisodeRecord(
                submission_id=e["submission_id"],
                validator=e["validator_hotkey"],
                round_id=e["round_id"],
                task=e["task"],
                task_episode=e["task_episode"],
                success=bool(e["success"]) and cause is None,
                fingerprint=e["action_fingerprint"],
            )
        )
    return {sid: paired.by_key(rs) for sid, rs in records.items()}


async def apply_decision(
    conn: AsyncConnection,
    competition: dict[str, Any],
    scored: list[scoring.Scored],
    decision: scoring.LeaderDecision,
) -> bool:
    """Record a leader change (or a candidate in admin mode); True when anything changed."""
    cid = competition["id"]
    if not decision.changed:
        return False
    if decision.leader is None:  # the leader is no longer eligible and nobody else is
        await repo_scoring.dethrone(conn, cid, by="auto")
        return True
    row = next(s for s in scored if s.submission_id == decision.leader)
    values = dict(
        competition_id=cid,
        submission_id=row.submission_id,
        success_rate=row.success_rate,
        ci_low=row.ci_low,
        ci_high=row.ci_high,
        reason=decision.reason,
    )
    if competition["approval_mode"] == "admin":
        if await repo_scoring.decisions_for(conn, cid, row.submission_id):
            return False  # already a candidate, or rejected by an admin
        await repo_scoring.add_decision(conn, dict(values, status="candidate"))
        return True
    await repo_scoring.dethrone(conn, cid, by="auto")
    await repo_scoring.add_decision(conn, dict(values, status="leader", decided_by="auto"))
    log.info(
        "competition %s: new leader submission %s (%s)", cid, row.submission_id, decision.reason
    )
    return True


def _entries(scored: list[scoring.Scored], leader: dict[str, Any] | None) -> list[LeaderboardEntry]:
    leader_id = leader["submission_id"] if leader else None
    return [
        LeaderboardEntry(
            rank=rank,
            submission_id=str(x.submission_id),
            miner_hotkey=x.miner_hotkey,
            miner_uid=x.miner_uid,
            success_rate=x.success_rate,
            ci_low=x.ci_low,
            ci_high=x.ci_high,
            episodes=x.episodes,
            validators=x.validators,
            eligible=x.eligible,
            quorum=QuorumProgress(have=x.quorum_have, need=x.quorum_need),
            is_leader=x.submission_id == leader_id,
        )
        for rank, x in enumerate(scored[:LEADERBOARD_EVENT_ROWS], start=1)
    ]


def _digest(weights: dict[int, float]) -> str:
    canon = json.dumps({str(k): round(v, 9) for k, v in sorted(weights.items())})
    return hashlib.sha256(canon.encode()).hexdigest()


class ScoreEngine:
    def __init__(self, state: BackendState) -> None:
        self.state = state

        self.lock = LeaderLock(dsn(state.settings.database_url), SCORING)
        self._boards: dict[str, str] = {}

    async def tick(self) -> None:
        if not await self.lock.held():
            return
        s = self.state.settings
        shares: list[scoring.CompetitionShare] = []
        summary: dict[str, Any] = {}
        try:
            metagraph = await self.state.metagraph()
            uids = {n.hotkey: n.uid for n in metagraph.neurons}
        except ChainError as exc:
            log.warning("no metagraph for weights: %s", exc)
            uids = None
        policy = runtimes.RuntimePolicy.from_setting(s.accepted_simulators)
        async with self.state.engine.begin() as conn:
            for comp in await repo_competitions.list_competitions(conn, active=True):
                scored, decision = await score_competition(
                    conn,
                    comp,
                    band=s.disagreement_band,
                    policy=policy,
                    settings=s,
                )
                changed = await apply_decision(conn, comp, scored, decision)
                board = json.dumps(
                    [
                        (x.submission_id, round(x.success_rate, 6), x.eligible, x.quorum_have)
                        for x in scored
                    ]
                )
                leader = await repo_scoring.current_leader(conn, comp["id"])
                if changed or self._boards.get(comp["id"]) != board:
                    self._boards[comp["id"]] = board
                    await events.emit(
                        conn,
                        LeaderboardUpdatedEvent(
                            at=utcnow(),
                            competition_id=comp["id"],
                            leader_submission_id=str(leader["submission_id"]) if leader else None,
                            leader_hotkey=leader["miner_hotkey"] if leader else None,
                            entries=_entries(scored, leader),
                        ),
                    )
                leader_uid = None
                if leader is not None and uids is not None:
                    leader_uid = uids.get(leader["miner_hotkey"])
                shares.append(scoring.CompetitionShare(comp["id"], comp["points"], leader_uid))
                summary[comp["id"]] = {
                    "leader_submission_id": leader["submission_id"] if leader else None,
                    "leader_uid": leader_uid,
                    "points": comp["points"],
                }
            if uids is None:
                return
            weights = scoring.compute_weights(
                shares, owner_uid=s.owner_uid, owner_share=s.owner_share
            )
            digest = _digest(weights)
            latest = await repo_scoring.latest_weights(conn)
            if latest is not None and latest["digest"] == digest:
                return
            await self._publish(conn, weights, digest, summary)

    async def _publish(
        self, conn: AsyncConnection, weights: dict[int, float], digest: str, summary: dict[str, Any]
    ) -> None:
        row = await repo_scoring.add_weights(
            conn,
            dict(
                weights_id=uuid.uuid4().hex,
                netuid=self.state.chain.netuid,
                weights={str(k): v for k, v in weights.items()},
                summary=summary,
                digest=digest,
            ),
        )
        payload = set_weights_payload(row)
        await repo_scoring.supersede_messages(conn, "set_weights", row["weights_id"])
        hotkeys = [v["hotkey"] for v in await repo_validators.list_validators(conn)]
        for hotkey in hotkeys:
            await repo_scoring.enqueue(
                conn,
                hotkey=hotkey,
                message_id=row["weights_id"],
                type_="set_weights",
                payload=payload,
            )
        await events.wake_validators(conn, hotkeys)
        await events.emit(
            conn,
            WeightsUpdatedEvent(
                at=utcnow(), weights_id=row["weights_id"], netuid=row["netuid"], weights=weights
            ),
        )
        log.info("new weights %s: %s", row["weights_id"], weights)

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    self.state.metrics.task_errors.labels("scoring").inc()
                    log.exception("scoring pass failed")
                await asyncio.sleep(self.state.settings.scoring_interval_s)
        finally:
            await self.lock.release()
