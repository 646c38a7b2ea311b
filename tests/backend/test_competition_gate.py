"""The activation gate over the real admin REST API: a competition that Meta-World's
scripted experts would own is not activated unless an admin forces it.

Every way to make a competition active is tried (create active, activate, PATCH active,
PATCH the benchmarks or the limit of an active one), with baselines missing, stale,
for other benchmarks, saturated and fine; and once end to end with baselines computed by
``kinitro evaluator baselines`` and uploaded by it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from typing import Any

from kinitro.protocol.baselines import baseline_fingerprint
from kinitro.protocol.common import BenchmarkSpec
from kinitro.protocol.presets import PRESETS

from .conftest import ADMIN_KEY, Backend

ADMIN = "/api/v1/admin/competitions"
REACH = {
    "benchmark_id": "metaworld/MT1-reach-v3",
    "tasks": ["reach-v3"],
    "episodes_per_task": 2,
    "max_steps": 100,
}


def _baselines(benchmarks: list[dict[str, Any]], expert: float) -> dict[str, Any]:
    specs = [BenchmarkSpec.model_validate(b) for b in benchmarks]

    def score(rate: float) -> dict[str, Any]:
        return {
            "episodes": 10,
            "scored_episodes": 10,
            "successes": round(10 * rate),
            "success_rate": rate,
            "ci_low": max(0.0, rate - 0.2),
            "ci_high": min(1.0, rate + 0.2),
            "mean_return": 1.0,
            "steps": 1000,
            "seconds": 1.0,
        }

    return {
        "fingerprint": baseline_fingerprint(specs),
        "seed": 0,
        "episodes_per_task": 10,
        "computed_at": datetime.now(UTC).isoformat(),
        "kinitro_version": "test",
        "agents": {"zero": score(0.0), "random": score(0.0), "expert": score(expert)},
    }


def _body(cid: str, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "name": cid, "benchmarks": [REACH], "max_expert_baseline": 0.5, **extra}


async def test_no_way_to_activate_a_saturated_competition_without_force(backend: Backend) -> None:
    async with backend.client() as admin:
        # created active with a limit but no baselines: refused, nothing stored
        refused = await admin.post(ADMIN, json=_body("sat", active=True))
        assert refused.status_code == 409, refused.text
        assert "no baselines" in refused.json()["detail"]
        assert (await admin.get("/api/v1/competitions/sat")).status_code == 404
        assert (await admin.post(ADMIN, json=_body("sat"))).status_code == 201
        for attempt in (
            admin.post(f"{ADMIN}/sat/activate"),
            admin.patch(f"{ADMIN}/sat", json={"active": True}),
        ):
            response = await attempt
            assert response.status_code == 409, response.text
            assert "no baselines" in response.json()["detail"]
        # baselines for other benchmarks are refused outright
        other = _baselines([{**REACH, "max_steps": 99}], expert=0.0)
        stale = await admin.put(f"{ADMIN}/sat/baselines", json=other)
        assert stale.status_code == 409 and "other benchmarks" in stale.json()["detail"]
        # a saturated expert baseline: refused by every route, with the figure named
        stored = await admin.put(f"{ADMIN}/sat/baselines", json=_baselines([REACH], 0.9))
        assert stored.status_code == 200 and stored.json()["baselines"]["agents"]["expert"]
        for attempt in (
            admin.post(f"{ADMIN}/sat/activate"),
            admin.patch(f"{ADMIN}/sat", json={"active": True}),
            admin.patch(f"{ADMIN}/sat", json={"active": True, "name": "renamed"}),
        ):
            response = await attempt
            assert response.status_code == 409, response.text
            assert "0.900" in response.json()["detail"] and "force" in response.json()["detail"]
        public = (await admin.get("/api/v1/competitions/sat")).json()
        assert public["active"] is False and public["name"] == "sat"
        assert public["baselines"]["agents"]["expert"]["success_rate"] == 0.9
        # force is the admin's explicit override
        forced = await admin.post(f"{ADMIN}/sat/activate", params={"force": "true"})
        assert forced.status_code == 200 and forced.json()["active"] is True
        # unrelated changes to a forced competition are not re-gated...
        unrelated = await admin.patch(f"{ADMIN}/sat", json={"min_leader_score": 0.1})
        assert unrelated.status_code == 200
        # ...changes to what the gate looks at are
        limit = await admin.patch(f"{ADMIN}/sat", json={"max_expert_baseline": 0.8})
        assert limit.status_code == 409


async def test_gate_passes_and_follows_changes_of_an_active_competition(backend: Backend) -> None:
    async with backend.client() as admin:
        assert (await admin.post(ADMIN, json=_body("ok"))).status_code == 201
        fine = _baselines([REACH], expert=0.2)
        assert (await admin.put(f"{ADMIN}/ok/baselines", json=fine)).status_code == 200
        active = await admin.post(f"{ADMIN}/ok/activate")
        assert active.status_code == 200 and active.json()["active"] is True
        # lowering the limit under the measured expert would leave it saturated
        low = await admin.patch(f"{ADMIN}/ok", json={"max_expert_baseline": 0.1})
        assert low.status_code == 409 and "0.200" in low.json()["detail"]
        # new benchmarks: the baselines described the old ones
        knobs = {**REACH, "conditions": {"action_delay": 2}}
        changed = await admin.patch(f"{ADMIN}/ok", json={"benchmarks": [knobs]})
        assert changed.status_code == 409 and "no baselines" in changed.json()["detail"]
        kept = (await admin.get("/api/v1/competitions/ok")).json()
        assert (
            kept["baselines"] is not None
            and kept["benchmarks"][0]["conditions"]["action_delay"] == 0
        )
        forced = await admin.patch(
            f"{ADMIN}/ok", json={"benchmarks": [knobs]}, params={"force": "true"}
        )
        assert forced.status_code == 200 and forced.json()["baselines"] is None
        # the same benchmarks again (no change of episodes) keep the baselines
        again = _baselines(forced.json()["benchmarks"], expert=0.2)
        assert (await admin.put(f"{ADMIN}/ok/baselines", json=again)).status_code == 200
        same = await admin.patch(f"{ADMIN}/ok", json={"benchmarks": forced.json()["benchmarks"]})
        assert same.status_code == 200 and same.json()["baselines"] is not None
        # no limit, no gate (the devnet's reach competition)
        free = await admin.post(ADMIN, json=_body("free", max_expert_baseline=None, active=True))
        assert free.status_code == 201


async def test_competitions_from_presets(backend: Backend) -> None:
    async with backend.client() as admin:
        listed = (await admin.get("/api/v1/admin/competition-presets")).json()
        assert {p["name"] for p in listed} == set(PRESETS)
        gen = PRESETS["generalization"]
        refused = await admin.post(
            ADMIN, json={"id": "gen", "name": "Gen", "preset": "generalization", "active": True}
        )
        assert refused.status_code == 409  # its limit applies; no baselines yet
        made = await admin.post(
            ADMIN, json={"id": "gen", "name": "Gen", "preset": "generalization"}
        )
        assert made.status_code == 201, made.text
        row = made.json()
        assert row["max_expert_baseline"] == gen.max_expert_baseline
        assert row["benchmarks"] == [b.model_dump(mode="json") for b in gen.benchmarks]
        assert row["benchmarks"][0]["conditions"]["reveal_goal"] is False
        own = await admin.post(
            ADMIN,
            json={"id": "gen2", "name": "G", "preset": "generalization", "max_expert_baseline": 1},
        )
        assert own.status_code == 201 and own.json()["max_expert_baseline"] == 1
        unknown = await admin.post(ADMIN, json={"id": "x", "name": "X", "preset": "nope"})
        assert unknown.status_code == 422 and "generalization" in unknown.text


async def test_baselines_computed_and_uploaded_by_the_cli_gate_activation(
    backend: Backend,
) -> None:
    """End to end: real reference agents on MT1 reach; the expert solves it, so a
    competition limited to 0.5 is refused, with the measured figure."""
    async with backend.client() as admin:
        assert (await admin.post(ADMIN, json=_body("reach"))).status_code == 201
    code, out, err = await _baselines_cli(
        "reach", "--backend", backend.url, "--episodes", "1", "--upload", key=ADMIN_KEY
    )
    assert code == 0, err
    assert "expert" in out
    async with backend.client() as admin:
        stored = (await admin.get("/api/v1/competitions/reach")).json()["baselines"]
        assert stored["agents"]["expert"]["success_rate"] == 1.0
        assert stored["agents"]["zero"]["success_rate"] == 0.0
        refused = await admin.post(f"{ADMIN}/reach/activate")
        assert refused.status_code == 409 and "1.000" in refused.json()["detail"]
    # uploading without the admin key is refused and stores nothing new
    code, _, err = await _baselines_cli("--preset", "generalization", "--upload", key=None)
    assert code == 2 and "--upload needs" in err


async def _baselines_cli(*args: str, key: str | None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KINITRO_ADMIN_API_KEY"}
    if key is not None:
        env["KINITRO_ADMIN_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kinitro",
        "evaluator",
        "baselines",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=100)
    return proc.returncode or 0, out.decode(), err.decode()
