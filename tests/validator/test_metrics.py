"""Validator metrics: gauges read from a real validator database, served over HTTP."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kinitro.core.errors import ConfigError
from kinitro.core.prometheus import MetricsServer
from kinitro.jobqueue import JobQueue
from kinitro.protocol.validator_ws import SetWeights
from kinitro.validator.prometheus import ValidatorMetrics

from .factories import make_episode, make_job


def _samples(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        s.name + "".join(f"|{k}={v}" for k, v in sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_gauges_follow_the_database(jq: JobQueue) -> None:
    metrics = ValidatorMetrics(stale_after_s=90)
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0, path="/prom")
    try:
        job = make_job()
        await jq.enqueue_job(job)
        await jq.append_outbox(make_episode(job.job_id, 0))
        await jq.set_connection("connected", last_seen_at=datetime.now(UTC), reconnects=2)
        weights = SetWeights(
            weights_id="w1", netuid=1, weights={0: 1.0}, computed_at=datetime.now(UTC)
        )
        await jq.record_weights(weights)
        metrics.update(await jq.status())
        got = _samples(server.url)
        assert got["kinitro_validator_connected"] == 1
        assert got["kinitro_validator_connection_state|state=connected"] == 1
        assert got["kinitro_validator_reconnects"] == 2
        assert got["kinitro_validator_jobs_queued"] == 1
        assert got["kinitro_validator_outbox_messages"] == 1
        assert got["kinitro_validator_outbox_lag_seconds"] >= 0
        assert got["kinitro_validator_weights_pending"] == 1
        assert math.isinf(got["kinitro_validator_weights_age_seconds"])
        await jq.weights_set("w1", 42)
        await jq.set_connection("disconnected", last_error="gone")
        metrics.update(await jq.status())
        got = _samples(server.url)
        assert got["kinitro_validator_connected"] == 0
        assert got["kinitro_validator_weights_age_seconds"] < 60
        assert got["kinitro_validator_weights_last_set_timestamp_seconds"] > 0
        with pytest.raises(urllib.error.HTTPError):  # only the configured path answers
            _samples(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()


def test_a_taken_port_is_a_clear_error() -> None:
    metrics = ValidatorMetrics(stale_after_s=90)
    first = MetricsServer(metrics.registry, host="127.0.0.1", port=0)
    try:
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{first.port}"):
            MetricsServer(metrics.registry, host="127.0.0.1", port=first.port)
    finally:
        first.close()
