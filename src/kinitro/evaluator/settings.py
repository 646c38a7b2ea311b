"""Evaluator settings (``KINITRO_EVALUATOR_*`` env vars or ``[evaluator]`` in the TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from kinitro.core.settings import KinitroSettings
from kinitro.evaluator.rollout.port import RolloutOptions
from kinitro.protocol.coverage import DEFAULT_MIN_SCORED_SHARE


class Settings(KinitroSettings):
    model_config = SettingsConfigDict(env_prefix="KINITRO_EVALUATOR_", extra="ignore")
    toml_section: ClassVar[str | None] = "evaluator"

    # validator database (the job queue and outbox live there)
    database_url: str | None = None
    concurrency: int = 1
    """Jobs evaluated at the same time by this process."""
    workers_per_job: int = 1
    """Ray rollout actors per job (each with its own agent sandbox)."""
    worker_cpus: float = 1.0
    ray_address: str | None = None
    ray_num_cpus: int | None = None
    max_infra_retries: int = 2
    """Retries of an episode after an infrastructure fault (never scored)."""
    min_scored_share: float = Field(DEFAULT_MIN_SCORED_SHARE, ge=0.0, le=1.0)
    """A job with fewer scored episodes is an infrastructure failure (re-run, never
    reported completed); the backend applies its own, authoritative, share."""
    job_deadline_s: float | None = None
    """Override of the job's own ``deadline_s`` (None: use the job's)."""
    fast_timers: bool = False
    """Short pgqueuer timers (tests, devnet crash drills)."""

    # media (action logs, frames)
    media_url: str = ".kinitro/media"
    """Local directory, ``file://…`` or ``s3://bucket/prefix``."""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    frame_every: int = 0
    """Upload a PNG frame every N steps (only in ``state+rgb`` mode; 0 disables)."""

    # artifacts (agent bundles) and sandbox
    artifacts_dir: Path = Path(".kinitro/artifacts")
    """Local artifact registry (devnet); ``hf`` artifacts come from the Hugging Face Hub."""
    hf_token: SecretStr | None = None
    """Token for private Hugging Face repos (never logged)."""
    hf_endpoint: str | None = None
    bundle_cache_dir: Path = Path(".kinitro/bundles")
    sandbox: Literal["bubblewrap", "kubernetes"] = "bubblewrap"
    """``bubblewrap`` (local, default) or ``kubernetes`` (agent pods)."""
    kubernetes_image: str | None = None
    """Agent pod image (Python + Kinitro runtime + util-linux)."""
    kubernetes_namespace: str = "kinitro-agents"
    kubernetes_bundle_claim: str | None = None
    """PersistentVolumeClaim holding ``bundle_cache_dir`` (mounted read-only in pods)."""
    kubernetes_runtime_class: str | None = None
    """e.g. ``gvisor`` or ``kata``."""
    kubernetes_user_namespaces: bool = True
    """Agent pods in their own user namespace (``hostUsers: false``, Kubernetes ≥ 1.30);
    false omits the field for older clusters."""
    kubernetes_seccomp_profile: str | None = None
    """``Localhost`` seccomp profile on the nodes (e.g.
    ``profiles/kinitro-agent-seccomp.json``); default ``RuntimeDefault``."""
    kubernetes_evaluator_namespace: str | None = None
    """Namespace of the evaluator pods agents admit (default: the agents' own)."""
    kubernetes_evaluator_cidrs: list[str] = Field(default_factory=list)
    """Addresses of evaluators outside the cluster admitted on the RPC port."""
    agent_envs_dir: Path | None = None
    """Built agent environments, one directory per profile (default: ``agent-envs`` in
    the evaluator's own Python environment, where ``scripts/bootstrap`` builds them)."""
    sandbox_memory_mb: int = 4096
    """Memory limit of each agent sandbox (its cgroup: shared memory, memfd and tmpfs
    included, no swap)."""
    sandbox_cpus: float = Field(default=1.0, gt=0, le=64)
    """CPU quota of each agent sandbox, in cores (on the rollout worker's own core)."""
    sandbox_max_processes: int = Field(default=64, ge=4, le=4096)
    """Processes and threads of each agent sandbox."""
    sandbox_allow_no_cgroup: bool = False
    """Run sandboxes without cgroup limits when the host has none (development only: the
    evaluator logs a loud warning; by default it refuses to start)."""
    sandbox_cpu_seconds: int = 3600
    """CPU-time limit of each agent sandbox (a whole job's worth of agent compute)."""
    pin_workers: bool = True
    """Pin each rollout actor and its agent to one core (same-core RPC round trips)."""
    env_slots: int = Field(default=8, ge=1, le=64)
    """Episodes each rollout actor plays at once on one agent connection (one round trip
    per step for all of them); capped by the ``slots`` the agent's manifest allows."""
    action_timeout_s: float = 1.0
    reset_timeout_s: float = 10.0
    host_factor: float | None = Field(None, ge=1.0, le=1000.0)
    """This host's calibration (:mod:`kinitro.evaluator.calibration`): scales the agent's
    per-step allowance and its call deadlines. None: measured when the evaluator starts."""
    start_timeout_s: float = 30.0

    telemetry_batch: int = 64
    """Most outbox messages written in one transaction (whole episodes; fewer when idle)."""
    telemetry_retry_s: float = Field(default=60.0, gt=0)
    """How long a failing outbox write is retried before the job is re-queued (it is never
    completed with telemetry missing)."""
    log_level: str = "INFO"

    # Prometheus metrics (docs/ops/metrics.md)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """Serve metrics on this port (None: off; 0: any free port, logged)."""
    metrics_host: str = "127.0.0.1"
    metrics_path: str = "/metrics"

    @model_validator(mode="after")
    def _kubernetes_is_complete(self) -> Settings:
        # Refused at startup, not discovered by every job's first sandbox start.
        missing = [
            name
            for name in ("kubernetes_image", "kubernetes_bundle_claim")
            if self.sandbox == "kubernetes" and not getattr(self, name)
        ]
        if missing:
            raise ValueError(
                "sandbox=kubernetes needs "
                + " and ".join(f"{m} (KINITRO_EVALUATOR_{m.upper()})" for m in missing)
            )
        return self

    def bubblewrap_options(self) -> dict[str, object]:
        """``BubblewrapSandbox`` options for the sandbox launcher (picklable)."""
        return {
            "agent_envs": str(self.agent_envs_dir) if self.agent_envs_dir else None,
            "allow_no_cgroup": self.sandbox_allow_no_cgroup,
        }

    def sandbox_limits(self) -> dict[str, object]:
        """``SandboxLimits`` fields for the sandbox launcher (picklable)."""
        return {
            "memory_bytes": self.sandbox_memory_mb * 1024 * 1024,
            "cpu_seconds": self.sandbox_cpu_seconds,
            "cpus": self.sandbox_cpus,
            "max_processes": self.sandbox_max_processes,
            "start_timeout_s": self.start_timeout_s,
        }

    def kubernetes_options(self) -> dict[str, object]:
        """``KubernetesConfig`` fields for the sandbox launcher (empty for bubblewrap)."""
        if self.sandbox != "kubernetes":
            return {}
        return {
            "image": self.kubernetes_image,
            "namespace": self.kubernetes_namespace,
            "bundle_volume": {
                "persistentVolumeClaim": {
                    "claimName": self.kubernetes_bundle_claim,
                    "readOnly": True,
                }
            },
            "bundle_root": str(self.bundle_cache_dir.resolve()),
            "runtime_class_name": self.kubernetes_runtime_class,
            "host_users": False if self.kubernetes_user_namespaces else None,
            "seccomp_localhost_profile": self.kubernetes_seccomp_profile,
            "evaluator_namespace": self.kubernetes_evaluator_namespace,
            "evaluator_cidrs": list(self.kubernetes_evaluator_cidrs),
        }

    def rollout_options(self) -> RolloutOptions:
        """How each job's episodes are played (workers, slots, media)."""
        return RolloutOptions(
            workers=self.workers_per_job,
            worker_cpus=self.worker_cpus,
            max_infra_retries=self.max_infra_retries,
            pin_workers=self.pin_workers,
            env_slots=self.env_slots,
            media_url=self.media_url,
            media_options=self.media_options(),
            frame_every=self.frame_every,
            host_factor=self.host_factor or 1.0,
        )

    def media_options(self) -> dict[str, object]:
        if not self.media_url.startswith("s3://"):
            return {}
        secret = self.s3_secret_access_key
        return {
            "endpoint_url": self.s3_endpoint_url,
            "region": self.s3_region,
            "access_key_id": self.s3_access_key_id,
            "secret_access_key": secret.get_secret_value() if secret else None,
        }
