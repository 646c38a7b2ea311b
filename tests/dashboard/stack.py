"""A real backend process with data, for the dashboard's browser tests.

Everything goes through the platform's real paths: a LocalChain service (registered
hotkeys, commitments), a local artifact registry, ``python -m kinitro backend run`` on a
free port against the test's PostgreSQL, the admin REST API, and validators speaking the
wire protocol over ``/ws/validator`` (challenge–response auth, eval_job → ack, job_status,
episode + episode_steps, eval_result). Scoring and weights are computed by the backend's
own engine. Media (action logs, a frame) are written with the evaluator's real encoders
into the media directory the backend serves at ``/media``.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from bittensor_wallet import Keypair

from kinitro.chain.local.client import LocalChain
from kinitro.core.processes import ProcessExited, stop_process, wait_http_ok
from kinitro.core.runtime import local_runtime
from kinitro.evaluator.episode_logger import ActionLog, encode_action_log, encode_png
from kinitro.protocol.baselines import Baselines, BaselineScore, baseline_fingerprint
from kinitro.protocol.commitment import encode_commitment
from kinitro.protocol.common import (
    BenchmarkSpec,
    EvalMetrics,
    FailureCause,
    JobState,
    TaskMetrics,
    wilson_interval,
)
from kinitro.protocol.rounds import episode_seed
from kinitro.protocol.validator_ws import (
    Ack,
    AuthResponse,
    Episode,
    EpisodeSteps,
    EvalJob,
    EvalResult,
    JobStatus,
    StepSample,
    dump_message,
    parse_validator_message,
)
from kinitro.storage.artifacts import LocalRegistry
from kinitro.storage.media import LocalMediaStore

ADMIN_KEY = "dashboard-test-admin-key-0123456789"
TASKS = ["reach-v3", "push-v3", "pick-place-v3"]
EPISODES_PER_TASK = 2
COMPETITION = "mt3"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_key() -> Keypair:
    return Keypair.create_from_mnemonic(Keypair.generate_mnemonic())


async def wait_for(predicate: Any, within: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within}s")
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ backend process


class BackendProcess:
    """``python -m kinitro backend run`` on a free loopback port; killed on stop."""

    def __init__(self, *, database_url: str, chain_url: str, netuid: int, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.registry_dir = data_dir / "registry"
        self.media_dir = data_dir / "media"
        self.log_path = data_dir / "backend.log"
        self.argv = [
            sys.executable, "-m", "kinitro", "backend", "run",
            "--port", str(self.port),
            "--database-url", database_url,
            "--chain-url", chain_url,
            "--netuid", str(netuid),
            "--registry-dir", str(self.registry_dir),
            "--media", str(self.media_dir),
            "--replication", "2",
            "--min-validators", "2",
            "--log-level", "WARNING",
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "KINITRO_BACKEND_ADMIN_API_KEY": ADMIN_KEY,
            "KINITRO_BACKEND_MIGRATE_ON_START": "false",  # the test database is migrated
            "KINITRO_BACKEND_MIN_VALIDATOR_STAKE": "100",
            "KINITRO_BACKEND_SCHEDULER_INTERVAL_S": "0.2",
            "KINITRO_BACKEND_CHAIN_SCAN_INTERVAL_S": "0.2",
            "KINITRO_BACKEND_SCORING_INTERVAL_S": "0.3",
            "KINITRO_BACKEND_STATS_INTERVAL_S": "0.5",
            "KINITRO_BACKEND_METAGRAPH_TTL_S": "0.5",
            "KINITRO_BACKEND_HEARTBEAT_TIMEOUT_S": "60",
            # short rounds: the episode pages replay logs, which open at the round's reveal
            "KINITRO_BACKEND_ROUND_DURATION_S": "4",
            # synthetic episodes (reach_episode) cannot pass a replay audit: no audits
            "KINITRO_BACKEND_AUDIT_WORKERS": "0",
            # every 4 s round gives the leader and its challengers a job each (leaders
            # re-earn their place), which these validators hold unplayed: without room,
            # the in-flight cap would keep the jobs a test waits for from being assigned
            "KINITRO_BACKEND_MAX_JOBS_PER_VALIDATOR": "1000",
            "KINITRO_BACKEND_RENDER_QUEUE_MAX": "5",
            "KINITRO_BACKEND_RENDER_FAILED_SAMPLE": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BackendProcess:
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        self.media_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        try:
            if wait_http_ok(f"{self.url}/health", 60, alive=self.proc):
                return self
        except ProcessExited as exc:
            raise RuntimeError(f"backend {exc}:\n{self.log()}") from None
        self.stop()
        raise RuntimeError(f"backend did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
        self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


# ------------------------------------------------------------------ validator client


class Validator:
    """A validator speaking the real wire protocol on /ws/validator."""

    def __init__(self, key: Keypair) -> None:
        self.key = key
        self.ws: Any = None
        self.seq: dict[str, int] = {}

    @property
    def hotkey(self) -> str:
        return str(self.key.ss58_address)

    async def connect(self, base_url: str) -> None:
        ws_url = base_url.replace("http://", "ws://") + "/ws/validator"
        self.ws = await websockets.connect(ws_url, max_size=8 * 1024 * 1024)
        challenge = await self.recv()
        assert challenge.type == "auth_challenge", challenge
        payload = f"kinitro-auth:{challenge.nonce}:{self.hotkey}".encode()
        await self.send(
            AuthResponse(
                hotkey=self.hotkey,
                nonce=challenge.nonce,
                signature=bytes(self.key.sign(payload)).hex(),
                validator_version="dashboard-test",
                runtime=local_runtime(),
            )
        )
        ok = await self.recv()
        assert ok.type == "auth_ok", ok

    async def send(self, message: Any) -> None:
        await self.ws.send(dump_message(message))

    async def recv(self, within: float = 15.0) -> Any:
        return parse_validator_message(await asyncio.wait_for(self.ws.recv(), timeout=within))

    async def recv_type(self, kind: str, within: float = 20.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            msg = await self.recv(within=max(0.05, deadline - time.monotonic()))
            if msg.type == "set_weights":
                await self.send(Ack.of(msg))
            if msg.type == kind:
                return msg

    async def deliver(self, message: Any) -> None:
        """Send a state-changing message and wait for its positive ack."""
        await self.send(message)
        while True:
            reply = await self.recv()
            if reply.type == "set_weights":
                await self.send(Ack.of(reply))
                continue
            if reply.type == "ack" and reply.ack_id == message.id:
                assert reply.ok, reply
                return

    async def status(self, job_id: str, state: JobState, done: int, total: int) -> None:
        self.seq[job_id] = self.seq.get(job_id, 0) + 1
        await self.deliver(
            JobStatus(
                job_id=job_id,
                state=state,
                seq=self.seq[job_id],
                episodes_done=done,
                episodes_total=total,
                at=datetime.now(UTC),
            )
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


# ------------------------------------------------------------------ synthetic episodes


def reach_episode(
    rng: np.random.Generator, *, success: bool, steps: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A plausible Meta-World episode: the hand servoes towards a goal (or wanders).

    Returns actions (steps×4), rewards, successes, observations (steps×39) and the
    hand positions.
    """
    hand = np.array([0.0, 0.6, 0.2])
    obj = np.array([rng.uniform(-0.1, 0.1), rng.uniform(0.6, 0.7), 0.02])
    goal = np.array([rng.uniform(-0.1, 0.1), rng.uniform(0.8, 0.9), rng.uniform(0.05, 0.3)])
    actions, rewards, succ, obs, hands = [], [], [], [], []
    for _ in range(steps):
        target = goal if success else goal + np.array([0.15, -0.12, 0.1])
        a = np.clip((target - hand) * 30 + rng.normal(0, 0.08, 3), -1, 1)
        action = np.append(a, rng.uniform(-1, 1))
        # Meta-World's 39-dim observation the agent acted on: hand xyz, gripper, object
        # pos + quat (+ a second object), the previous frame, the goal.
        obs.append(np.concatenate([hand, [0.5], obj, [1, 0, 0, 0], np.zeros(25), goal]))
        hands.append(hand.copy())
        hand = hand + np.clip(a, -1, 1) * 0.01
        dist = float(np.linalg.norm(hand - goal))
        actions.append(action)
        rewards.append(10 * math.exp(-5 * dist))
        succ.append(dist < 0.05)
    return (
        np.array(actions, dtype=np.float32),
        np.array(rewards),
        np.array(succ),
        np.array(obs),
        np.array(hands),
    )


