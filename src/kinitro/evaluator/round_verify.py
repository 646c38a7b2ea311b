"""``kinitro round verify``: check a revealed round against the chain, and its episodes.

Anyone can run it after a round's reveal (docs/protocol.md, "Sealed rounds"):

1. the round (``/api/v1/rounds/{id}``) names a commitment, the hotkey that wrote it and
   its block; the chain must hold exactly that text for that hotkey as of that block, and
   the revealed secret must be the one it binds (:func:`kinitro.protocol.rounds.check_reveal`);
2. every validator's seed derives from the secret and its hotkey, and every episode's
   seed from that; each published episode must carry that seed, and so must the header of
   its action log, which must also name the episode (job, index, task) and add up to its
   published aggregates (steps, return, success);
3. a sample of episodes (``--sample``, drawn reproducibly from the secret) is
   re-simulated from its log (:func:`kinitro.evaluator.replay.replay`), under the knobs
   its job prescribed and against its published step samples.

Each problem is a :class:`Finding` naming the episode; the round verifies only without
any. The backend is read over HTTP (rate limits honoured), the chain through the
``ChainClient`` port.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from kinitro.evaluator.envs import EnvConfig, get_benchmark
from kinitro.evaluator.episode_logger import decode_action_log
from kinitro.evaluator.errors import EpisodeLogError, EvaluatorError, RoundVerifyError
from kinitro.evaluator.replay import replay
from kinitro.protocol.conditions import Conditions
from kinitro.protocol.errors import CommitmentError
from kinitro.protocol.rounds import check_reveal, episode_seed, validator_seed

if TYPE_CHECKING:
    from kinitro.chain.port import ChainClient
    from kinitro.evaluator.episode_logger import ActionLog

PAGE = 500
RETURN_ATOL = 1e-6
MAX_RETRIES = 8


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not hold; ``episode`` names it (None: the round itself)."""

    problem: str
    episode: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        ep = self.episode or {}
        return {
            "problem": self.problem,
            "episode_id": ep.get("id"),
            "job_id": ep.get("job_id"),
            "validator_hotkey": ep.get("validator_hotkey"),
            "episode_index": ep.get("episode_index"),
        }

    def __str__(self) -> str:
        if self.episode is None:
            return self.problem
        ep = self.episode
        return (
            f"episode {ep['id']} (job {ep['job_id']}, validator {ep['validator_hotkey']}, "
            f"#{ep['episode_index']}): {self.problem}"
        )


@dataclass
class VerifyReport:
    round_id: str
    round: dict[str, Any]
    commitment_on_chain: bool = False
    reveal_matches: bool = False
    validators: dict[str, int] = field(default_factory=dict)
    episodes: int = 0
    logs_checked: int = 0
    missing_logs: int = 0
    replayed: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and self.commitment_on_chain and self.reveal_matches

    def to_dict(self) -> dict[str, Any]:
        return {
            "round_id": self.round_id,
            "ok": self.ok,
            "commitment": self.round.get("commitment"),
            "commit_block": self.round.get("commit_block"),
            "committer_hotkey": self.round.get("committer_hotkey"),
            "commitment_on_chain": self.commitment_on_chain,
            "reveal_matches": self.reveal_matches,
            "validators": {k: str(v) for k, v in self.validators.items()},
            "episodes": self.episodes,
            "logs_checked": self.logs_checked,
            "missing_logs": self.missing_logs,
            "replayed": self.replayed,
            "failures": [f.to_dict() for f in self.findings],
        }


