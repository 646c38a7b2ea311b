"""Chain records returned by every ``ChainClient`` adapter (frozen dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_COMMITMENT_BYTES = 128
U16_MAX = 65535


@dataclass(frozen=True, slots=True)
class Neuron:
    """One registered hotkey on a subnet."""

    uid: int
    hotkey: str
    coldkey: str
    stake: float
    validator_permit: bool
    registered_at_block: int = 0


@dataclass(frozen=True, slots=True)
class Metagraph:
    """The neurons of a subnet as of ``block``, ordered by uid."""

    netuid: int
    block: int
    neurons: tuple[Neuron, ...] = ()

    def by_hotkey(self, hotkey: str) -> Neuron | None:
        for neuron in self.neurons:
            if neuron.hotkey == hotkey:
                return neuron
        return None

    def by_uid(self, uid: int) -> Neuron | None:
        for neuron in self.neurons:
            if neuron.uid == uid:
                return neuron
        return None

    @property
    def hotkeys(self) -> list[str]:
        return [n.hotkey for n in self.neurons]

    @property
    def validators(self) -> list[Neuron]:
        return [n for n in self.neurons if n.validator_permit]


@dataclass(frozen=True, slots=True)
class CommitmentRecord:
    """The commitment a hotkey currently has on a subnet and the block it was made in.

    Like the real chain, a subnet holds one (the latest) commitment per hotkey; ``uid`` is
    None when the hotkey is no longer registered.
    """

    netuid: int
    hotkey: str
    uid: int | None
    block: int
    data: str


@dataclass(frozen=True, slots=True)
class WeightsRecord:
    """One validator's weight row: ``weights`` maps miner uid → u16 value (max-upscaled).

    ``reveal_block`` is None for weights in effect since ``block``. On a subnet with
    commit-reveal weights, ``set_weights`` returns the row it *committed* at ``block``:
    the chain reveals it (and ``weights()`` shows it) from ``reveal_block`` on.
    """

    netuid: int
    validator_uid: int
    validator_hotkey: str | None
    block: int | None
    weights: dict[int, int] = field(default_factory=dict)
    reveal_block: int | None = None

    @property
    def committed(self) -> bool:
        """True for a commit-reveal commitment that is not in effect yet."""
        return self.reveal_block is not None

    def fractions(self) -> dict[int, float]:
        """The row normalised to sum to 1 (what consensus uses)."""
        total = sum(self.weights.values())
        if total == 0:
            return {}
        return {uid: value / total for uid, value in sorted(self.weights.items())}


@dataclass(frozen=True, slots=True)
class SubnetParams:
    """The subnet hyperparameters a validator schedules its weights by.

    ``tempo`` blocks per epoch; at most one weight set per ``weights_rate_limit`` blocks;
    with ``commit_reveal`` weights are committed and revealed ``reveal_period_epochs``
    epochs later; weights need a ``version_key`` of at least ``weights_version_key``
    (0: any).
    """

    netuid: int
    tempo: int
    weights_rate_limit: int
    commit_reveal: bool = False
    reveal_period_epochs: int = 1
    weights_version_key: int = 0