def reference_baselines(benchmarks: list[dict[str, Any]]) -> dict[str, Any]:
    """Baselines as ``kinitro evaluator baselines`` would upload them (figures made up)."""
    specs = [BenchmarkSpec.model_validate(b) for b in benchmarks]
    agents = {}
    for agent, successes in (("zero", 0), ("random", 1), ("expert", 9)):
        low, high = wilson_interval(successes, 30)
        agents[agent] = BaselineScore(
            episodes=30,
            scored_episodes=30,
            successes=successes,
            success_rate=successes / 30,
            ci_low=low,
            ci_high=high,
            mean_return=1.0,
            steps=3000,
            seconds=4.2,
            per_task={t: 0.3 for t in TASKS},
        )
    return Baselines(
        fingerprint=baseline_fingerprint(specs),
        seed=0,
        episodes_per_task=10,
        computed_at=datetime.now(UTC),
        kinitro_version="test",
        agents=agents,
    ).model_dump(mode="json")


def task_metrics(episodes: list[Episode]) -> TaskMetrics:
    """What ``episodes`` add up to (the backend cross-checks a result against them)."""
    failures: dict[FailureCause, int] = {}
    for e in episodes:
        if e.failure_cause is not None:
            failures[e.failure_cause] = failures.get(e.failure_cause, 0) + 1
    scored = [e for e in episodes if e.failure_cause is None or e.failure_cause.is_agent_fault]
    wins = [e for e in scored if e.success]
    steps = [e.steps_to_success for e in wins if e.steps_to_success is not None]
    low, high = wilson_interval(len(wins), len(scored))
    return TaskMetrics(
        episodes=len(episodes),
        successes=len(wins),
        success_rate=len(wins) / len(scored) if scored else 0.0,
        ci_low=low,
        ci_high=high,
        mean_return=sum(e.total_reward for e in scored) / len(scored) if scored else 0.0,
        mean_steps_to_success=sum(steps) / len(steps) if steps else None,
        failures=failures,
        scored_episodes=len(scored),
    )


