"""Evaluator role: runs queued jobs against benchmarks with untrusted agents in sandboxes.

Modules: ``envs/`` (benchmark providers, task environments, seeding), ``metrics``
(success rate, Wilson interval, failure causes), ``rollout/`` (the episode loop, Ray
rollout workers, the work-distribution port), ``runner`` (one evaluation, awaited on the
event loop), ``episode_logger`` (action logs, step samples, media), ``telemetry``
(episode messages with stable ids, written to the outbox), ``replay`` (re-simulate a
logged episode), ``round_verify`` (``kinitro round verify``: a revealed round against the
chain, its episodes' seeds and logs, replays), ``render`` (a video of a logged episode,
replayed), ``orchestrator`` (``kinitro evaluator
run``: consumer, lifecycle, deadlines, recovery, cancellation).

Exceptions::

    EvaluatorError (KinitroError)
    ├── UnknownBenchmarkError       benchmark id or task not registered
    ├── EpisodeLogError             action log / replay record missing or malformed
    ├── TelemetryError              the outbox kept refusing a job's telemetry (retried)
    ├── RoundVerifyError            a round cannot be checked (unknown, backend unreachable)
    ├── RenderUnavailable           no headless rendering (EGL/OSMesa) or no PyAV here
    ├── EpisodesAbandoned           the job was cancelled mid-batch (caught by the worker)
    ├── AgentFailure                the agent misbehaved (``agent_client``; has a ``cause``)
    │   ├── AgentTimeout            no answer within the call deadline
    │   ├── AgentCrashed            connection lost, agent code raised, bundle failed to load
    │   ├── AgentInvalidAction      wrong dtype/shape, NaN/Inf
    │   └── AgentProtocolViolation  malformed frame, wrong request id, unexpected message
    └── SandboxError                the sandbox itself failed (``sandbox``; infrastructure)
        ├── SandboxStartError       could not be created or did not become ready
        │   └── SandboxStartFailed  the launcher's start failure (``cause`` sandbox_start)
        ├── SandboxUnavailable      this backend cannot run on this host
        ├── SandboxHostError        the host cannot run sandboxes as configured (startup)
        └── CgroupError             a cgroup could not be created, configured or removed

Agent faults and infrastructure faults inside an episode are not exceptions that escape:
they are recorded as data (``FailureCause``) on the episode result.
"""
