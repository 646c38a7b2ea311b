"""History charts and superseded submissions in Chromium: the success-over-time chart of a
competition and the validators' throughput chart render from the backend's series over the
seeded evaluations; a miner's earlier commitment, superseded by its next one, is hidden
from the overview and the competition page behind a link to the full list."""

from __future__ import annotations

from typing import Any

import pytest

from .stack import Stack, wait_for
from .test_dashboard import run_scenario


@pytest.mark.timeout(300)  # a seeded backend and Chromium on a shared machine
async def test_history_charts_and_superseded_hidden(stack: Stack) -> None:
    miner = await stack.commit("frank", b"frank-bundle-v1")

    async def submitted(status: str) -> list[dict[str, Any]]:
        page = await stack.get("/api/v1/submissions", miner_hotkey=miner.ss58_address)
        return [s for s in page["items"] if s["status"] == status]

    [first] = await wait_for(lambda: submitted("scheduled"), within=30, what="frank's first")
    await stack.commit("frank", b"frank-bundle-v2")
    [old] = await wait_for(lambda: submitted("superseded"), within=30, what="frank superseded")
    assert old["id"] == first["id"]
    [new] = await submitted("scheduled")
    stack.ids["superseded"] = str(old["id"])
    stack.ids["superseding"] = str(new["id"])
    history = await stack.get("/api/v1/competitions/mt3/history")
    # alice's and bob's jobs, 6 episodes on each of the two validators
    assert sum(p["episodes"] for p in history["points"]) == 24, history
    outcome = await run_scenario("history", stack)
    assert outcome["points"] >= 1
