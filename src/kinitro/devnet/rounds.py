"""The devnet's proof that rounds are sealed and verifiable: once the first weights are
on chain, wait for the first round of the example competition to be revealed and run
``kinitro round verify`` on it (a subprocess: the devnet does not import the evaluator).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx

DEFAULT_ROUND_SECONDS = 120
"""Devnet round length: short enough that ``--exit-after-weights`` also sees a reveal."""


def first_round(backend_url: str, competition_id: str) -> dict[str, Any] | None:
    """The competition's oldest round (its miners' first evaluations), if any."""
    with httpx.Client(base_url=backend_url, timeout=10) as http:
        page = http.get("/api/v1/rounds", params={"competition_id": competition_id}).json()
        if not page["items"]:
            return None
        if page["total"] > len(page["items"]):
            last = {"competition_id": competition_id, "offset": page["total"] - 1, "limit": 1}
            page = http.get("/api/v1/rounds", params=last).json()
        return dict(page["items"][-1])


def wait_revealed(backend_url: str, round_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The round once its secret is public; None if not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=backend_url, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                rnd = http.get(f"/api/v1/rounds/{round_id}").json()
            except (httpx.HTTPError, ValueError):
                rnd = {}
            if rnd.get("secret"):
                return dict(rnd)
            time.sleep(1.0)
    return None


def verify(
    backend_url: str, chain_url: str, netuid: int, round_id: str, *, sample: int = 2
) -> dict[str, Any]:
    """``kinitro round verify`` on ``round_id``: its JSON report (``ok`` …)."""
    argv = [sys.executable, "-m", "kinitro", "round", "verify", round_id]
    argv += ["--backend", backend_url, "--chain", "local", "--chain-url", chain_url]
    argv += ["--netuid", str(netuid), "--sample", str(sample), "--json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    try:
        return dict(json.loads(out.stdout))
    except ValueError:
        return {"ok": False, "error": (out.stderr or out.stdout).strip()[-2000:]}
