"""Watching a started devnet: live progress until the first weights for a miner are on the
chain, then the first round's reveal checked with ``kinitro round verify``, and the
tables the live view and the final summary print.

It only reads (the backend's REST API, the chain); a devnet whose jobs all ended with
failures and no weights stops after 30 s with the last warnings of the evaluator and
validator logs, not at the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from kinitro.chain.local.client import LocalChain
from kinitro.devnet import rounds
from kinitro.devnet.layout import COMPETITION_ID, MINERS
from kinitro.devnet.network import Devnet, DevnetError, tail

ROUND_SUMMARY = (
    "round_id",
    "ok",
    "commit_block",
    "commitment_on_chain",
    "reveal_matches",
    "episodes",
    "logs_checked",
    "replayed",
    "failures",
    "error",
)
_FINISHED = ("completed", "failed", "timed_out", "cancelled")


class Watcher:
    """Polls the backend and the chain into ``devnet.progress`` until the first weights."""

    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.progress = devnet.progress
        self._failed_since: float | None = None

    def wait_for_weights(self, render: Callable[[], None]) -> None:
        devnet = self.devnet
        self.progress.step = "evaluating"
        deadline = time.monotonic() + devnet.opts.timeout_s
        with httpx.Client(base_url=devnet.backend_http, timeout=10) as http:
            while time.monotonic() < deadline:
                for note in devnet.supervisor.poll():
                    self.progress.note(note)
                dead = devnet.supervisor.failed_for_good()
                if dead:
                    names = ", ".join(c.name for c in dead)
                    raise DevnetError(f"{names} keeps crashing; see {devnet.layout.logs}")
                self._refresh(http)
                render()
                self._check_failures()
                if self._done():
                    self.progress.step = "weights on chain"
                    return
                time.sleep(1.0)
        raise DevnetError(
            f"no weights on chain after {devnet.opts.timeout_s:.0f}s; logs in {devnet.layout.logs}"
        )

    def _check_failures(self) -> None:
        """Fail fast with the cause when every job ended and some failed without weights."""
        stats = self.progress.stats or {}
        jobs = stats.get("jobs", {}) if isinstance(stats.get("jobs"), dict) else {}
        failed = int(jobs.get("failed", 0)) + int(jobs.get("timed_out", 0))
        busy = sum(int(v) for k, v in jobs.items() if k not in _FINISHED)
        if not failed or busy or self.progress.chain_weights_for_miners:
            self._failed_since = None
            return
        now = time.monotonic()
        if self._failed_since is None:
            self._failed_since = now
        elif now - self._failed_since > 30:
            logs = self.devnet.layout.logs
            raise DevnetError(
                f"{failed} evaluation job(s) failed and none is left running.\n"
                f"{_log_hints(logs)}\nLogs: {logs}"
            )

    def _done(self) -> bool:
        """Weights for a miner are on chain and every submission has been evaluated."""
        miners = set(self.devnet.wallet_hotkeys(MINERS))
        weighted = any(w > 0 for k, w in self.progress.chain_weights.items() if k in miners)
        stats = self.progress.stats or {}
        jobs = stats.get("jobs", {}) if isinstance(stats.get("jobs"), dict) else {}
        submissions = stats.get("submissions", {})
        total = sum(submissions.values()) if isinstance(submissions, dict) else 0
        busy = sum(int(v) for k, v in jobs.items() if k not in _FINISHED)
        self.progress.chain_weights_for_miners = weighted
        scored = len(self.progress.leaderboard) >= len(MINERS)
        return weighted and total >= len(MINERS) and busy == 0 and scored

    def _refresh(self, http: httpx.Client) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            self.progress.stats = http.get("/api/v1/stats").json()
        with contextlib.suppress(httpx.HTTPError, ValueError):
            board = http.get(f"/api/v1/competitions/{COMPETITION_ID}/leaderboard").json()
            self.progress.leaderboard = list(board.get("rows", board.get("items", [])))
        self.progress.chain_weights = asyncio.run(
            _chain_weights(self.devnet.chain_url, self.devnet.state.netuid)
        )

    def verify_first_round(self, render: Callable[[], None]) -> None:
        """Wait for the first round's reveal and check it with ``kinitro round verify``."""
        devnet = self.devnet
        self.progress.step = "round reveal"
        render()
        first = rounds.first_round(devnet.backend_http, COMPETITION_ID)
        if first is None:
            raise DevnetError("no evaluation round was opened")
        wait = max(0.0, _seconds_until(first["ends_at"])) + 60
        revealed = rounds.wait_revealed(devnet.backend_http, first["id"], wait)
        if revealed is None:
            raise DevnetError(f"round {first['id']} was not revealed {wait:.0f}s after its end")
        self.progress.note(f"round {first['id']} revealed; verifying")
        render()
        report = rounds.verify(
            devnet.backend_http, devnet.chain_url, devnet.state.netuid, first["id"]
        )
        self.progress.round = {k: report.get(k) for k in ROUND_SUMMARY if k in report}
        self.progress.round_verified = bool(report.get("ok"))
        verdict = "verified" if self.progress.round_verified else "NOT verified"
        self.progress.note(f"round {first['id']}: {verdict}")

    def summary(self) -> dict[str, Any]:
        devnet = self.devnet
        names = devnet.wallet_names()
        return {
            "competitions": [COMPETITION_ID],
            "leaderboard": self.progress.leaderboard,
            "weights": {names.get(k, k): v for k, v in self.progress.chain_weights.items()},
            "weights_by_hotkey": self.progress.chain_weights,
            "stats": self.progress.stats,
            "elapsed_s": round(time.monotonic() - self.progress.started, 1),
            "round": self.progress.round,
            "round_verified": self.progress.round_verified,
            "backend_url": devnet.backend_http,
            "chain_url": devnet.chain_url,
            "data_dir": str(devnet.layout.data_dir),
        }