class _Backend:
    """GETs on the backend that wait out its rate limit (429 + Retry-After)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def get(self, path: str, **params: Any) -> httpx.Response:
        for _ in range(MAX_RETRIES):
            try:
                response = await self.http.get(path, params=params or None)
            except httpx.HTTPError as exc:
                raise RoundVerifyError(f"backend unreachable ({path}): {exc}") from exc
            if response.status_code != 429:
                return response
            await asyncio.sleep(min(10.0, float(response.headers.get("Retry-After") or 1)))
        raise RoundVerifyError(f"backend keeps answering 429 to {path}")

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.get(path, **params)
        if response.status_code == 404:
            raise RoundVerifyError(f"{path}: not found")
        if response.status_code != 200:
            raise RoundVerifyError(f"{path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json()


async def verify_round(
    http: httpx.AsyncClient,
    chain: ChainClient,
    round_id: str,
    *,
    sample: int = 3,
    committer: str | None = None,
) -> VerifyReport:
    """Check ``round_id`` (see the module docstring); never raises for a finding."""
    backend = _Backend(http)
    rnd = await backend.json(f"/api/v1/rounds/{round_id}")
    report = VerifyReport(round_id, rnd)
    secret = await _check_commitment(report, chain, committer)
    if secret is None:
        return report
    episodes = await _episodes(backend, round_id)
    report.episodes = len(episodes)
    logs: list[tuple[dict[str, Any], ActionLog]] = []
    for ep in episodes:
        base = report.validators.setdefault(
            ep["validator_hotkey"], validator_seed(secret, ep["validator_hotkey"])
        )
        expected = episode_seed(base, ep["task"], ep["task_episode"])
        if ep["seed"] != expected:
            report.findings.append(
                Finding(f"published seed {ep['seed']} is not the derived seed {expected}", ep)
            )
        log = await _check_log(report, backend, ep, expected)
        if log is not None:
            logs.append((ep, log))
    if sample > 0 and logs:
        picked = random.Random(secret).sample(logs, min(sample, len(logs)))
        for ep, log in picked:
            await _replay(report, backend, ep, log)
    return report


async def _check_commitment(
    report: VerifyReport, chain: ChainClient, committer: str | None
) -> bytes | None:
    """The revealed secret (None when there is none to check the episodes with)."""
    rnd = report.round
    if rnd.get("secret") is None:
        report.findings.append(
            Finding(f"round {report.round_id} is not revealed (sealed until {rnd['sealed_until']})")
        )
        return None
    hotkey, block = rnd.get("committer_hotkey"), rnd.get("commit_block")
    if hotkey is None or block is None:
        report.findings.append(Finding("the round's commitment was never written on chain"))
    else:
        if committer is not None and hotkey != committer:
            report.findings.append(
                Finding(f"the round was committed by {hotkey}, not by {committer}")
            )
        record = await chain.commitment(hotkey, block)
        if record is None or record.block != block:
            report.findings.append(Finding(f"no commitment of {hotkey} at block {block} on chain"))
        elif record.data != rnd["commitment"]:
            report.findings.append(
                Finding(
                    f"the chain holds {record.data!r} for {hotkey} at block {block}, "
                    f"not the published commitment {rnd['commitment']!r}"
                )
            )
        else:
            report.commitment_on_chain = True
    try:
        secret = check_reveal(report.round_id, rnd["secret"], rnd["commitment"] or "")
    except CommitmentError as exc:
        report.findings.append(Finding(f"the reveal does not match the commitment: {exc}"))
        try:
            return bytes.fromhex(rnd["secret"])  # still check the episodes against it
        except ValueError:
            return None
    report.reveal_matches = True
    return secret


async def _episodes(backend: _Backend, round_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = await backend.json(
            "/api/v1/episodes", round_id=round_id, limit=PAGE, offset=len(out)
        )
        out.extend(page["items"])
        if not page["items"] or len(out) >= page["total"]:
            return out


async def _check_log(
    report: VerifyReport, backend: _Backend, ep: dict[str, Any], expected: int
) -> ActionLog | None:
    """The episode's action log if it is consistent with the episode (else findings)."""
    url = ep.get("actions_url")
    if not url:
        report.missing_logs += 1
        return None
    response = await backend.get(url)
    if response.status_code == 404:
        report.missing_logs += 1
        return None
    if response.status_code != 200:
        report.findings.append(Finding(f"action log unreadable: HTTP {response.status_code}", ep))
        return None
    report.logs_checked += 1
    try:
        log = decode_action_log(response.content)
    except EpisodeLogError as exc:
        report.findings.append(Finding(f"action log does not decode: {exc}", ep))
        return None
    problems = []
    if log.seed != expected:
        problems.append(f"its seed {log.seed} is not the derived seed {expected}")
    if (log.job_id, log.episode_index, log.task) != (ep["job_id"], ep["episode_index"], ep["task"]):
        problems.append(f"it names job {log.job_id} #{log.episode_index} ({log.task})")
    if log.steps != ep["steps"]:
        problems.append(f"it has {log.steps} steps, the episode {ep['steps']}")
    if not math.isclose(float(log.rewards.sum()), ep["total_reward"], abs_tol=RETURN_ATOL):
        problems.append(f"its return {float(log.rewards.sum())} is not {ep['total_reward']}")
    if bool(log.successes.any()) != ep["success"]:
        problems.append(f"its success {bool(log.successes.any())} is not {ep['success']}")
    if problems:
        report.findings.append(Finding("action log: " + "; ".join(problems), ep))
        return None
    return log


async def _replay(
    report: VerifyReport, backend: _Backend, ep: dict[str, Any], log: ActionLog
) -> None:
    job = await backend.json(f"/api/v1/jobs/{ep['job_id']}")
    prescribed = Conditions.model_validate(job["benchmark"].get("conditions") or {})
    try:  # as the rollout worker resolves them: the benchmark's default goal visibility
        bench = get_benchmark(log.benchmark_id, [log.task])
    except EvaluatorError as exc:
        report.findings.append(Finding(f"replay impossible: {exc}", ep))
        return
    conditions = EnvConfig(max_steps=log.max_steps, conditions=prescribed).resolved(bench)
    observations: dict[int, list[float]] = {}
    offset = 0
    while True:
        batches = await backend.json(
            f"/api/v1/episodes/{ep['id']}/steps", limit=PAGE, offset=offset
        )
        for batch in batches["items"]:
            for sample in batch["samples"]:
                observations[int(sample["step"])] = [float(x) for x in sample["observation"]]
        offset += len(batches["items"])
        if not batches["items"] or offset >= batches["total"]:
            break
    try:
        result = await asyncio.to_thread(
            replay, log, observations, conditions=conditions.conditions
        )
    except EvaluatorError as exc:
        report.findings.append(Finding(f"replay failed: {exc}", ep))
        return
    report.replayed += 1
    if not result.ok:
        first = result.first_mismatch_step or result.first_observation_mismatch_step
        why = "knobs differ from the job's" if not result.conditions_match else f"step {first}"
        report.findings.append(Finding(f"replay does not match its log ({why})", ep))
