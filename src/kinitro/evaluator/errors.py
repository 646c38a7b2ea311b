"""Evaluator exception tree (drawn in :mod:`kinitro.evaluator`)."""

from __future__ import annotations

from kinitro.core.errors import KinitroError


class EvaluatorError(KinitroError):
    """Root of every error the evaluator raises on purpose."""


class UnknownBenchmarkError(EvaluatorError):
    """The benchmark id or one of its tasks is not registered."""


class EpisodeLogError(EvaluatorError):
    """An episode log (action log, replay record) is missing or malformed."""


class RenderUnavailable(EvaluatorError):
    """This machine cannot render headless (no EGL/OSMesa), or PyAV is missing: no video."""


class TelemetryError(EvaluatorError):
    """A job's telemetry could not be written to the outbox within the retry budget.

    Infrastructure trouble, never the miner's: the job is not completed; it is re-queued
    (and fails with this cause once its attempts are spent)."""


class RoundVerifyError(EvaluatorError):
    """``round verify`` cannot check the round at all (unknown round, backend unreachable);
    what does not hold in a round is a finding, not an exception."""
