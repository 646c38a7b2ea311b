"""Evaluator role: runs queued jobs against benchmarks with untrusted agents in sandboxes.

Modules: ``envs/`` (benchmark providers, task environments, seeding), ``metrics``
(success rate, Wilson interval, failure causes), ``rollout/`` (the episode loop and Ray
rollout workers), ``episode_logger`` (action logs, step samples, media, telemetry batches),
``replay`` (re-simulate a logged episode), ``orchestrator`` (``kinitro evaluator run``:
pgqueuer consumer, lifecycle, deadlines, recovery).

Exceptions::

    EvaluatorError (KinitroError)
    ├── UnknownBenchmarkError   benchmark id or task not registered
    ├── EpisodeLogError         action log / replay record missing or malformed
    ├── ReplayMismatchError     re-simulation does not reproduce a logged episode
    └── JobError                a job cannot be run (bad spec, missing artifact)

Agent faults and infrastructure faults inside an episode are not exceptions that escape:
they are recorded as data (``FailureCause``) on the episode result.
"""
