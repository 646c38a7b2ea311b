"""A minimal eval_job consumer (pgqueuer QueueManager with the jobqueue timers), run as a
subprocess by the timer tests so it can be SIGKILLed mid-job.

    python pgq_consumer.py URL HEARTBEAT_TIMEOUT_S SLEEP_S MARKER_DIR

For each job: touch MARKER_DIR/<job_id>.<pid>.started, sleep, report a result through the
JobQueue, touch …done.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path


async def consume(url: str, heartbeat_timeout: float, sleep_s: float, markers: Path) -> None:
    import asyncpg  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from pgqueuer.adapters.persistence.queries import Queries  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from pgqueuer.models import Job  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from pgqueuer.qm import QueueManager  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from tests.validator.factories import make_result  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first

    from kinitro.core.db import dsn  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from kinitro.jobqueue import EVAL_JOB_ENTRYPOINT, JobQueue, job_id_from_payload  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first
    from kinitro.protocol.common import JobState  # noqa: PLC0415 - run as a script: main() puts the repository on sys.path first

    jq = JobQueue.connect(url, pool_size=2)
    conn = await asyncpg.connect(dsn(url))
    qm = QueueManager(Queries.from_asyncpg_connection(conn))
    tag = str(os.getpid())

    @qm.entrypoint(EVAL_JOB_ENTRYPOINT)
    async def run(job: Job) -> None:
        job_id = job_id_from_payload(job.payload)
        (markers / f"{job_id}.{tag}.started").touch()
        await jq.report_status(job_id, JobState.RUNNING, episodes_total=2)
        await asyncio.sleep(sleep_s)
        await jq.append_outbox(make_result(job_id))
        (markers / f"{job_id}.{tag}.done").touch()

    await qm.run(
        heartbeat_timeout=timedelta(seconds=heartbeat_timeout),
        dequeue_timeout=timedelta(seconds=0.2),
        batch_size=1,
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    url, hb, sleep_s, marker_dir = sys.argv[1:5]
    asyncio.run(consume(url, float(hb), float(sleep_s), Path(marker_dir)))
