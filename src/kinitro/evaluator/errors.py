"""Evaluator exception tree (see :mod:`kinitro.evaluator`)."""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class EvaluatorError(KinitroError):
    """Root of every error the evaluator raises on purpose."""


class UnknownBenchmarkError(EvaluatorError):
    """The benchmark id or one of its tasks is not registered."""


class EpisodeLogError(EvaluatorError):
    """An episode log (action log, replay record) is missing or malformed."""


class ReplayMismatchError(EvaluatorError):
    """A re-simulated episode does not reproduce the logged rewards or success."""


class JobError(EvaluatorError):
    """A job cannot be run (bad spec, missing artifact)."""
