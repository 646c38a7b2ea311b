"""`kinitro miner status`: where my hotkey stands, from the chain and the backend.

The chain side: uid, the current commitment (decoded). The backend side, per submission:
state and rejection detail, score with its 95 % interval, rank, eligibility and why it
does not lead (the leaderboard's ``reason``, :mod:`kinitro.backend.explain`), the copy it
is credited to, the weight of its uid, and the next thing to do. Next to a devnet the
backend is the devnet's (:meth:`~kinitro.miner.settings.MinerSettings.near_devnet`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from kinitro.core.errors import KinitroError
from kinitro.miner.backend_client import BackendUnavailable, get_json
from kinitro.miner.settings import MinerSettings
from kinitro.miner.submit_cmds import (
    ChainUrlOpt,
    ConfigOpt,
    HotkeyOpt,
    JsonOpt,
    NetuidOpt,
    WalletOpt,
    WalletPathOpt,
    _echo_json,
    _fail,
    _open_chain,
    _settings,
    console,
)

NEXT_BY_STATUS = {
    "pending": "wait: the backend is checking the artifact (publish it if it is private)",
    "scheduled": "wait for the evaluation: kinitro watch --miner {hotkey}",
    "superseded": "nothing: a later commitment of yours replaced it",
    "rejected": "fix the cause above, upload and commit again",
}


def status_command(
    wallet: str | None = WalletOpt,
    hotkey: str | None = HotkeyOpt,
    wallet_path: Path | None = WalletPathOpt,
    chain_url: str | None = ChainUrlOpt,
    netuid: int | None = NetuidOpt,
    backend_url: str | None = typer.Option(None, "--backend-url", help="Kinitro backend URL."),
    config: Path | None = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """What the chain and the backend know about my hotkey: commitment, submissions, score,
    rank, weight, and why a submission is not leading."""
    from kinitro.chain.wallets import wallet_info  # noqa: PLC0415 - deferred: CLI start-up

    settings = _settings(
        config,
        wallet_name=wallet,
        hotkey=hotkey,
        wallet_path=wallet_path,
        chain_url=chain_url,
        netuid=netuid,
        backend_url=backend_url,
    )
    try:
        me = wallet_info(settings.wallet_name, settings.hotkey, settings.wallet_path).hotkey
        chain_view = asyncio.run(_chain_status(settings, me))
    except KinitroError as exc:
        raise _fail(str(exc)) from None
    backend_view = _backend_status(settings, me, chain_view["uid"])
    data = {"hotkey": me, "chain": chain_view, "backend": backend_view}
    if as_json:
        _echo_json(data)
        return
    _print_chain(settings, me, chain_view)
    if "error" in backend_view:
        console.print(f"  backend: [yellow]{escape(backend_view['error'])}[/yellow]")
        return
    subs = backend_view["submissions"]
    if not subs:
        console.print(f"the backend at {settings.backend_url} has no submission of this hotkey")
    for sub in subs:
        _print_submission(sub, me)


def _print_chain(settings: MinerSettings, me: str, chain_view: dict[str, Any]) -> None:
    console.print(f"hotkey {me} on netuid {settings.netuid} (block {chain_view['block']})")
    if chain_view["uid"] is None:
        console.print("  [yellow]not registered[/yellow] (next: kinitro chain register)")
    else:
        console.print(f"  uid {chain_view['uid']}")
    commitment = chain_view["commitment"]
    if commitment is None:
        console.print("  no commitment on chain (next: kinitro miner commit)")
    else:
        console.print(f"  commitment at block {commitment['block']}: {commitment['data']}")
        if commitment.get("error"):
            console.print(f"  [red]not a valid Kinitro commitment:[/red] {commitment['error']}")


def _print_submission(sub: dict[str, Any], me: str) -> None:
    status = str(sub.get("status"))
    console.print(
        f"\n[bold]submission {sub.get('id')}[/bold] · {sub.get('competition_id') or '?'} · "
        f"block {sub.get('commitment_block')} · {status}"
    )
    if sub.get("rejection_reason"):
        detail = sub.get("rejection_detail") or ""
        console.print(f"  rejected [red]{sub['rejection_reason']}[/red]: {escape(detail)}")
    if sub.get("credited_submission_id") not in (None, sub.get("id")):
        console.print(f"  credited to submission {sub['credited_submission_id']} (a copy)")
    standing = sub.get("standing")
    if standing:
        console.print(
            f"  score   {_pct(standing['success_rate'])} (95% CI {_pct(standing['ci_low'])}–"
            f"{_pct(standing['ci_high'])}) over {standing['episodes']} episodes, rank "
            f"{standing['rank']} of {standing['of']}"
        )
        eligible = "yes" if standing["eligible"] else "no"
        console.print(f"  eligible {eligible}; leader {'yes' if standing['is_leader'] else 'no'}")
        if standing.get("reason"):
            console.print(f"  why     {escape(standing['reason'])}")
        if standing.get("to_lead"):
            console.print(f"  to lead {escape(standing['to_lead'])}")
    if sub.get("weight") is not None:
        console.print(f"  weight  {sub['weight']:.4f} of the subnet's emissions (this uid)")
    step = _next_step(sub, status, me)
    if step:
        console.print(f"  next    {step}")


def _next_step(sub: dict[str, Any], status: str, me: str) -> str | None:
    standing = sub.get("standing") or {}
    if status == "evaluated":
        if standing.get("is_leader"):
            return "nothing: you lead; commit a better bundle to improve"
        if standing:
            return "improve the agent (kinitro miner eval), upload and commit again"
        return "wait for scoring (every few seconds on a devnet)"
    hint = NEXT_BY_STATUS.get(status)
    return hint.format(hotkey=me) if hint else None


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


async def _chain_status(settings: MinerSettings, hotkey: str) -> dict[str, Any]:
    from kinitro.protocol.commitment import parse_commitment  # noqa: PLC0415 - deferred: CLI start-up

    chain = _open_chain(settings)
    try:
        block = await chain.block()
        graph = await chain.metagraph()
        records = await chain.commitments()
    finally:
        await chain.close()
    neuron = graph.by_hotkey(hotkey)
    mine = next((r for r in records if r.hotkey == hotkey), None)
    commitment: dict[str, Any] | None = None
    if mine is not None:
        commitment = {"block": mine.block, "data": mine.data}
        try:
            parsed = parse_commitment(mine.data)
            commitment["parsed"] = {
                "competition_id": parsed.competition_id,
                "registry": parsed.registry,
                "repo": parsed.repo,
                "revision": parsed.revision,
                "sha256": parsed.sha256,
            }
        except KinitroError as exc:
            commitment["error"] = str(exc)
    return {"block": block, "uid": None if neuron is None else neuron.uid, "commitment": commitment}


def _backend_status(settings: MinerSettings, hotkey: str, uid: int | None) -> dict[str, Any]:
    """My submissions, each with its leaderboard standing and its uid's weight."""
    try:
        body = get_json(settings, "/api/v1/submissions", miner_hotkey=hotkey)
    except BackendUnavailable as exc:
        return {"error": str(exc)}
    items = body.get("items", []) if isinstance(body, dict) else body
    subs = [s for s in items if isinstance(s, dict)] if isinstance(items, list) else []
    boards: dict[str, list[dict[str, Any]]] = {}
    for cid in {str(s["competition_id"]) for s in subs if s.get("competition_id")}:
        try:
            boards[cid] = get_json(settings, f"/api/v1/competitions/{cid}/leaderboard")["rows"]
        except (BackendUnavailable, KeyError, TypeError):
            boards[cid] = []
    weight = _weight_of(settings, uid)
    for sub in subs:
        rows = boards.get(str(sub.get("competition_id")), [])
        row = next((r for r in rows if r.get("submission_id") == sub.get("id")), None)
        sub["standing"] = None if row is None else _standing(row, len(rows))
        sub["weight"] = weight if sub.get("status") == "evaluated" else None
    return {"url": settings.backend_url, "submissions": subs}


def _standing(row: dict[str, Any], of: int) -> dict[str, Any]:
    keys = ("success_rate", "ci_low", "ci_high", "episodes", "rank", "eligible", "is_leader")
    return {
        **{k: row.get(k) for k in keys},
        "of": of,
        "copy_of": row.get("copy_of"),
        "reason": row.get("reason"),
        "to_lead": row.get("to_lead"),
    }


def _weight_of(settings: MinerSettings, uid: int | None) -> float | None:
    if uid is None:
        return None
    try:
        latest = get_json(settings, "/api/v1/weights/latest")
    except BackendUnavailable:
        return None
    weights = latest.get("weights") if isinstance(latest, dict) else None
    return float(weights.get(str(uid), 0.0)) if isinstance(weights, dict) else None
