"""`kinitro miner status` and `commit` against a real backend process with scored data
(:mod:`.stack`): the miner sees score, interval, rank, eligibility, why it does not lead
and its weight; a commitment to a competition the backend does not run is refused before
anything goes on chain, listing the valid ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kinitro.chain.wallets import create_wallet, load_hotkey

from .stack import COMPETITION, WEAK, Stack, wait_for


def _miner(stack: Stack, wallets: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kinitro",
            "miner",
            *args,
            "--wallet",
            "dave",
            "--wallet-path",
            str(wallets),
            "--chain-url",
            stack.chain.url,
            "--netuid",
            str(stack.chain.netuid),
            "--backend-url",
            stack.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=wallets.parent,
        check=False,
    )


async def test_status_explains_standing_and_commit_checks_competition(
    stack: Stack, tmp_path: Path
) -> None:
    wallets = tmp_path / "wallets"
    create_wallet("dave", "default", wallets)
    dave = load_hotkey("dave", "default", wallets)
    await stack.chain.register(stack.coldkey, dave.ss58_address)
    stack.miners["dave"] = dave

    wrong = _miner(
        stack, wallets, "commit", "-c", "mt4", "--repo", "dave/agent", "--revision", "01",
        "--sha256", "ab" * 32,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert wrong.stderr.strip() == (
        f"error: unknown competition 'mt4': the backend at {stack.url} runs {COMPETITION}, reach"
    )
    assert not [c for c in await stack.chain.commitments() if c.hotkey == dave.ss58_address]

    await stack.commit("dave", b"dave-bundle-v1")
    va, vb = stack.validators
    job = await stack.take_job(va, dave)
    await stack.take_job(vb, dave)
    for v in (va, vb):
        await stack.evaluate(v, job, WEAK, media=False)

    async def scored() -> Any:
        board = await stack.get(f"/api/v1/competitions/{COMPETITION}/leaderboard")
        return any(
            r["submission_id"] == int(job.submission_id)
            and not r["awaiting_quorum"]
            and r["episodes"] == 6
            for r in board["rows"]
        )

    await wait_for(scored, within=30, what="dave's score")
    result = _miner(stack, wallets, "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [sub] = data["backend"]["submissions"]
    standing = sub["standing"]
    assert sub["status"] == "evaluated" and standing["rank"] == 3 and standing["of"] == 3
    assert standing["success_rate"] == 1 / 6 and standing["eligible"] is True
    assert standing["is_leader"] is False
    # a qualified challenger: where its paired test against the leader stands (the stack's
    # 4 s rounds usually put its job in another round than the leader's: nothing shared)
    reason, to_lead = standing["reason"], standing["to_lead"]
    assert reason == "no episodes shared with the leader yet" or reason.startswith(
        "paired test vs the leader: "
    ), reason
    assert to_lead, standing
    assert sub["weight"] == 0.0

    text = _miner(stack, wallets, "status")
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert f"submission {job.submission_id}" in out and "evaluated" in out, out
    assert "score   17% (95% CI 3%–56%) over 6 episodes, rank 3 of 3" in out, out
    assert "eligible yes; leader no" in out and "a copy" not in out
    assert f"why     {reason}" in out and f"to lead {to_lead}" in out, out
    assert "weight  0.0000 of the subnet's emissions" in out
    assert "next    improve the agent (kinitro miner eval), upload and commit again" in out
