"""Replay audits: after a round's reveal, re-simulate a sample of every validator's episodes.

A completed result of a revealed round is *due*. The auditor (one replica at a time,
advisory lock) samples ``audit_rate`` of its logged episodes — at least one, drawn with the
system's randomness so no validator can predict which — and records them as pending
audits. Each is then fetched (the episode's ``actions_ref`` in the media store) and
replayed by a worker process of :mod:`.audit_pool` under the job's own terms: its
benchmark, task, step budget, knobs and the seed derived for *that* validator
(:func:`.vetting.job_seed`), never the seed the log's header names. The replay must give
the steps, success and total reward the validator reported for the episode.

A mismatch — or a log that is missing or unreadable — fails the audit: the validator is
struck (:attr:`~kinitro.protocol.common.StrikeReason.AUDIT_MISMATCH`, once per job, see
:mod:`.standing`), its result, episodes and step samples for the job are discarded, and
the job is live again so the scheduler has another validator run it (its result is
audited in turn). The honest validators' results are untouched, so their quorum stands.

An audit that cannot run — the media store unreachable, a worker that died or timed out —
is tried again up to ``audit_max_attempts`` times, then *skipped*, never a strike; so is
one of a result from another simulator runtime than the auditor's (an operator that
accepts several versions, ``accepted_simulators``: a replay across versions need not be
exact). Audits only detect logs inconsistent with the episode they claim: actions a
stronger policy played on the right seed replay fine — the agent re-run audit of a
deterministic bundle (:mod:`.reruns`, requested here when a replay audit passes) is the
check for that.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kinitro.backend import reruns, standing, vetting
from kinitro.backend.audit_pool import AuditPool, AuditWorkerError, LogMissing
from kinitro.backend.crosscheck import Refusal
from kinitro.backend.db import repo_audits, repo_jobs
from kinitro.backend.locks import AUDITS, LeaderLock
from kinitro.core.db import dsn
from kinitro.core.runtime import local_runtime
from kinitro.protocol.common import BenchmarkSpec, FailureCause, StrikeReason
from kinitro.protocol.rounds import episode_seed
from kinitro.storage.media import MediaNotFound, MediaStoreError, MediaTooLarge

if TYPE_CHECKING:
    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)

REWARD_REL_TOL = 1e-6
REWARD_ABS_TOL = 1e-6
LOG_MAX_BYTES = 64 * 1024 * 1024
DUE_PER_TICK = 100
_SYSTEM = random.SystemRandom()


def auditable(episode: Mapping[str, Any]) -> bool:
    """Scored episodes that played at least one step (their actions are logged)."""
    cause = episode["failure_cause"]
    return int(episode["steps"]) > 0 and (cause is None or FailureCause(cause).is_agent_fault)


def sample(
    episodes: Sequence[Mapping[str, Any]], rate: float, rng: random.Random = _SYSTEM
) -> list[Mapping[str, Any]]:
    """``rate`` of the auditable episodes, at least one (none when nothing was played)."""
    pool = [e for e in episodes if auditable(e)]
    if not pool:
        return []
    return rng.sample(pool, max(1, min(len(pool), math.ceil(rate * len(pool)))))


def reported_of(episode: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "seed": episode["seed"],
        "steps": int(episode["steps"]),
        "total_reward": float(episode["total_reward"]),
        "success": bool(episode["success"]),
        "actions_ref": episode["actions_ref"],
    }


def judge(reported: Mapping[str, Any], answer: Mapping[str, Any]) -> str | None:
    """Why the replay ``answer`` contradicts what the validator ``reported``, or None."""
    if answer["outcome"] == "unreadable":
        return str(answer["detail"])
    if answer["steps"] != reported["steps"]:
        return f"replay ran {answer['steps']} steps, the validator reported {reported['steps']}"
    if answer["success"] != reported["success"]:
        return (
            f"replay {'succeeded' if answer['success'] else 'failed'}, the validator "
            f"reported {'success' if reported['success'] else 'failure'}"
        )
    if not math.isclose(
        answer["total_reward"],
        reported["total_reward"],
        rel_tol=REWARD_REL_TOL,
        abs_tol=REWARD_ABS_TOL,
    ):
        return (
            f"replay returned {answer['total_reward']:.6g}, the validator reported "
            f"{reported['total_reward']:.6g}"
        )
    return None


class Auditor:
    def __init__(self, state: BackendState) -> None:
        self.state = state
        s = state.settings
        self.pool = AuditPool(s.audit_workers, s.audit_timeout_s)
        self.lock = LeaderLock(dsn(s.database_url), AUDITS)
        self.runtime_key = local_runtime().key
        self.batch = 8 * self.pool.size

    @property
    def settings(self) -> Settings:
        return self.state.settings

    async def tick(self) -> int:
        """Plan the due results' audits and run the pending ones; returns how many ran (a
        full batch: more are waiting, the next tick starts at once)."""
        if not await self.lock.held():
            return 0
        await self.plan()
        async with self.state.engine.connect() as conn:
            pending = await repo_audits.pending(conn, limit=self.batch)
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in pending:
            groups.setdefault((row["job_id"], row["validator_hotkey"]), []).append(row)
        await asyncio.gather(*(self._audit_result(rows) for rows in groups.values()))
        await reruns.settle(self)
        return len(pending)

    async def plan(self) -> None:
        async with self.state.engine.begin() as conn:
            for due in await repo_audits.due_results(conn, DUE_PER_TICK):
                job_id, hotkey = due["job_id"], due["validator_hotkey"]
                episodes = await repo_audits.episodes_of(conn, job_id, hotkey)
                chosen = sample(episodes, self.settings.audit_rate) or episodes[:1]
                other = due["runtime_key"] is not None and due["runtime_key"] != self.runtime_key
                skip = (
                    f"evaluator runtime {due['runtime_key']!r} is not the auditor's "
                    f"({self.runtime_key!r}): a replay across versions need not be exact"
                    if other
                    else None
                    if any(auditable(e) for e in chosen)
                    else "no episode played a step: nothing to replay"
                )
                await repo_audits.plan(
                    conn,
                    [
                        dict(
                            job_id=job_id,
                            validator_hotkey=hotkey,
                            episode_index=e["episode_index"],
                            state="skipped" if skip else "pending",
                            detail=skip,
                            reported=reported_of(e) | {"task": e["task"]},
                        )
                        for e in chosen
                    ],
                )
                if skip:
                    self.state.metrics.audits.labels("skipped").inc(len(chosen))

    async def _audit_result(self, audits: list[dict[str, Any]]) -> None:
        """A (job, validator)'s pending audits in turn; the first failure settles it."""
        for audit in audits:
            try:
                failed = await self._audit_one(audit)
            except Exception as exc:  # a bug of ours: counted as a try, never a strike
                self.state.metrics.task_errors.labels("audits").inc()
                log.exception("audit %s failed to run", audit["id"])
                await self._retry(audit, f"internal error: {type(exc).__name__}: {exc}")
                return
            if failed:
                return

    async def _audit_one(self, audit: dict[str, Any]) -> bool:
        """Run one audit and store its verdict; True when it failed (the result is gone)."""
        job_id, hotkey = audit["job_id"], audit["validator_hotkey"]
        reported = audit["reported"]
        spec = BenchmarkSpec.model_validate(audit["benchmark"])
        index = audit["episode_index"]
        task = spec.tasks[index // spec.episodes_per_task]
        async with self.state.engine.begin() as conn:
            if not await repo_audits.has_result(conn, job_id, hotkey):
                await repo_audits.skip_pending(conn, job_id, hotkey, "result no longer stored")
                return False
        base = vetting.job_seed(self.settings, audit, hotkey)  # its round, or a re-run's
        seed = episode_seed(base, task, index % spec.episodes_per_task)
        if reported.get("seed") != seed:
            # ingest refuses any other seed since protocol 3 and sealed rounds: an episode
            # stored before (old shared round seeds) is not this validator's to answer for
            async with self.state.engine.begin() as conn:
                detail = "episode stored under older seed rules (before sealed rounds)"
                await repo_audits.settle(conn, audit["id"], "skipped", detail)
            self.state.metrics.audits.labels("skipped").inc()
            return False
        try:
            data = await self.load(reported["actions_ref"])
            answer = await self.pool.run(
                {
                    "id": str(audit["id"]),
                    "log": base64.b64encode(data).decode(),
                    "benchmark_id": spec.benchmark_id,
                    "task": task,
                    "seed": seed,
                    "max_steps": spec.max_steps,
                    "conditions": spec.conditions.model_dump(mode="json"),
                }
            )
        except LogMissing as exc:
            answer = {"outcome": "unreadable", "detail": str(exc)}
        except (MediaStoreError, AuditWorkerError) as exc:
            return await self._retry(audit, f"could not run: {exc}")
        if answer["outcome"] == "error":
            return await self._retry(audit, f"audit worker error: {answer.get('detail')}")
        problem = judge(reported, answer)
        replayed: dict[str, Any] = {"seed": seed, "header": answer.get("header")}
        replayed |= {k: answer[k] for k in ("steps", "total_reward", "success") if k in answer}
        async with self.state.engine.begin() as conn:
            await repo_audits.settle(
                conn, audit["id"], "failed" if problem else "passed", problem, replayed
            )
            if problem:
                refusal = Refusal(
                    StrikeReason.AUDIT_MISMATCH, f"job {job_id} episode {index}: {problem}"
                )
                await standing.strike(conn, self.settings, hotkey, job_id, refusal)
                await repo_jobs.discard_result(conn, job_id, hotkey)
                await repo_audits.skip_pending(conn, job_id, hotkey, "result discarded")
        self.state.metrics.audits.labels("failed" if problem else "passed").inc()
        if problem is None:
            await reruns.request(self, audit)
        if problem:
            log.warning("audit of %s on job %s failed: %s", hotkey, job_id, problem)
            self.state.scheduler_wake.set()
        return problem is not None

    async def _retry(self, audit: dict[str, Any], detail: str) -> bool:
        log.warning("audit %s: %s", audit["id"], detail)
        async with self.state.engine.begin() as conn:
            await repo_audits.retry_later(
                conn, audit["id"], detail, self.settings.audit_max_attempts
            )
        return False

    async def load(self, key: str | None) -> bytes:
        """The action log's bytes, from the media store the evaluators write to (the one
        ``/media`` serves). No store configured is this backend's problem: retried, never
        the validator's strike."""
        if not key:
            raise LogMissing("the validator reported no action log for this episode")
        if self.state.media is None:
            raise MediaStoreError("no media store configured (media_url): cannot audit")
        try:
            return await asyncio.to_thread(self.state.media.get, key, max_bytes=LOG_MAX_BYTES)
        except MediaNotFound:
            raise LogMissing(f"action log {key!r} is not in the media store") from None
        except MediaTooLarge:
            raise LogMissing(f"action log {key!r} is over {LOG_MAX_BYTES} bytes") from None

    async def run(self) -> None:
        interval = self.settings.audit_interval_s
        try:
            while True:
                ran = 0
                try:
                    ran = await self.tick()
                except Exception:
                    self.state.metrics.task_errors.labels("audits").inc()
                    log.exception("audit tick failed")
                if ran < self.batch:
                    await asyncio.sleep(interval)
        finally:
            await self.pool.close()
            await self.lock.release()
