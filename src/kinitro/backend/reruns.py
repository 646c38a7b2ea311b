"""Agent re-run audits: a deterministic bundle re-run by two other validators on an
audited episode's seed must act as the audited validator's log says.

A replay audit (:mod:`.audits`) shows that a log is a faithful recording of *some*
policy on the episode's seed; it cannot show the policy was the miner's. For a bundle
whose manifest declares ``deterministic = true`` (the same observations always get the
same actions, whatever episodes came before), that is checkable: after a replay audit of
validator A's episode passes, with probability ``agent_rerun_rate`` (at most once per job
and validator), :func:`request` creates a *re-run job* — the same submission, round and
benchmark, only the episode's task, as many episodes of it as reach the audited one — that
the scheduler gives to two validators other than A and that is sent with A's seed, so
their run of that task episode is A's episode. Re-run jobs are never scored.

When both re-runs are in, :func:`settle` compares the three action logs (an audit worker:
same number of steps, every action within ``agent_rerun_atol``):

* the two re-runs agree with each other and not with A → A's actions are not the agent's:
  a strike (:attr:`~kinitro.protocol.common.StrikeReason.AGENT_RERUN_MISMATCH`) and A's
  result for the job is discarded, as for a failed replay audit;
* A agrees with a re-run → passed;
* the re-runs disagree with each other → the agent is not deterministic after all: no
  strike, and the bundle gets no further re-run audits.

So one lying re-run validator cannot frame A (the other re-run agrees with A), and A is
struck only when two validators independently reproduced the agent and A did not.
"""

from __future__ import annotations

import base64
import logging
import random
import uuid
from typing import TYPE_CHECKING, Any, Protocol

from kinitro.backend import standing
from kinitro.backend.audit_pool import AuditPool, LogMissing
from kinitro.backend.crosscheck import Refusal
from kinitro.backend.db import repo_audits, repo_jobs, repo_submissions
from kinitro.backend.db.common import artifact_ref
from kinitro.protocol.common import BenchmarkSpec, StrikeReason
from kinitro.storage.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from kinitro.backend.settings import Settings
    from kinitro.backend.state import BackendState

log = logging.getLogger(__name__)


class Auditor(Protocol):
    """What a re-run needs of the :class:`~kinitro.backend.audits.Auditor` that asks for
    it (a protocol, so that audits imports reruns and not the other way round)."""

    state: BackendState
    pool: AuditPool

    @property
    def settings(self) -> Settings: ...

    async def load(self, key: str) -> bytes: ...


RERUN_VALIDATORS = 2
_SYSTEM = random.SystemRandom()


async def deterministic(auditor: Auditor, submission_id: int) -> bool:
    """Whether the submission's bundle declares ``deterministic = true`` (read from its
    manifest once, then remembered on the submission)."""
    state = auditor.state
    async with state.engine.connect() as conn:
        sub = await repo_submissions.get_submission(conn, submission_id)
    if sub is None or sub["artifact_sha256"] is None:
        return False
    if sub["deterministic"] is not None:
        return bool(sub["deterministic"])
    ref = artifact_ref(sub)
    try:
        manifest = await state.verifier.manifest(ref, state.settings.artifact_max_bytes)
    except (StorageError, OSError) as exc:
        log.warning("manifest of submission %s unreadable: %s", submission_id, exc)
        return False
    value = manifest is not None and manifest.deterministic
    async with state.engine.begin() as conn:
        await repo_submissions.set_deterministic(conn, submission_id, value)
    return value


