"""LocalChain's weights rules, as subtensor applies them (``pallets/subtensor``).

* **Plain weights** (``commit_reveal_epochs = 0``, the devnet default): a set is in effect
  at once; one set per ``weights_rate_limit_blocks`` per uid (``SettingWeightsTooFast``).
* **Commit-reveal** (``commit_reveal_epochs = N``, the real chain's default with N = 1):
  a set is *committed* in epoch ``e`` and revealed at the first block of epoch ``e + N``
  (``reveal_crv3_commits``); until then ``weights()`` still shows the previous row. The
  rate limit applies to commits (``LastUpdate`` moves at the commit, not at the reveal)
  and a uid may hold at most 10 unrevealed commits.
* **Version key**: a set whose ``version_key`` is below the subnet's required
  ``weights_version_key`` is refused (``IncorrectWeightVersionKey``); 0 requires nothing.

Reveals happen lazily, whenever the subnet is read or written, at the block they were
due: the result depends on block numbers only, so replaying the extrinsic log gives the
same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kinitro.chain.errors import InvalidWeightsError, RateLimitedError
from kinitro.chain.weights import normalize_u16

MAX_UNREVEALED = 10
"""Unrevealed commits a uid may hold (subtensor's ``TooManyUnrevealedCommits``)."""


def epoch_index(netuid: int, block: int, tempo: int) -> int:
    """The subnet epoch ``block`` belongs to: subtensor runs a subnet's epoch at blocks
    where ``(block + netuid + 1) % (tempo + 1) == 0``."""
    return (block + netuid + 1) // (tempo + 1)


def epoch_start(netuid: int, epoch: int, tempo: int) -> int:
    """The first block of ``epoch`` (inverse of :func:`epoch_index`)."""
    return epoch * (tempo + 1) - netuid - 1


@dataclass(slots=True)
class WeightsBook:
    """A subnet's weight rows, pending commits and the last update of each uid."""

    rows: dict[int, tuple[int, dict[int, int]]] = field(default_factory=dict)
    commits: dict[int, list[tuple[int, int, dict[int, int]]]] = field(default_factory=dict)
    last_update: dict[int, int] = field(default_factory=dict)

    def reveal(self, block: int) -> None:
        """Put every commit whose reveal block has come into effect, oldest first."""
        for uid, queue in list(self.commits.items()):
            due = [c for c in queue if c[1] <= block]
            for _commit_block, reveal_block, row in due:
                self.rows[uid] = (reveal_block, row)
            left = [c for c in queue if c[1] > block]
            if left:
                self.commits[uid] = left
            else:
                del self.commits[uid]


def parse_weights(raw: Any, uids: int, netuid: int) -> dict[int, int]:
    """The ``{uid: value}`` argument of a set, normalised to u16 like the chain does."""
    if not isinstance(raw, dict) or not raw:
        raise InvalidWeightsError("weights must be a non-empty {uid: value} object")
    parsed: dict[int, float] = {}
    for key, value in raw.items():
        try:
            uid = int(key)
        except (TypeError, ValueError):
            raise InvalidWeightsError(f"uid {key!r} is not an integer") from None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidWeightsError(f"weight for uid {uid} is not a number")
        if not 0 <= uid < uids:
            raise InvalidWeightsError(f"uid {uid} does not exist on netuid {netuid}")
        parsed[uid] = float(value)
    return normalize_u16(parsed)


def check_version_key(version_key: Any, required: int) -> int:
    if not isinstance(version_key, int) or isinstance(version_key, bool) or version_key < 0:
        raise InvalidWeightsError(f"version_key must be an integer >= 0, got {version_key!r}")
    if required and version_key < required:
        raise InvalidWeightsError(
            f"weights version_key {version_key} is older than the subnet's required "
            f"{required}: set weights_version_key to {required} or newer"
        )
    return version_key


def set_weights(
    book: WeightsBook,
    *,
    uid: int,
    row: dict[int, int],
    block: int,
    netuid: int,
    tempo: int,
    rate_limit: int,
    reveal_epochs: int,
) -> int | None:
    """Apply a set at ``block``; returns the reveal block of a commit (None: in effect)."""
    book.reveal(block)
    last = book.last_update.get(uid)
    if last is not None and block - last < rate_limit:
        wait = rate_limit - (block - last)
        what = "committed" if reveal_epochs else "set"
        raise RateLimitedError(
            f"uid {uid} {what} weights at block {last}; the weights rate limit is "
            f"{rate_limit} blocks, retry in {wait} blocks",
            retry_in_blocks=wait,
        )
    if not reveal_epochs:
        book.last_update[uid] = block
        book.rows[uid] = (block, row)
        return None
    queue = book.commits.get(uid, [])
    if len(queue) >= MAX_UNREVEALED:
        raise RateLimitedError(
            f"uid {uid} already holds {MAX_UNREVEALED} unrevealed weight commits",
            retry_in_blocks=queue[0][1] - block,
        )
    tempo = max(1, tempo)
    reveal_block = epoch_start(netuid, epoch_index(netuid, block, tempo) + reveal_epochs, tempo)
    book.last_update[uid] = block
    book.commits[uid] = [*queue, (block, reveal_block, row)]
    return reveal_block
