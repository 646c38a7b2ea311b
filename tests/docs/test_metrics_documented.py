"""docs/ops: every metric the code registers is documented, and the shipped alert rules
(also checked by ``promtool``, which ``scripts/bootstrap`` installs) and Grafana dashboard
use only metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kinitro.backend.metrics import Metrics
from kinitro.evaluator.prometheus import EvaluatorMetrics
from kinitro.validator.prometheus import ValidatorMetrics

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "ops"
NAME = re.compile(r"\bkinitro_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def _registered() -> set[str]:
    registries = [
        Metrics().registry,
        EvaluatorMetrics(concurrency=1, workers_per_job=1).registry,
        ValidatorMetrics(stale_after_s=90).registry,
    ]
    return {family.name for registry in registries for family in registry.collect()}


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_metric_is_documented_and_nothing_else() -> None:
    documented = {
        m for line in (OPS / "metrics.md").read_text().splitlines() if line.startswith("| `")
        for m in NAME.findall(line.split("|")[1])
    }  # fmt: skip
    registered = _registered()
    assert registered - documented == set(), "add these to docs/ops/metrics.md"
    assert documented - registered == set(), "documented but not registered"


def test_alert_rules_are_well_formed_and_use_real_metrics() -> None:
    rules = [
        r for g in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"] for r in g["rules"]
    ]
    assert rules
    registered = _registered()
    documented = (OPS / "metrics.md").read_text()
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert f"`{rule['alert']}`" in documented, f"{rule['alert']} not in metrics.md"
        for name in NAME.findall(rule["expr"]):
            assert _base(name) in registered, (rule["alert"], name)


def test_dashboard_uses_real_metrics() -> None:
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    registered = _registered()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 10
    for expr in exprs:
        for name in NAME.findall(expr):
            assert _base(name) in registered, (expr, name)


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    out = subprocess.run(
        [promtool, "check", "rules", str(OPS / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