async def request(auditor: Auditor, audit: dict[str, Any]) -> str | None:
    """After ``audit`` (a replay audit) passed: maybe create its re-run job; its id."""
    s = auditor.settings
    if audit["audit_of_job"] is not None or _SYSTEM.random() >= s.agent_rerun_rate:
        return None  # a re-run job is itself never re-run
    if not await deterministic(auditor, audit["submission_id"]):
        return None
    spec = BenchmarkSpec.model_validate(audit["benchmark"])
    index = int(audit["episode_index"])
    task, k = spec.tasks[index // spec.episodes_per_task], index % spec.episodes_per_task
    rerun = spec.model_copy(update={"tasks": [task], "episodes_per_task": k + 1})
    async with auditor.state.engine.begin() as conn:
        job = await repo_jobs.get_job(conn, audit["job_id"])
        if job is None or await repo_audits.has_rerun(conn, job["id"], audit["validator_hotkey"]):
            return None
        job_id = await repo_jobs.create_rerun_job(
            conn,
            dict(
                id=uuid.uuid4().hex,
                submission_id=job["submission_id"],
                competition_id=job["competition_id"],
                benchmark_id=job["benchmark_id"],
                benchmark=rerun.model_dump(mode="json"),
                round_id=job["round_id"],
                audit_of_job=job["id"],
                audit_of_validator=audit["validator_hotkey"],
                audit_of_episode=index,
                replication=RERUN_VALIDATORS,
                deadline_s=job["deadline_s"],
            ),
        )
        await repo_audits.plan(
            conn,
            [
                dict(
                    job_id=job["id"],
                    validator_hotkey=audit["validator_hotkey"],
                    episode_index=index,
                    kind="agent_rerun",
                    state="pending",
                    reported=audit["reported"] | {"rerun_job_id": job_id, "rerun_episode": k},
                )
            ],
        )
    auditor.state.scheduler_wake.set()
    log.info("agent re-run audit of %s on job %s: %s", audit["validator_hotkey"], job["id"], job_id)
    return job_id


async def settle(auditor: Auditor) -> None:
    """Judge every pending re-run audit whose two re-runs are in (module docstring)."""
    async with auditor.state.engine.connect() as conn:
        pending = await repo_audits.pending_reruns(conn, limit=50)
    for audit in pending:
        if audit["rerun_state"] in ("failed", "cancelled"):
            await _store(auditor, audit, "skipped", "the re-run job did not complete")
            continue
        async with auditor.state.engine.connect() as conn:
            runs = await repo_audits.rerun_logs(
                conn, audit["rerun_job_id"], audit["reported"]["rerun_episode"]
            )
        if len(runs) < RERUN_VALIDATORS:
            continue
        who = [audit["validator_hotkey"]] + [r["validator_hotkey"] for r in runs[:2]]
        keys = [audit["reported"]["actions_ref"]] + [r["actions_ref"] for r in runs[:2]]
        try:
            logs = []
            for hotkey, key in zip(who, keys, strict=True):
                try:
                    logs.append(base64.b64encode(await auditor.load(key)).decode())
                except LogMissing as exc:
                    raise LogMissing(f"{exc} (of {hotkey})") from None
            answer = await auditor.pool.run(
                {"id": str(audit["id"]), "op": "compare", "logs": logs,
                 "atol": auditor.settings.agent_rerun_atol}
            )  # fmt: skip
        except LogMissing as exc:  # A's log passed its replay: a re-run's is missing
            await _store(auditor, audit, "skipped", str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - media or worker trouble: tried again later
            log.warning("agent re-run audit %s could not run: %s", audit["id"], exc)
            continue
        await _judge(auditor, audit, who, answer)


async def _judge(
    auditor: Auditor, audit: dict[str, Any], who: list[str], answer: dict[str, Any]
) -> None:
    if answer["outcome"] != "compared":
        detail = f"{answer.get('detail')} (log of {who[int(answer.get('which', 0))]})"
        await _store(auditor, audit, "skipped", detail)
        return
    agree = {(i, j): same for i, j, same, _ in answer["pairs"]}
    steps = answer["steps"]
    if agree[(0, 1)] or agree[(0, 2)]:
        await _store(auditor, audit, "passed", None, answer)
    elif agree[(1, 2)]:
        problem = (
            f"the agent re-run by {who[1]} and {who[2]} acted alike ({steps[1]} steps) and "
            f"not as this validator's log ({steps[0]} steps)"
        )
        await _store(auditor, audit, "failed", problem, answer)
    else:
        detail = "the two re-runs disagree with each other: the agent is not deterministic"
        await _store(auditor, audit, "skipped", detail, answer)
        async with auditor.state.engine.begin() as conn:
            job = await repo_jobs.get_job(conn, audit["job_id"])
            if job is not None:
                await repo_submissions.set_deterministic(conn, job["submission_id"], False)


async def _store(
    auditor: Auditor,
    audit: dict[str, Any],
    state: str,
    detail: str | None,
    answer: dict[str, Any] | None = None,
) -> None:
    job_id, hotkey = audit["job_id"], audit["validator_hotkey"]
    async with auditor.state.engine.begin() as conn:
        await repo_audits.settle(conn, audit["id"], state, detail, answer)
        if state == "failed":
            what = f"episode {audit['episode_index']}: {detail}"
            await _discard(conn, auditor, job_id, hotkey, what)
    auditor.state.metrics.audits.labels(state).inc()
    if state == "failed":
        log.warning("agent re-run audit of %s on job %s failed: %s", hotkey, job_id, detail)
        auditor.state.scheduler_wake.set()


async def _discard(
    conn: AsyncConnection, auditor: Auditor, job_id: str, hotkey: str, detail: str
) -> None:
    refusal = Refusal(StrikeReason.AGENT_RERUN_MISMATCH, f"job {job_id} {detail}")
    await standing.strike(conn, auditor.settings, hotkey, job_id, refusal)
    await repo_jobs.discard_result(conn, job_id, hotkey)
    await repo_audits.skip_pending(conn, job_id, hotkey, "result discarded")
