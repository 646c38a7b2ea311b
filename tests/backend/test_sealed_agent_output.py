"""Threat 1 through the agent's own output, over the real wire: a hostile agent in the real
sandbox (bubblewrap, Ray, agent RPC) writes its first observation — where the round's
seeds put the goal and the object — to stderr and into the exception it raises. Whatever
free text carries it on to the backend (the episode's ``failure_detail``, and a
validator's job-level status ``detail`` and result ``error`` quoting the agent), a miner
scraping every public route and the realtime feed while the round is open reads only the
cause; after the reveal the text is there, whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from evaluator.conftest import ray_session, write_bundle  # tests/ is on sys.path
from kinitro.core.db import dsn
from kinitro.evaluator.envs import EnvConfig, get_benchmark, make_env
from kinitro.evaluator.orchestrator import Orchestrator
from kinitro.evaluator.settings import Settings as EvaluatorSettings
from kinitro.jobqueue import JobQueue
from kinitro.protocol.common import FailureCause, JobState
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import (
    Ack,
    EvalJob,
    EvalResult,
    JobStatus,
    ValidatorMessage,
    parse_validator_message,
)
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.bundle import package_bundle

from .conftest import Net, create_competition, login, wait_for
from .playing import deliver
from .scraping import Feed, known_ids, leaks, public_urls
from .test_flow import commit_artifact, get
from .test_sealed_rounds import sealed_backend_settings

__all__ = ["ray_session"]  # the evaluator tests' session Ray, shared
pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.timeout(300)]

LEAKY_AGENT = """
import sys


class Agent:
    # Everything it observed, out through every channel an agent has: its stderr and the
    # message of the exception it raises (which the evaluator reports as agent_crash).
    def reset(self, task):
        pass

    def act(self, observation):
        text = "OBSERVED " + " ".join(repr(float(x)) for x in observation)
        print(text, file=sys.stderr, flush=True)
        raise RuntimeError(text)
