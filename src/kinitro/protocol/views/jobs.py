"""Submissions, jobs, results, episodes and their videos."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from kinitro.protocol.common import BenchmarkSpec, EvalMetrics, JobState
from kinitro.protocol.views._base import Json, View
from kinitro.protocol.views.competitions import ExplainedScore


class Submission(View):
    id: int
    competition_id: str | None
    miner_hotkey: str
    miner_uid: int | None
    commitment: str
    commitment_block: int
    artifact_registry: str | None
    artifact_repo: str | None
    artifact_revision: str | None
    artifact_sha256: str | None
    artifact_size: int | None
    status: str
    rejection_reason: str | None
    rejection_detail: str | None
    credited_submission_id: int | None
    deterministic: bool | None = None
    created_at: datetime
    updated_at: datetime


class SubmissionRerun(View):
    submission_id: int
    status: str
    jobs_requeued: int


# ------------------------------------------------------------------------- jobs


class JobRow(View):
    """An evaluation job (a row of the jobs table)."""

    id: str
    submission_id: int
    competition_id: str
    benchmark_id: str
    benchmark: BenchmarkSpec
    round_id: str
    audit_of_job: str | None = None
    audit_of_validator: str | None = None
    audit_of_episode: int | None = None
    replication: int
    deadline_s: int
    state: JobState
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class Job(JobRow):
    """A job with its submission's miner."""

    miner_hotkey: str
    miner_uid: int | None = None


class Assignment(View):
    """A job handed to one validator: its state, lease and delivery."""

    id: int
    job_id: str
    validator_hotkey: str
    message_id: str
    attempt: int
    state: str
    lease_expires_at: datetime
    sent_at: datetime | None
    acked_at: datetime | None
    finished_at: datetime | None
    result_held_since: datetime | None
    created_at: datetime


class JobStatus(View):
    """A validator's report of a job's state and progress (``seq`` orders them)."""

    id: int
    job_id: str
    validator_hotkey: str
    seq: int
    state: str
    detail: str | None
    episodes_done: int
    episodes_total: int
    at: datetime
    received_at: datetime


class Result(View):
    """A validator's final result of a job (``error`` reads as its cause until the
    round's reveal, ``sealed_until``)."""

    id: int
    job_id: str
    validator_hotkey: str
    state: str
    metrics: EvalMetrics | None
    success_rate: float | None
    episodes: int | None
    successes: int | None
    error: str | None
    failure_cause: str | None
    started_at: datetime | None
    finished_at: datetime | None
    evaluator_version: str | None
    runtime: Json | None
    runtime_key: str | None
    received_at: datetime
    sealed_until: datetime | None


class ListedResult(Result):
    """A result in ``GET /api/v1/results``, with its job's submission and benchmark."""

    submission_id: int
    benchmark_id: str
    competition_id: str


class JobDetail(Job):
    """A job with its assignments, status history and results."""

    sealed_until: datetime | None
    assignments: list[Assignment]
    status_history: list[JobStatus]
    results: list[Result]


class SubmissionDetail(Submission):
    """A submission with its jobs, results and score."""

    jobs: list[JobRow]
    results: list[Result]
    score: ExplainedScore | None


class JobAction(View):
    """What an admin action left a job in."""

    job_id: str
    state: str


class Episode(View):
    """An episode summary with the links of its action log and media. Before its round's
    reveal ``seed`` is null, ``failure_detail`` reads as the cause only and the links
    answer 403 until ``sealed_until``."""

    id: int
    job_id: str
    validator_hotkey: str
    episode_index: int
    task: str
    task_episode: int
    seed: int | None
    success: bool
    total_reward: float
    steps: int
    steps_to_success: int | None
    terminated: bool
    truncated: bool
    failure_cause: str | None
    failure_detail: str | None
    actions_ref: str | None
    media_refs: list[str]
    duration_s: float
    received_at: datetime
    submission_id: int
    competition_id: str
    round_id: str
    sealed_until: datetime | None
    actions_url: str | None
    media_urls: list[str]


class StepSample(View):
    """One logged environment step."""

    step: int
    observation: list[float]
    action: list[float]
    reward: float
    success: bool
    info: Json = Field(default_factory=dict)


class StepBatch(View):
    """A batch of an episode's logged step samples."""

    id: int
    job_id: str
    validator_hotkey: str
    episode_index: int
    batch_index: int
    first_step: int
    n_samples: int
    samples: list[StepSample]
    received_at: datetime


class VideoReport(View):
    """What a render worker rendered: frame ``i`` shows the state after step
    ``min(i * every, steps)``, played at ``fps``."""

    format: str | None = None
    frames: int | None = None
    every: int = 1
    fps: float = 25
    steps: int | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    render_s: float | None = None


class VideoStatus(View):
    """An episode's video: ``state`` none | queued | rendering | done | failed."""

    episode_id: int
    state: str
    has_action_log: bool
    sealed_until: datetime | None
    worker_seen: bool
    origin: str | None = None
    progress: float | None = None
    error: str | None = None
    queue_position: int | None = None
    video_url: str | None = None
    video: VideoReport | None = None


class RenderClaim(View):
    """The render a worker claimed."""

    render_id: int
    episode_id: int
    actions_ref: str
    steps: int
    video_ref: str
    lease_s: float


class RenderState(View):
    render_id: int
    state: str
