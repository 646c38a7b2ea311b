"""Production-safe backend settings: a real chain means production, and production refuses
the devnet's conveniences, listing every problem at once (also through the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from kinitro.backend.settings import Settings

STRONG = {
    "seed_secret": "s" * 40,
    "admin_api_key": "a-real-admin-key-0123456789",
    "round_wallet_name": "owner",
}


def test_bittensor_implies_production_and_refuses_devnet() -> None:
    assert Settings(chain="bittensor", **STRONG).environment == "production"
    with pytest.raises(ValidationError, match="environment = devnet cannot be used"):
        Settings(chain="bittensor", environment="devnet", **STRONG)
    assert Settings().environment == "devnet"  # the local chain stays a devnet


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"seed_secret": "devnet"}, "seed_secret must be set to a real secret"),
        ({"seed_secret": "short-but-not-a-placeholder"}, "at least 32 characters"),
        ({"admin_api_key": None}, "admin_api_key must be set"),
        ({"admin_api_key": "changethis"}, "admin_api_key must be a real secret"),
        ({"metrics_token": "short"}, "metrics_token must be a real secret"),
        ({"round_wallet_name": None}, "round_wallet_name must name the wallet"),
    ],
)
def test_production_refuses_unsafe_values(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(chain="bittensor", **{**STRONG, **overrides})
    Settings(environment="devnet", **{**STRONG, **overrides})  # fine on the devnet


def test_metrics_are_public_only_on_the_devnet_unless_allowed() -> None:
    assert Settings().metrics_open
    assert not Settings(chain="bittensor", **STRONG).metrics_open
    assert Settings(chain="bittensor", metrics_public=True, **STRONG).metrics_open
    assert not Settings(metrics_public=False).metrics_open


def test_backend_run_on_bittensor_lists_every_problem() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINITRO_")}
    out = subprocess.run(
        [sys.executable, "-m", "kinitro", "backend", "run"],
        env={**env, "KINITRO_BACKEND_CHAIN": "bittensor"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "environment='production'" in out.stderr
    assert "seed_secret" in out.stderr and "admin_api_key must be set" in out.stderr
    assert "round_wallet_name" in out.stderr
    assert "Traceback" not in out.stderr