# ------------------------------------------------------------------ the stack


@dataclass
class Stack:
    backend: BackendProcess
    chain: LocalChain
    registry: LocalRegistry
    media: LocalMediaStore
    coldkey: Keypair = field(default_factory=new_key)
    validators: list[Validator] = field(default_factory=list)
    miners: dict[str, Keypair] = field(default_factory=dict)
    jobs: dict[str, EvalJob] = field(default_factory=dict)
    copies: dict[tuple[str, str], EvalJob] = field(default_factory=dict)
    """(job id, validator hotkey) → the job as that validator received it."""
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.backend.url

    def http(self, admin: bool = False) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"} if admin else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def get(self, path: str, **params: Any) -> Any:
        async with self.http() as http:
            resp = await http.get(path, params=params)
            assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text}"
            return resp.json()

    async def neuron(self, *, validator: bool = False) -> Keypair:
        key = new_key()
        await self.chain.register(self.coldkey, key.ss58_address)
        if validator:
            await self.chain.set_stake(self.coldkey, key.ss58_address, 1000.0)
            await self.chain.set_permit(self.coldkey, key.ss58_address, True)
        return key

    async def add_validator(self) -> Validator:
        v = Validator(await self.neuron(validator=True))
        await v.connect(self.url)
        self.validators.append(v)
        return v

    async def create_competitions(self) -> None:
        async with self.http(admin=True) as http:
            for body in (
                {
                    "id": COMPETITION,
                    "name": "MT3 manipulation",
                    "description": "Reach, push and pick-place on Meta-World v3.",
                    "benchmarks": [
                        {
                            "benchmark_id": "metaworld/MT3-v3",
                            "tasks": TASKS,
                            "episodes_per_task": EPISODES_PER_TASK,
                            "max_steps": 120,
                            "conditions": {
                                "reveal_goal": False,
                                "observation_noise": 0.01,
                                "action_delay": 2,
                                "dynamics": {"mass": [0.7, 1.4]},
                            },
                        }
                    ],
                    "points": 3,
                    "min_episodes": 1,
                    "max_expert_baseline": 0.5,
                },
                {
                    "id": "reach",
                    "name": "Reach sprint",
                    "benchmarks": [
                        {
                            "benchmark_id": "metaworld/MT1-reach-v3",
                            "tasks": ["reach-v3"],
                            "episodes_per_task": 4,
                        }
                    ],
                    "points": 1,
                    "min_episodes": 1,
                    "approval_mode": "admin",
                    "active": True,
                },
            ):
                resp = await http.post("/api/v1/admin/competitions", json=body)
                assert resp.status_code == 201, resp.text
            # the gated competition: its reference baselines first, then activation
            benchmarks = (await self.get(f"/api/v1/competitions/{COMPETITION}"))["benchmarks"]
            stored = await http.put(
                f"/api/v1/admin/competitions/{COMPETITION}/baselines",
                json=reference_baselines(benchmarks),
            )
            assert stored.status_code == 200, stored.text
            resp = await http.post(f"/api/v1/admin/competitions/{COMPETITION}/activate")
            assert resp.status_code == 200, resp.text

    async def commit(
        self, name: str, content: bytes, *, bad_sha: bool = False, competition: str = COMPETITION
    ) -> Keypair:
        """Upload an artifact and commit it on chain for miner ``name``."""
        path = self.registry.root.parent / f"upload-{os.urandom(4).hex()}.tar.gz"
        path.write_bytes(content)
        ref = self.registry.upload(path, f"{name}/agent")
        miner = self.miners.get(name) or await self.neuron()
        self.miners[name] = miner
        sha = "0" * 64 if bad_sha else ref.sha256
        text = encode_commitment(
            competition_id=competition,
            registry="local",
            repo=ref.repo,
            revision=ref.revision,
            sha256=sha,
        )
        await self.chain.commit(miner, text)
        return miner

    async def take_job(self, validator: Validator, miner: Keypair) -> EvalJob:
        """Receive (and ack) the eval_job of ``miner``'s latest submission."""
        while True:
            job = await validator.recv_type("eval_job")
            await validator.send(Ack.of(job))
            self.jobs[job.job_id] = job
            self.copies[(job.job_id, validator.hotkey)] = job
            if job.miner_hotkey == miner.ss58_address:
                return job

    async def evaluate(
        self, validator: Validator, job: EvalJob, outcomes: dict[str, list[bool]], *, media: bool
    ) -> None:
        """Run a fake-but-faithful evaluation: status, episodes + steps, result."""
        # each validator is sent its own seed: play the copy of the job it received
        job = self.copies.get((job.job_id, validator.hotkey), job)
        tasks = job.benchmark.tasks
        total = len(tasks) * job.benchmark.episodes_per_task
        await validator.status(job.job_id, JobState.RUNNING, 0, total)
        rng = np.random.default_rng(abs(hash((job.job_id, validator.hotkey))) % 2**32)
        index = 0
        played: list[Episode] = []
        for task in tasks:
            for task_episode, success in enumerate(outcomes[task]):
                seed = episode_seed(job.seed, task, task_episode)
                steps = 60 if success else 120
                actions, rewards, succ, obs, _ = reach_episode(rng, success=success, steps=steps)
                cause = None
                if not success and task == "pick-place-v3" and task_episode == 1:
                    cause = FailureCause.AGENT_TIMEOUT
                actions_ref = media_refs = None
                if media:
                    log = ActionLog(
                        benchmark_id=job.benchmark.benchmark_id,
                        task=task,
                        job_id=job.job_id,
                        episode_index=index,
                        seed=seed,
                        max_steps=job.benchmark.max_steps,
                        actions=actions,
                        rewards=rewards,
                        successes=succ,
                    )
                    key = f"episodes/{job.job_id}/{validator.hotkey[:8]}/ep{index}"
                    actions_ref = self.media.put(f"{key}.kact", encode_action_log(log))
                    frame = np.zeros((48, 64, 3), dtype=np.uint8)
                    frame[:, :, 2] = 160
                    frame[20:28, 10 + index * 4 : 18 + index * 4, 0] = 255
                    media_refs = [self.media.put(f"{key}-frame.png", encode_png(frame))]
                episode = Episode(
                    job_id=job.job_id,
                    episode_index=index,
                    task=task,
                    task_episode=task_episode,
                    seed=seed,
                    success=success,
                    total_reward=float(rewards.sum()),
                    steps=steps,
                    steps_to_success=int(np.argmax(succ)) + 1 if succ.any() else None,
                    terminated=bool(success),
                    truncated=not success,
                    failure_cause=cause,
                    failure_detail="no action within 0.5 s" if cause else None,
                    actions_ref=actions_ref,
                    media_refs=media_refs or [],
                    duration_s=0.02 * steps,
                )
                played.append(episode)
                await validator.deliver(episode)
                await validator.deliver(
                    EpisodeSteps(
                        job_id=job.job_id,
                        episode_index=index,
                        batch_index=0,
                        samples=[
                            StepSample(
                                step=t,
                                observation=[float(x) for x in obs[t]],
                                action=[float(x) for x in actions[t]],
                                reward=float(rewards[t]),
                                success=bool(succ[t]),
                            )
                            for t in range(0, steps, 10)
                        ],
                    )
                )
                index += 1
        per_task = {t: task_metrics([e for e in played if e.task == t]) for t in tasks}
        overall = task_metrics(played)
        await validator.status(job.job_id, JobState.RUNNING, total, total)
        now = datetime.now(UTC)
        await validator.deliver(
            EvalResult(
                job_id=job.job_id,
                state=JobState.COMPLETED,
                metrics=EvalMetrics(per_task=per_task, overall=overall),
                started_at=now,
                finished_at=now,
                evaluator_version="dashboard-test",
            )
        )

    async def close(self) -> None:
        for v in self.validators:
            await v.close()
        await self.chain.close()


