"""``kinitro devnet status``: which devnet processes are up and what the backend reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from kinitro.devnet.layout import STATE_FILE


def devnet_status(data_dir: Path) -> dict[str, Any]:
    state_file = data_dir / STATE_FILE
    if not state_file.exists():
        return {"exists": False, "data_dir": str(data_dir)}
    state = json.loads(state_file.read_text())
    report: dict[str, Any] = {"exists": True, "data_dir": str(data_dir.resolve())}
    chain_url = f"http://127.0.0.1:{state.get('chain_port')}"
    backend_url = f"http://127.0.0.1:{state.get('backend_port')}"
    report["chain"] = _probe(f"{chain_url}/v1/block")
    report["chain"]["url"] = chain_url
    report["backend"] = _probe(f"{backend_url}/health")
    report["backend"]["url"] = backend_url
    if report["backend"]["up"]:
        report["stats"] = _probe(f"{backend_url}/api/v1/stats").get("body")
        validators = _probe(f"{backend_url}/api/v1/validators").get("body") or {}
        report["validators"] = validators.get("items", []) if isinstance(validators, dict) else []
        report["weights"] = _probe(f"{backend_url}/api/v1/weights/latest").get("body")
    report["metrics"] = {
        "backend": f"{backend_url}/metrics",
        **{
            name: f"http://127.0.0.1:{port}/metrics"
            for name, port in sorted(state.get("metrics_ports", {}).items())
        },
    }
    report["committed"] = state.get("committed", {})
    report["logs"] = sorted(p.name for p in (data_dir / "logs").glob("*.log"))
    return report


def _probe(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError as exc:
        return {"up": False, "error": type(exc).__name__}
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = response.text[:200]
    return {"up": response.status_code == 200, "status": response.status_code, "body": body}


def render_status(report: dict[str, Any]) -> None:
    console = Console()
    if not report.get("exists"):
        console.print(f"No devnet in {report['data_dir']}. Start one with `kinitro devnet up`.")
        return
    table = Table(title=f"Devnet in {report['data_dir']}")
    table.add_column("part")
    table.add_column("state")
    table.add_column("details")
    chain = report["chain"]
    block = chain.get("body", {}).get("block") if isinstance(chain.get("body"), dict) else None
    table.add_row("chain", "up" if chain["up"] else "down", f"{chain['url']} block={block}")
    backend = report["backend"]
    table.add_row("backend", "up" if backend["up"] else "down", backend["url"])
    for validator in report.get("validators", []):
        table.add_row(
            "validator",
            "connected" if validator.get("connected") else "disconnected",
            f"{str(validator.get('hotkey', ''))[:12]} jobs done={validator.get('jobs_done')}",
        )
    for name, url in report.get("metrics", {}).items():
        table.add_row("metrics", name, url)
    stats = report.get("stats")
    if isinstance(stats, dict):
        table.add_row("stats", "", json.dumps(stats)[:120])
    weights = report.get("weights")
    if isinstance(weights, dict) and weights.get("weights"):
        table.add_row("weights", "", json.dumps(weights["weights"]))
    table.add_row("logs", "", ", ".join(report.get("logs", [])))
    console.print(table)