async def _chain_weights(chain_url: str, netuid: int) -> dict[str, float]:
    """The largest weight any validator set on each hotkey ({} while the chain is away)."""
    try:
        async with LocalChain(chain_url, netuid) as chain:
            rows = await chain.weights()
            graph = await chain.metagraph()
    except Exception:  # noqa: BLE001 - the chain may be restarting; try again next tick
        return {}
    validators = {n.hotkey for n in graph.neurons if n.validator_permit}
    out: dict[str, float] = {}
    for row in rows:
        if row.validator_hotkey not in validators:
            continue
        for uid, value in row.fractions().items():
            neuron = graph.by_uid(uid)
            if neuron is not None:
                out[neuron.hotkey] = max(out.get(neuron.hotkey, 0.0), value)
    return out


def _seconds_until(iso: str) -> float:
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()


def _log_hints(log_dir: Path, limit: int = 5) -> str:
    """The last distinct warning/error messages of the evaluator and validator logs."""
    seen: list[str] = []
    for path in sorted(log_dir.glob("evaluator-*.log")) + sorted(log_dir.glob("validator-*.log")):
        for line in tail(path, 200).splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("warning", "error") and record.get("msg") not in seen:
                seen.append(str(record.get("msg")))
    return "\n".join(f"  {path_msg}" for path_msg in seen[-limit:]) or "  (no warnings logged)"


# -------------------------------------------------------------------------- tables --
def render_tables(devnet: Devnet) -> Table:
    progress = devnet.progress
    names = devnet.wallet_names()
    grid = Table.grid(padding=(0, 2))
    elapsed = time.monotonic() - progress.started
    stats = progress.stats or {}
    head = Table(title=f"Kinitro devnet — {progress.step} — {elapsed:.0f}s", show_header=False)
    head.add_row("backend", devnet.backend_http)
    head.add_row("data", str(devnet.layout.data_dir))
    for key in ("submissions", "jobs", "episodes"):
        if key in stats:
            head.add_row(
                key, json.dumps(stats[key]) if isinstance(stats[key], dict) else str(stats[key])
            )
    grid.add_row(head)
    grid.add_row(leaderboard_table(progress.leaderboard, names))
    if progress.chain_weights:
        grid.add_row(weights_table(progress.chain_weights, names))
    for note in progress.notes:
        grid.add_row(f"[dim]{note}[/dim]")
    return grid


def leaderboard_table(rows: list[dict[str, Any]], names: dict[str, str]) -> Table:
    table = Table(title="Leaderboard")
    for col in ("rank", "miner", "success", "95% CI", "episodes", "note"):
        table.add_column(col)
    for row in rows:
        hotkey = str(row.get("miner_hotkey", ""))
        rate = row.get("success_rate")
        lo, hi = row.get("ci_low"), row.get("ci_high")
        kind = (row.get("detail") or {}).get("copy_kind")
        note = ""
        if row.get("copy_of"):
            same = "acts like" if kind == "behaviour" else "copy of"
            note = f"{same} an earlier commitment: earns 0"
        if not row.get("eligible", True) and not note:
            note = "not eligible"
        table.add_row(
            str(row.get("rank", "")),
            names.get(hotkey, hotkey[:12]),
            "-" if rate is None else f"{rate:.0%}",
            "-" if lo is None or hi is None else f"{lo:.0%}–{hi:.0%}",
            str(row.get("episodes", "")),
            note,
        )
    return table


def weights_table(weights: dict[str, float], names: dict[str, str]) -> Table:
    table = Table(title="Weights on chain")
    table.add_column("miner")
    table.add_column("weight", justify="right")
    for hotkey, value in sorted(weights.items(), key=lambda kv: -kv[1]):
        table.add_row(names.get(hotkey, hotkey[:12]), f"{value:.3f}")
    return table