STRONG = {"reach-v3": [True, True], "push-v3": [True, True], "pick-place-v3": [True, False]}
STRONG_B = {"reach-v3": [True, True], "push-v3": [True, False], "pick-place-v3": [True, False]}
WEAK = {"reach-v3": [True, False], "push-v3": [False, False], "pick-place-v3": [False, False]}


async def seed(stack: Stack) -> None:
    """Two validators, two evaluated miners (one leads), one rejected commitment, weights."""
    await stack.create_competitions()
    va = await stack.add_validator()
    vb = await stack.add_validator()
    leader = await stack.commit("alice", b"alice-bundle-v1")
    job_a = await stack.take_job(va, leader)
    await stack.take_job(vb, leader)
    await stack.evaluate(va, job_a, STRONG, media=True)
    await stack.evaluate(vb, job_a, STRONG_B, media=False)

    challenger = await stack.commit("bob", b"bob-bundle-v1")
    job_b = await stack.take_job(va, challenger)
    await stack.take_job(vb, challenger)
    await stack.evaluate(va, job_b, WEAK, media=True)
    await stack.evaluate(vb, job_b, WEAK, media=False)

    await stack.commit("mallory", b"mallory-bundle", bad_sha=True)

    # A job in flight: one validator is two episodes in, the other has only acked it.
    carol = await stack.commit("carol", b"carol-bundle-v1")
    job_c = await stack.take_job(va, carol)
    await stack.take_job(vb, carol)
    await va.status(job_c.job_id, JobState.RUNNING, 2, len(TASKS) * EPISODES_PER_TASK)

    # The "reach" competition needs an admin's approval: its best becomes a candidate.
    erin = await stack.commit("erin", b"erin-bundle-v1", competition="reach")
    job_e = await stack.take_job(va, erin)
    await stack.take_job(vb, erin)
    for v in (va, vb):
        await stack.evaluate(v, job_e, {"reach-v3": [True, True, True, False]}, media=False)

    async def settled() -> bool:
        board = await stack.get(f"/api/v1/competitions/{COMPETITION}/leaderboard")
        subs = await stack.get("/api/v1/submissions", status="rejected")
        weights = await stack.get("/api/v1/weights")
        leader_ok = (board.get("leader") or {}).get("miner_hotkey") == leader.ss58_address
        candidates = await stack.get("/api/v1/competitions/reach/leaderboard")
        return (
            leader_ok
            and len(board["rows"]) == 2
            and len(candidates["pending_candidates"]) == 1
            and subs["total"] == 1
            and weights["total"] >= 1
        )

    try:
        await wait_for(settled, within=30, what="leaderboard, candidate, rejection and weights")
    except AssertionError:
        board = await stack.get(f"/api/v1/competitions/{COMPETITION}/leaderboard")
        reach = await stack.get("/api/v1/competitions/reach/leaderboard")
        raise AssertionError(
            f"not settled: leader {board.get('leader')}, rows "
            f"{[(r['submission_id'], r.get('reason')) for r in board['rows']]}, reach candidates "
            f"{reach['pending_candidates']}, reach rows "
            f"{[(r['submission_id'], r.get('reason')) for r in reach['rows']]}"
        ) from None
    stack.ids["job_leader"] = job_a.job_id
    stack.ids["job_challenger"] = job_b.job_id
    stack.ids["job_live"] = job_c.job_id
    stack.ids["carol_hotkey"] = carol.ss58_address
    stack.ids["submission_candidate"] = job_e.submission_id
    stack.ids["submission_leader"] = job_a.submission_id
    stack.ids["submission_challenger"] = job_b.submission_id
    stack.ids["leader_hotkey"] = leader.ss58_address
    stack.ids["validators"] = [va.hotkey, vb.hotkey]
    episodes = await stack.get(
        "/api/v1/episodes", job_id=job_a.job_id, validator_hotkey=va.hotkey, limit=50
    )
    with_log = [e for e in episodes["items"] if e["actions_ref"]]
    stack.ids["episode"] = with_log[-1]["id"] if with_log else episodes["items"][0]["id"]
    for _ in range(150):  # until the round is revealed and the episode's log public
        if (await stack.get(f"/api/v1/episodes/{stack.ids['episode']}"))["sealed_until"] is None:
            break
        await asyncio.sleep(0.2)
