"""End-to-end rollouts through the real path: Ray actors, bubblewrap sandbox, agent RPC;
results awaited on the test's event loop as the orchestrator does."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from kinitro.evaluator.replay import load_action_log, replay
from kinitro.evaluator.rollout import warm
from kinitro.evaluator.rollout.launcher import SandboxLauncher
from kinitro.evaluator.rollout.pool import RolloutPool
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.evaluator.runner import EvalRequest, evaluate
from kinitro.storage.media import open_media_store

pytestmark = pytest.mark.usefixtures("ray_session")


def _request(job_id: str, *, episodes: int = 3, seed: int = 11, max_steps: int = 80) -> EvalRequest:
    return EvalRequest(
        job_id=job_id,
        benchmark_id="metaworld/MT1-reach-v3",
        episodes_per_task=episodes,
        seed=seed,
        max_steps=max_steps,
        step_log_interval=10,
    )


async def test_reach_agent_succeeds_and_episodes_replay(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    media = tmp_path / "media"
    seen = []
    outcome = await evaluate(
        _request("job-reach"),
        SandboxLauncher(str(bundles["reach"])),
        RolloutOptions(media_url=str(media)),
        on_result=seen.append,
    )
    overall = outcome.metrics.overall
    assert overall.episodes == 3 and overall.scored_episodes == 3
    assert overall.success_rate == 1.0, outcome.results
    assert overall.mean_steps_to_success is not None and overall.mean_steps_to_success < 80
    assert len(seen) == 3
    for result in outcome.results:
        assert result.failure_cause is None and result.terminated and not result.truncated
        assert result.samples and result.samples[0].step == 1
        assert result.samples[-1].step == result.steps
        assert result.actions_ref is not None
        report = replay(load_action_log(result.actions_ref, str(media)))
        assert report.ok and report.exact, report
        assert report.replayed_return == pytest.approx(result.total_reward, abs=1e-9)


async def test_random_agent_scores_low(bundles: dict[str, Path]) -> None:
    outcome = await evaluate(
        _request("job-random", max_steps=60), SandboxLauncher(str(bundles["random"]))
    )
    overall = outcome.metrics.overall
    assert overall.scored_episodes == 3
    assert overall.success_rate <= 1 / 3
    assert overall.ci_low == 0.0 or overall.success_rate < 0.5


async def test_identical_seeds_give_identical_metrics_across_shardings(
    bundles: dict[str, Path],
) -> None:
    launcher = SandboxLauncher(str(bundles["random"]))
    a = await evaluate(
        _request("job-a", episodes=4, seed=5, max_steps=40), launcher, RolloutOptions(workers=1)
    )
    b = await evaluate(
        _request("job-b", episodes=4, seed=5, max_steps=40), launcher, RolloutOptions(workers=2)
    )
    assert a.metrics.to_dict() == b.metrics.to_dict()
    assert [r.total_reward for r in a.results] == [r.total_reward for r in b.results]


async def test_batched_and_single_slot_agents_give_identical_results(
    bundles: dict[str, Path],
) -> None:
    """Playing episodes in lockstep (slots) changes nothing about any episode."""
    request = _request("job-slots", episodes=5, seed=9, max_steps=40)
    four, one = RolloutOptions(env_slots=4), RolloutOptions(env_slots=1)
    batched = await evaluate(request, SandboxLauncher(str(bundles["random"])), four)
    single = await evaluate(request, SandboxLauncher(str(bundles["random_single"])), four)
    unbatched = await evaluate(request, SandboxLauncher(str(bundles["random"])), one)
    for other in (single, unbatched):
        assert [r.total_reward for r in batched.results] == [r.total_reward for r in other.results]
        assert [r.steps for r in batched.results] == [r.steps for r in other.results]
    assert batched.metrics.to_dict() == single.metrics.to_dict()


async def test_episodes_are_played_together_when_the_agent_allows(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    """After its first episode (the agent says how many slots it grants), a worker plays
    up to min(env_slots, slots) episodes at once, each with its own agent instance."""
    media = tmp_path / "media"
    outcome = await evaluate(
        _request("job-instances", episodes=5, max_steps=20),
        SandboxLauncher(str(bundles["instances"])),
        RolloutOptions(env_slots=4, media_url=str(media)),
    )
    tags = []
    for result in outcome.results:
        assert result.failure_cause is None, result
        log = load_action_log(result.actions_ref or "", str(media))
        assert len(set(log.actions[:, 3].tolist())) == 1  # one instance per episode
        tags.append(round(float(log.actions[0, 3]) * 10))
    assert tags[0] == 1  # the first episode alone, on instance 1
    assert sorted(tags[1:]) == [1, 2, 3, 4]  # then four at once, one instance each


async def test_agent_exception_in_one_slot_ends_the_batch_as_agent_faults(
    bundles: dict[str, Path],
) -> None:
    """The runtime names the failing slot: that episode is the agent's fault with its own
    detail; its siblings, cut short by the same agent, are charged too and not replayed
    (a replay would be a second draw of the policy, bought by failing on purpose)."""
    outcome = await evaluate(
        _request("job-raises", episodes=4),
        SandboxLauncher(str(bundles["raises"])),
        RolloutOptions(env_slots=4),
    )
    by_index = {r.index: r for r in outcome.results}
    assert by_index[1].failure_cause == "agent_crash", by_index[1]
    assert "policy bug in episode 1" in (by_index[1].failure_detail or "")
    assert by_index[1].steps == 4
    siblings = [r for i, r in by_index.items() if i != 1 and r.failure_cause is not None]
    assert siblings, "episode 1 was played in a batch: its siblings are cut short"
    for result in siblings:
        assert result.failure_cause == "agent_crash", result
        assert "cut short by the agent's failure in slot" in (result.failure_detail or "")
        assert result.steps == 4
    for result in outcome.results:
        assert result.attempts == 1 and (result.failure_cause is not None or result.success)
    overall = outcome.metrics.overall
    assert overall.failures == {"agent_crash": 1 + len(siblings)}
    assert overall.scored_episodes == 4


async def test_agent_crash_mid_episode_is_charged_to_every_running_episode(
    bundles: dict[str, Path],
) -> None:
    """A crash names no slot: the agent process is the miner's, so every episode it was
    playing fails as ``agent_crash``; nothing is replayed."""
    outcome = await evaluate(
        _request("job-crash", episodes=4), SandboxLauncher(str(bundles["crash"]))
    )
    crashed = [r for r in outcome.results if r.failure_cause is not None]
    assert 1 in {r.index for r in crashed} and len(crashed) >= 2, outcome.results
    for result in crashed:
        assert result.failure_cause == "agent_crash", result
        assert result.steps == 4 and not result.success
    for result in outcome.results:
        assert result.attempts == 1 and (result.failure_cause is not None or result.success)
    overall = outcome.metrics.overall
    assert overall.failures == {"agent_crash": len(crashed)}
    assert overall.scored_episodes == 4 and overall.successes == 4 - len(crashed)


async def test_camera_observations_and_frames(bundles: dict[str, Path], tmp_path: Path) -> None:
    """state+rgb: the agent gets {"state", "rgb"}; PNG frames land in the media store."""
    request = EvalRequest(
        job_id="job-rgb",
        benchmark_id="metaworld/MT1-reach-v3",
        episodes_per_task=1,
        seed=3,
        max_steps=12,
        observation_mode="state+rgb",
        resolution=(64, 48),
    )
    media = tmp_path / "media"
    outcome = await evaluate(
        request,
        SandboxLauncher(str(bundles["reach_rgb"])),
        RolloutOptions(media_url=str(media), frame_every=10),
    )
    result = outcome.results[0]
    assert result.failure_cause is None, result.failure_detail
    assert result.media_refs[0].endswith("frame-00000.png")
    for key in result.media_refs:
        data = (media / key).read_bytes()
        assert data.startswith(b"\x89PNG") and data[16:24] == bytes.fromhex("0000004000000030")


async def test_sandbox_start_failures_are_retried_and_never_scored(
    bundles: dict[str, Path], tmp_path: Path
) -> None:
    private = tmp_path / "private"
    private.mkdir()
    for name in ("kinitro.toml", "agent.py"):
        (private / name).write_bytes((bundles["reach"] / name).read_bytes())
        (private / name).chmod(0o600)  # the sandbox uid cannot read it: start fails
    outcome = await evaluate(
        _request("job-infra", episodes=2, max_steps=20),
        SandboxLauncher(str(private)),
        RolloutOptions(max_infra_retries=1),
    )
    assert all(r.failure_cause == "sandbox_start" and r.attempts == 2 for r in outcome.results)
    overall = outcome.metrics.overall
    assert overall.episodes == 2 and overall.scored_episodes == 0
    assert overall.failures == {"sandbox_start": 2}


async def test_lost_worker_episode_is_rerun(bundles: dict[str, Path]) -> None:
    import ray  # noqa: PLC0415 - Ray reads its auth settings when imported: ensure_ray sets them first

    pools: list[RolloutPool] = []

    def pool(config, options) -> RolloutPool:  # the Ray pool, kept to kill one of its actors
        pools.append(RolloutPool(config, options))
        return pools[-1]

    async def kill_first_actor() -> None:
        await asyncio.sleep(2.0)
        ray.kill(pools[0].actors[0], no_restart=True)

    killer = asyncio.create_task(kill_first_actor())
    outcome = await evaluate(
        _request("job-lost", episodes=3, max_steps=60),
        SandboxLauncher(str(bundles["slow"])),
        rollouts=pool,
    )
    await killer
    assert [r.failure_cause for r in outcome.results] == [None, None, None]
    assert max(r.attempts for r in outcome.results) == 2
    assert outcome.metrics.overall.scored_episodes == 3


async def test_action_logs_to_s3_and_replay_from_the_key(
    bundles: dict[str, Path], s3_server: Any
) -> None:
    options = s3_server.options()  # HTTPS, behind the R2 gate (tests/s3_server.py)
    s3_server.create_bucket("episodes")
    outcome = await evaluate(
        _request("job-s3", episodes=2, max_steps=60),
        SandboxLauncher(str(bundles["reach"])),
        RolloutOptions(media_url="s3://episodes/validator-1", media_options=options),
    )
    assert outcome.upload_failures == []
    store = open_media_store("s3://episodes/validator-1", **options)
    keys = [r.actions_ref for r in outcome.results]
    assert all(k is not None for k in keys)
    assert store.list("episodes/job-s3/") == sorted(keys)
    for key in keys:
        report = replay(load_action_log(key, "s3://episodes/validator-1", **options))
        assert report.ok and report.exact


@pytest.mark.parametrize("env_slots", [1, 4])
async def test_agent_that_cannot_load_fails_fast_as_agent_fault(
    bundles: dict[str, Path], env_slots: int
) -> None:
    outcome = await evaluate(
        _request("job-broken", episodes=4),
        SandboxLauncher(str(bundles["broken"])),
        RolloutOptions(env_slots=env_slots),
    )
    causes = [r.failure_cause for r in outcome.results]
    assert causes == ["agent_crash"] * 4, [r.failure_detail for r in outcome.results]
    assert "numpy_but_misspelled" in (outcome.results[0].failure_detail or "")
    if env_slots == 1:  # one episode at a time: after two failed starts, no more attempts
        assert "failed to start again" in (outcome.results[-1].failure_detail or "")
    else:  # the batch shared the one failed start
        assert all("numpy_but_misspelled" in (r.failure_detail or "") for r in outcome.results)
    overall = outcome.metrics.overall
    assert overall.scored_episodes == 4 and overall.success_rate == 0.0


async def test_unreachable_media_store_does_not_fail_the_episodes(bundles: dict[str, Path]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = await evaluate(
        _request("job-nomedia", episodes=1, max_steps=40),
        SandboxLauncher(str(bundles["reach"])),
        RolloutOptions(
            media_url="s3://episodes",
            media_options={
                "endpoint_url": f"http://127.0.0.1:{port}",
                "region": "us-east-1",
                "access_key_id": "k",
                "secret_access_key": "s",
                "timeout_s": 1.0,
            },
        ),
    )
    assert outcome.results[0].failure_cause is None and outcome.results[0].success
    assert len(outcome.upload_failures) == 1 and "cannot write media" in outcome.upload_failures[0]


async def test_warm_workers_carry_nothing_from_one_miners_job_to_the_next(
    bundles: dict[str, Path],
) -> None:
    """Actors stay warm between jobs (process, imports, compiled models, environments) and
    a miner's agent cannot use that to reach the next job: after a random agent's job, a
    reach agent's job on the very same actors plays exactly what it plays on fresh ones,
    in a new sandbox, without building an environment again."""
    pools: list[RolloutPool] = []

    def pool(config: Any, options: RolloutOptions) -> RolloutPool:
        pools.append(RolloutPool(config, options))
        return pools[-1]

    def played(outcome: Any) -> list[tuple[Any, ...]]:
        return [
            (r.index, r.seed, r.steps, r.total_reward, r.success, r.action_fingerprint)
            for r in outcome.results
        ]

    warm.drop_all()
    fresh = await evaluate(
        _request("warm-ref", episodes=4),
        SandboxLauncher(str(bundles["reach"])),
        RolloutOptions(workers=2, reuse_workers=False),
    )
    assert warm.drop_all() == 0  # reuse_workers=False: nothing kept
    await evaluate(
        _request("warm-a", episodes=4),
        SandboxLauncher(str(bundles["random"])),
        RolloutOptions(workers=2),
        rollouts=pool,
    )
    second = await evaluate(
        _request("warm-b", episodes=4),
        SandboxLauncher(str(bundles["reach"])),
        RolloutOptions(workers=2),
        rollouts=pool,
    )
    assert pools[1].played_by == pools[0].played_by
    assert played(second) == played(fresh)
    assert all(r.failure_cause is None for r in second.results)
    assert sum(r.sandbox_starts for r in second.results) == 2  # a new agent on each actor
    assert second.timeline is not None
    assert sum(w.envs_built for w in second.timeline.workers) == 0
    assert warm.drop_all() == 2
