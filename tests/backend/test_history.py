"""The history series behind the dashboard's charts: a competition's success over time and
the validators' throughput, from results played over the real validator WebSocket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kinitro.backend.api.history import window
from kinitro.storage.artifacts import LocalRegistry

from .conftest import Net, create_competition, login
from .playing import play
from .test_flow import commit_artifact, get


async def test_success_and_throughput_series(
    make_backend: Any, net: Net, registry: LocalRegistry
) -> None:
    async with make_backend() as backend:
        await create_competition(backend, replication=2)
        empty = await get(backend, "/api/v1/competitions/mt1/history")
        assert empty["points"] == [] and empty["competition_id"] == "mt1"
        va, vb = await net.validator(), await net.validator()
        a, _ = await login(backend, va)
        b, _ = await login(backend, vb)
        await commit_artifact(net, registry, content=b"strong")
        strong_a = await a.recv_type("eval_job", within=15)
        strong_b = await b.recv_type("eval_job", within=15)
        await commit_artifact(net, registry, content=b"weak", repo="other/agent")
        weak_a = await a.recv_type("eval_job", within=15)
        # the strong miner wins both its episodes on both validators, the weak one none
        assert (await play(a, strong_a, 2)).ok
        assert (await play(b, strong_b, 2)).ok
        assert (await play(a, weak_a, 0)).ok

        history = await get(backend, "/api/v1/competitions/mt1/history", bucket_s=3600)
        assert history["bucket_s"] == 3600
        [point] = history["points"]
        assert (point["episodes"], point["successes"]) == (6, 4)
        assert point["success_rate"] == 4 / 6 and point["best_success_rate"] == 1.0

        throughput = await get(backend, "/api/v1/validators/throughput", window_s=600)
        by_hotkey = {v["validator_hotkey"]: v for v in throughput["validators"]}
        assert (by_hotkey[va.ss58_address]["jobs"], by_hotkey[va.ss58_address]["episodes"]) == (
            2,
            4,
        )
        assert by_hotkey[vb.ss58_address]["episodes"] == 2
        assert throughput["validators"][0]["validator_hotkey"] == va.ss58_address  # busiest
        assert sum(p["episodes"] for p in by_hotkey[va.ss58_address]["points"]) == 4

        async with backend.client() as http:
            missing = await http.get("/api/v1/competitions/nope/history")
            assert missing.status_code == 404
            bad = await http.get("/api/v1/validators/throughput", params={"bucket_s": 1})
            assert bad.status_code == 422
        await a.close()
        await b.close()


def test_default_windows_fit_the_data() -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    # a devnet 5 minutes old: ~48 buckets of 10 s
    since, bucket = window(now - timedelta(minutes=5), None, None, now)
    assert bucket == timedelta(seconds=10) and now - since == timedelta(seconds=301)
    # no results yet: the last hour
    since, bucket = window(None, None, None, now)
    assert bucket == timedelta(seconds=300)
    # months of data: 30 days in day-wide buckets at most 500 of them
    since, bucket = window(now - timedelta(days=200), None, None, now)
    assert now - since == timedelta(days=30, seconds=1) and bucket == timedelta(days=1)
    # a narrow bucket over a wide window is widened to 500 buckets
    _, bucket = window(None, 90 * 86_400, 10, now)
    assert bucket == timedelta(seconds=90 * 86_400 / 500)
