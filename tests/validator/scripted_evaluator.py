"""A scripted evaluator process for the validator acceptance tests.

It consumes the validator's pgqueuer queue exactly like ``kinitro evaluator run`` (same
entrypoint, same ``QueueTimers``, same ``JobQueue`` API) but instead of simulating it
writes a deterministic stream per job: ``starting``, then per episode an ``episode`` and an
``episode_steps`` batch and a ``running`` status, then the terminal status and the
``eval_result``. Every message id is derived from (job, attempt, kind, index), so a re-run
after a crash produces the same natural keys (the backend's upserts make them single).

    python scripted_evaluator.py DATABASE_URL [EPISODE_DELAY_S]
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from datetime import UTC, datetime


def _mid(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


async def main(url: str, delay_s: float) -> None:
    import asyncpg  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from pgqueuer.adapters.persistence.queries import Queries  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from pgqueuer.models import Job  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from pgqueuer.qm import QueueManager  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's

    from kinitro.core.db import dsn  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from kinitro.core.runtime import local_runtime  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from kinitro.jobqueue import EVAL_JOB_ENTRYPOINT, JobQueue, QueueTimers, job_id_from_payload  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from kinitro.protocol.common import EvalMetrics, JobState, TaskMetrics, wilson_interval  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from kinitro.protocol.rounds import episode_seed  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's
    from kinitro.protocol.validator_ws import Episode, EpisodeSteps, EvalResult, StepSample  # noqa: PLC0415 - run as a subprocess: its imports are its start-up, not the parent's

    timers = QueueTimers.fast()
    jq = JobQueue.connect(url, pool_size=3)
    conn = await asyncpg.connect(dsn(url))
    qm = QueueManager(Queries.from_asyncpg_connection(conn))

    def metrics(episodes: list[Episode], tasks: list[str]) -> EvalMetrics:
        """What the episodes add up to (the backend cross-checks it)."""

        def one(eps: list[Episode]) -> TaskMetrics:
            wins = [e for e in eps if e.success]
            low, high = wilson_interval(len(wins), len(eps))
            steps = [e.steps_to_success for e in wins if e.steps_to_success is not None]
            return TaskMetrics(
                episodes=len(eps),
                successes=len(wins),
                success_rate=len(wins) / len(eps) if eps else 0.0,
                ci_low=low,
                ci_high=high,
                mean_return=sum(e.total_reward for e in eps) / len(eps) if eps else 0.0,
                mean_steps_to_success=sum(steps) / len(steps) if steps else None,
                failures={},
                scored_episodes=len(eps),
            )

        return EvalMetrics(
            per_task={t: one([e for e in episodes if e.task == t]) for t in tasks},
            overall=one(episodes),
        )

    @qm.entrypoint(EVAL_JOB_ENTRYPOINT, concurrency_limit=4)
    async def run(job: Job) -> None:
        job_id = job_id_from_payload(job.payload)
        logging.getLogger("scripted-evaluator").info("running %s", job_id)
        record = await jq.get_job_record(job_id)
        spec = record.eval_job()
        attempt = spec.attempt
        tasks = spec.benchmark.tasks
        total = spec.benchmark.total_episodes
        started = datetime.now(UTC)
        await jq.report_status(job_id, JobState.STARTING, episodes_done=0, episodes_total=total)
        per_task = spec.benchmark.episodes_per_task
        played: list[Episode] = []
        for index in range(total):  # the evaluator's plan: task by task
            task, task_episode = tasks[index // per_task], index % per_task
            episode = Episode(
                id=_mid(job_id, attempt, "episode", index),
                job_id=job_id,
                episode_index=index,
                task=task,
                task_episode=task_episode,
                seed=episode_seed(spec.seed, task, task_episode),
                success=index % 2 == 0,
                total_reward=float(index),
                steps=10,
                steps_to_success=5 if index % 2 == 0 else None,
                terminated=index % 2 == 0,
                truncated=index % 2 == 1,
                duration_s=delay_s,
            )
            steps = EpisodeSteps(
                id=_mid(job_id, attempt, "steps", index),
                job_id=job_id,
                episode_index=index,
                batch_index=0,
                samples=[
                    StepSample(
                        step=s, observation=[0.1] * 8, action=[0.0] * 4, reward=0.1, success=False
                    )
                    for s in range(0, 10, 5)
                ],
            )
            played.append(episode)
            await jq.append_outbox_many([episode, steps])
            await jq.report_status(
                job_id, JobState.RUNNING, episodes_done=index + 1, episodes_total=total
            )
            await asyncio.sleep(delay_s)
        await jq.report_status(
            job_id, JobState.COMPLETED, episodes_done=total, episodes_total=total
        )
        await jq.append_outbox(
            EvalResult(
                id=_mid(job_id, attempt, "result"),
                job_id=job_id,
                state=JobState.COMPLETED,
                metrics=metrics(played, tasks),
                started_at=started,
                finished_at=datetime.now(UTC),
                evaluator_version="scripted",
                runtime=local_runtime(),
            )
        )

    await qm.run(
        heartbeat_timeout=timers.heartbeat_timeout,
        dequeue_timeout=timers.dequeue_timeout,
        batch_size=2,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.02))
