"""The coverage rule over the real validator WebSocket: a ``completed`` result in which
fewer than 90 % of the job's episodes were scored is an infrastructure failure, whatever
the validator claims — the job is re-run (another validator first) and, attempts spent,
stored ``failed`` with the infrastructure cause; it never reaches the score.

The exploit: infrastructure faults are not scored, so a job whose losing episodes all
"hit" them (a miner steering them there, a sloppy validator) would score 5/5 instead of
5/10."""

from __future__ import annotations

from typing import Any

from kinitro.protocol.common import FailureCause
from kinitro.protocol.validator_ws import Ack, EvalJob
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Backend, Net, benchmark, create_competition, login, wait_for
from .playing import completed, deliver, episodes_for
from .test_flow import commit_artifact, get


def _losers_unscored(job: EvalJob, unscored: int) -> list[Any]:
    """5 successes of 10; the last ``unscored`` (losing) episodes are ``sandbox_start``."""
    episodes = episodes_for(job, 5)
    total = len(episodes)
    for i in range(total - unscored, total):
        episodes[i] = episodes[i].model_copy(
            update={"success": False, "failure_cause": FailureCause.SANDBOX_START}
        )
    return episodes


async def _report(client: Any, job: EvalJob, unscored: int) -> Ack:
    episodes = _losers_unscored(job, unscored)
    for episode in episodes:
        assert (await deliver(client, episode)).ok
    return await deliver(client, completed(job, episodes))


async def _results(backend: Backend, job_id: str) -> list[dict[str, Any]]:
    return list((await get(backend, f"/api/v1/jobs/{job_id}"))["results"])


async def _board_row(backend: Backend) -> dict[str, Any] | None:
    board = await get(backend, "/api/v1/competitions/mt1/leaderboard")
    return board["rows"][0] if board["rows"] else None


async def test_short_coverage_is_rerun_on_another_validator(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(max_attempts=2) as backend:
        await create_competition(backend, benchmarks=[benchmark(episodes=10)])
        a, b = await net.validator(), await net.validator()
        client_a, _ = await login(backend, a)
        await commit_artifact(net, registry)
        job = await client_a.recv_type("eval_job", within=15)
        await client_a.send(Ack.of(job))
        client_b, _ = await login(backend, b)
        assert (await _report(client_a, job, unscored=5)).ok  # 5/5 claimed over 5 of 10
        again = await client_b.recv_type("eval_job", within=15)  # the other validator
        assert again.job_id == job.job_id and again.attempt == 1
        await client_b.send(Ack.of(again))
        assert (await _report(client_b, again, unscored=1)).ok  # 9 of 10: counts
        row = await wait_for(lambda: _board_row(backend), within=15)
        assert row["success_rate"] == 5 / 9  # B's result; A's 1.0 was never scored
        [result] = await _results(backend, job.job_id)
        assert result["validator_hotkey"] == b.ss58_address and result["state"] == "completed"
        for c in (client_a, client_b):
            await c.close()


async def test_short_coverage_fails_after_max_attempts_and_is_never_scored(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend(max_attempts=2) as backend:
        await create_competition(backend, benchmarks=[benchmark(episodes=10)])
        validator = await net.validator()
        client, _ = await login(backend, validator)
        await commit_artifact(net, registry)
        for attempt in (1, 2):  # nobody else can take it: offered again, as a new attempt
            job = await client.recv_type("eval_job", within=15)
            assert job.attempt == attempt
            await client.send(Ack.of(job))
            assert (await _report(client, job, unscored=2)).ok  # 8 of 10: short
        [result] = await wait_for(lambda: _results(backend, job.job_id), within=15)
        assert result["state"] == "failed" and result["success_rate"] is None
        # the error text opens at the round's reveal: until then, its cause
        assert result["failure_cause"] == "sandbox_start", result
        assert result["error"] == f"sandbox_start (details sealed until {result['sealed_until']})"
        detail = await get(backend, f"/api/v1/jobs/{job.job_id}")
        assert detail["state"] == "failed"
        row = await _board_row(backend)
        assert row is None or row["success_rate"] is None, row
        await client.close()