"""


@pytest.fixture
def leaky_archive(tmp_path: Path) -> bytes:
    tmp_path.chmod(0o755)  # the sandbox's uid reads the bundle cache below
    bundle = write_bundle(tmp_path / "leaky", LEAKY_AGENT)
    return package_bundle(bundle, tmp_path / "leaky.tar").path.read_bytes()


async def test_agent_output_is_sealed_until_the_reveal(
    make_backend: Any,
    net: Net,
    registry: LocalRegistry,
    tmp_path: Path,
    validator_db_url: str,
    leaky_archive: bytes,
) -> None:
    settings = await sealed_backend_settings(net, tmp_path, replication=2, min_validators=2)
    async with make_backend(**settings) as backend:
        await create_competition(backend)
        feed = await Feed.open(backend)
        keys = [await net.validator(), await net.validator()]
        honest, quoting = [(await login(backend, key))[0] for key in keys]
        await commit_artifact(net, registry, content=leaky_archive)
        job = await honest.recv_type("eval_job", within=15)
        other = await quoting.recv_type("eval_job", within=15)
        for client, sent in ((honest, job), (quoting, other)):
            await client.send(Ack.of(sent))

        # validator 1 plays the job for real and forwards what its evaluator reported
        messages = await _evaluate(job, registry, tmp_path, validator_db_url)
        episodes = [m for m in messages if m.type == "episode"]
        assert episodes and all(e.failure_cause is FailureCause.AGENT_CRASH for e in episodes)
        for message in messages:
            assert (await deliver(honest, message)).ok, message
        # validator 2's evaluator failed the job as a whole, quoting the agent's output
        quoted = f"agent crashed: {episodes[0].failure_detail}"
        now = datetime.now(UTC)
        for message in (
            JobStatus(job_id=other.job_id, state=JobState.FAILED, seq=1, detail=quoted, at=now),
            EvalResult(
                job_id=other.job_id,
                state=JobState.FAILED,
                error=quoted,
                failure_cause=FailureCause.AGENT_CRASH,
                started_at=now,
                finished_at=now,
                evaluator_version="test",
            ),
        ):
            assert (await deliver(quoting, message)).ok, message

        needles = _observation_needles(job) | _observation_needles(other)
        assert any(n in (episodes[0].failure_detail or "") for n in needles), "agent quiet?"

        # during the round: every public route and the feed give the cause only
        values = await known_ids(backend, job_id=[job.job_id], round_id=[job.round_id])
        bodies = await _read_all(backend, public_urls(backend, values))
        frames = await feed.drain()
        await feed.close()
        found = leaks(bodies, frames, needles)
        assert not found, found[:5]
        sealed = await get(backend, f"/api/v1/jobs/{job.job_id}")
        until = sealed["sealed_until"]
        assert until and (await get(backend, f"/api/v1/rounds/{job.round_id}"))["secret"] is None
        mine = [r for r in sealed["results"] if r["validator_hotkey"] == keys[1].ss58_address]
        assert [r["error"] for r in mine] == [f"agent_crash (details sealed until {until})"]
        details = [h["detail"] for h in sealed["status_history"] if h["detail"]]
        assert details == [f"(details sealed until {until})"]
        assert any('"detail":"(details sealed until' in f for f in frames), "no job_status"
        eps = (await get(backend, "/api/v1/episodes", job_id=job.job_id))["items"]
        assert {e["failure_detail"] for e in eps} == {f"agent_crash (details sealed until {until})"}

        # the round ends (brought forward); the scheduler reveals it on its next tick
        conn = await asyncpg.connect(dsn(backend.settings.database_url))
        try:
            await conn.execute("UPDATE eval_rounds SET ends_at = now() WHERE id = $1", job.round_id)
        finally:
            await conn.close()

        async def revealed() -> Any:
            r = await get(backend, f"/api/v1/rounds/{job.round_id}")
            return r if r["secret"] else None

        await wait_for(revealed, within=30, interval=0.3)
        opened = await get(backend, f"/api/v1/jobs/{job.job_id}")
        assert opened["sealed_until"] is None
        assert quoted in [r["error"] for r in opened["results"]]
        assert quoted in [h["detail"] for h in opened["status_history"]]
        eps = (await get(backend, "/api/v1/episodes", job_id=job.job_id))["items"]
        assert {e["failure_detail"] for e in eps} == {e.failure_detail for e in episodes}
        assert any(n in json.dumps(eps) for n in needles)
        for client in (honest, quoting):
            await client.close()


async def _evaluate(
    job: EvalJob, registry: LocalRegistry, workdir: Path, database_url: str
) -> list[ValidatorMessage]:
    """The real evaluator on ``job`` (its queue in the validator's PostgreSQL); returns
    what it put in the outbox for the backend, in order."""
    settings = EvaluatorSettings(
        database_url=database_url,
        artifacts_dir=registry.root,
        bundle_cache_dir=workdir / "bundles",
        media_url=str(workdir / "media"),
        fast_timers=True,
    )
    jq = JobQueue.connect(database_url, pool_size=2)
    try:
        await jq.enqueue_job(job)
        await Orchestrator(settings, jq, jq).handle_job(job.job_id)
        entries = await jq.pending_outbox(limit=10_000)
    finally:
        await jq.close()
    return [parse_validator_message(e.payload) for e in entries if e.job_id == job.job_id]


def _observation_needles(job: EvalJob) -> set[str]:
    """How the agent prints the seed-derived numbers of each episode's first observation
    (object and goal positions; not the fixed hand start, not 0.0)."""
    spec = job.benchmark
    bench = get_benchmark(spec.benchmark_id, list(spec.tasks))
    needles: set[str] = set()
    for index in range(spec.total_episodes):
        task = spec.tasks[index // spec.episodes_per_task]
        config = EnvConfig(max_steps=spec.max_steps, conditions=spec.conditions)
        env = make_env(bench, task, config.resolved(bench))
        try:
            obs = env.reset(episode_seed(job.seed, task, index % spec.episodes_per_task))
        finally:
            env.close()
        needles |= {repr(float(x)) for x in (*obs[4:7], *obs[36:39])}  # type: ignore[index]
    return {n for n in needles if len(n) > 8}


async def _read_all(backend: Any, urls: list[str]) -> list[tuple[str, str]]:
    async with backend.client(None) as http:
        responses = [await http.get(url) for url in urls]
    odd = [(u, r.status_code) for u, r in zip(urls, responses, strict=True) if r.status_code > 404]
    assert not odd, odd
    return [(u, r.content.decode("utf-8", "replace")) for u, r in zip(urls, responses, strict=True)]
