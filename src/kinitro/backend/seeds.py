"""Evaluation-round seeds: HMAC of a backend secret, committed before, revealed after.

A round is a fixed window per competition (``round_duration_s``). Its seed is
``HMAC-SHA256(secret, round_id)`` truncated to 63 bits, identical for every miner and
validator of the round. ``seed_hash = sha256("kinitro-seed:{round_id}:{seed}")`` is
published when the round opens; the seed itself after it ends, so anyone can check.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class Round:
    id: str
    competition_id: str
    starts_at: datetime
    ends_at: datetime
    seed: int
    seed_hash: str


def round_seed(secret: bytes, round_id: str) -> int:
    mac = hmac.new(secret, round_id.encode(), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") >> 1


def seed_hash(round_id: str, seed: int) -> str:
    return hashlib.sha256(f"kinitro-seed:{round_id}:{seed}".encode()).hexdigest()


def verify_reveal(round_id: str, seed: int, published_hash: str) -> bool:
    return hmac.compare_digest(seed_hash(round_id, seed), published_hash)


def current_round(
    secret: bytes, competition_id: str, duration_s: int, now: datetime | None = None
) -> Round:
    now = now or datetime.now(UTC)
    index = int(now.timestamp()) // duration_s
    starts = datetime.fromtimestamp(index * duration_s, UTC)
    round_id = f"{competition_id}-r{index}"
    seed = round_seed(secret, round_id)
    return Round(
        id=round_id,
        competition_id=competition_id,
        starts_at=starts,
        ends_at=starts + timedelta(seconds=duration_s),
        seed=seed,
        seed_hash=seed_hash(round_id, seed),
    )
