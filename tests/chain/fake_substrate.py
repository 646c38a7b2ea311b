"""An in-memory subtensor behind the bittensor SDK's own ``Substrate`` seam.

``bittensor.Client(substrate=FakeSubtensor(...))`` runs the real SDK code (reads, the
``SetWeights`` intent with its timelock encryption, the executor, result handling) against
this fake, which answers the storage items and runtime API the SDK reads and dispatches
the extrinsics Kinitro submits with the chain's own rules and error names
(``pallets/subtensor``, ``pallets/commitments``):

* **Epochs** follow subtensor's stateful schedule: an epoch fires every ``tempo`` blocks
  (``LastEpochBlock``, ``SubnetEpochIndex``, ``BlocksSinceLastStep``; ``PendingEpochAt`` 0).
* ``Commitments.set_commitment`` — hotkey must be registered (``AccountNotAllowedCommit``),
  one ``Raw<N>`` field of N ≤ 128 bytes (larger data cannot be encoded), space quota of
  ``max_space`` bytes (3,100 like ``MaxSpace``) per epoch (``SubnetEpochIndex``), each
  commitment using ``max(100, size)`` (``SpaceLimitExceeded``). No other rate limit.
* ``SubtensorModule.set_mechanism_weights`` — refused while commit-reveal is on
  (``CommitRevealEnabled``); registered (``HotKeyNotRegisteredInSubNet``), validator permit
  (``NeuronNoValidatorPermit``), version key (``IncorrectWeightVersionKey``), rate limit
  (``SettingWeightsTooFast``), u16 values and known uids (``UidVecContainInvalidOne``).
* ``SubtensorModule.commit_timelocked_mechanism_weights`` — commit-reveal, the chain's
  default (``CommitRevealWeightsEnabled`` true, ``RevealPeriodEpochs`` 1): refused when
  commit-reveal is off (``CommitRevealDisabled``) or for another commit-reveal version;
  registered; rate limit on commits (``CommittingWeightsTooFast``, ``LastUpdate`` moves
  at the commit); at most 10 unrevealed commits. A commit made in epoch ``e`` is revealed
  when epoch ``e + RevealPeriodEpochs`` fires (``reveal_crv3_commits``): decrypted, then
  applied with the plain rules (version key, permit, uids; a failing one is dropped
  silently, as on chain), or kept for the rest of that epoch while its drand pulse is
  missing, then expired.

**Drand.** The SDK encrypts commits to drand's quicknet key for a future round; only
drand's signature for that round opens them, and drand cannot run here. :class:`FakeDrand`
stands in for it: installed over ``bittensor_core.get_encrypted_commit_v2`` it records
what each ciphertext holds (calling the real encryption), and publishes a round's
"pulse" when the fake chain reaches the commit's reveal epoch.

Storage reads honour ``block_hash``: ``Commitments.CommitmentOf`` at an older block answers
the commitment as it was then, within ``state_pruning`` blocks of the head (a lite node);
older blocks fail like a pruned node does (``State already discarded``).

Each accepted extrinsic is included in a new block; signatures are checked with the
signer's sr25519 key like a node would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import bittensor_core
import pytest
from bittensor import Balance, ChainError, ExtrinsicResult

from kinitro.chain.signing import verify_signature

RAO = 10**9
COMMIT_REVEAL_VERSION = 4  # subtensor's get_commit_reveal_weights_version()
MAX_UNREVEALED = 10


class FakeDrand:
    """Plays drand for the fake chain: remembers what each timelocked commit encrypts."""

    def __init__(self) -> None:
        self._plaintexts: dict[bytes, tuple[list[int], list[int], int, bytes]] = {}
        self._real = bittensor_core.get_encrypted_commit_v2

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeDrand:
        monkeypatch.setattr(bittensor_core, "get_encrypted_commit_v2", self._encrypt)
        return self

    def _encrypt(self, **kwargs: Any) -> tuple[bytes, int]:
        commit, reveal_round = self._real(**kwargs)
        self._plaintexts[bytes(commit)] = (
            list(kwargs["uids"]),
            list(kwargs["weights"]),
            int(kwargs["version_key"]),
            bytes(kwargs["hotkey"]),
        )
        return commit, reveal_round

    def open(self, commit: bytes) -> tuple[list[int], list[int], int, bytes] | None:
        """The plaintext of ``commit`` once its round is published (None: not decryptable)."""
        return self._plaintexts.get(bytes(commit))


@dataclass
class FakeNeuron:
    hotkey: str
    coldkey: str
    stake_tao: float = 0.0
    permit: bool = False
    registered_at: int = 0


@dataclass
class FakeSubnet:
    tempo: int = 10
    weights_rate_limit: int = 100
    max_space: int = 3100  # bytes per epoch and account (MaxSpace)
    commit_reveal: bool = True  # CommitRevealWeightsEnabled (the chain's default)
    reveal_period: int = 1  # RevealPeriodEpochs
    version_key: int = 0  # WeightsVersionKey (0: any)
    # TimelockedWeightCommits: commit epoch -> [(hotkey, block, ciphertext, reveal_round)]
    timelocked: dict[int, list[tuple[str, int, bytes, int]]] = field(default_factory=dict)
    neurons: list[FakeNeuron] = field(default_factory=list)
    commitments: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # oldest first
    used_space: dict[str, tuple[int, int]] = field(default_factory=dict)  # hotkey -> (epoch, used)
    weights: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    last_update: dict[int, int] = field(default_factory=dict)

    def uid(self, hotkey: str) -> int | None:
        for uid, n in enumerate(self.neurons):
            if n.hotkey == hotkey:
                return uid
        return None


class FakeSubtensor:
    """Implements the parts of ``bittensor.Substrate`` the SDK uses for Kinitro's calls."""

    def __init__(self, *, state_pruning: int | None = None, drand: FakeDrand | None = None) -> None:
        self.token_symbols: dict[int, str] = {}
        self.block = 100
        self.state_pruning = state_pruning  # None: an archive node
        self.drand = drand
        self.subnets: dict[int, FakeSubnet] = {}
        self.submitted: list[tuple[str, str, str]] = []  # (module, function, signer)

    # ---- test setup (what registration / staking extrinsics would do) --------------------

    def add_neuron(
        self, netuid: int, hotkey: str, coldkey: str, stake: float = 0.0, permit: bool = False
    ) -> int:
        subnet = self.subnets.setdefault(netuid, FakeSubnet())
        subnet.neurons.append(FakeNeuron(hotkey, coldkey, stake, permit, self.block))
        return len(subnet.neurons) - 1

    def advance(self, blocks: int) -> None:
        """Produce ``blocks`` blocks; each one's ``on_initialize`` runs due epochs."""
        for _ in range(blocks):
            self.block += 1
            for netuid, subnet in self.subnets.items():
                if self.block % max(1, subnet.tempo) == 0:
                    self._reveal(netuid, subnet, self.block // max(1, subnet.tempo))

    def _reveal(self, netuid: int, subnet: FakeSubnet, epoch: int) -> None:
        """``reveal_crv3_commits`` at the start of ``epoch``: commits of
        ``epoch - reveal_period`` are decrypted and applied; older ones expire."""
        reveal_epoch = epoch - subnet.reveal_period
        for old in [e for e in subnet.timelocked if e < reveal_epoch]:
            del subnet.timelocked[old]
        unrevealed = []
        for who, block, commit, reveal_round in subnet.timelocked.pop(reveal_epoch, []):
            opened = None if self.drand is None else self.drand.open(commit)
            if opened is None:
                unrevealed.append((who, block, commit, reveal_round))
                continue
            uids, values, version_key, _hotkey = opened
            self._apply_weights(subnet, who, uids, values, version_key)  # failures dropped
        if unrevealed:
            subnet.timelocked[reveal_epoch] = unrevealed

    # ---- lifecycle / metadata -------------------------------------------------------------

    def balance(self, rao: int, netuid: int = 0) -> Balance:
        return Balance.from_rao(rao, netuid) if netuid else Balance.from_rao(rao)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def block_hash(self, block: int | None = None) -> str:
        number = self.block if block is None else block
        return "0x" + f"{number:064x}"

    async def block_number(self) -> int:
        return self.block

    async def finalized_block_number(self) -> int:
        return self.block

    async def block_time(self) -> float:
        return 12.0

    async def spec_version(self) -> int:
        return 400

    async def blocks(self, *, finalized: bool = False) -> AsyncIterator[dict[str, Any]]:
        yield {"header": {"number": self.block, "parentHash": None}}

    # ---- storage ---------------------------------------------------------------------------

    def _subnet(self, netuid: int) -> FakeSubnet | None:
        return self.subnets.get(int(netuid))

    def _at(self, block_hash: str | None) -> int:
        """The block a read is pinned to; a pruned block fails like a lite node."""
        if block_hash is None:
            return self.block
        number = int(block_hash, 16)
        if self.state_pruning is not None and number < self.block - self.state_pruning:
            raise ChainError(f"State already discarded for {block_hash}", name="UnknownBlock")
        return number

    @staticmethod
    def epoch(block: int, tempo: int) -> int:
        """``SubnetEpochIndex`` at ``block``: an epoch fires every ``tempo`` blocks."""
        return block // max(1, tempo)

    async def query(
        self,
        module: str,
        storage_function: str,
        params: list[Any] | None = None,
        block_hash: str | None = None,
    ) -> Any:
        params = params or []
        key = (module, storage_function)
        if key == ("Timestamp", "Now"):
            return 1_700_000_000_000 + self.block * 12_000
        subnet = self._subnet(params[0]) if params else None
        if key == ("SubtensorModule", "Uids"):
            return None if subnet is None else subnet.uid(params[1])
        if key == ("Commitments", "CommitmentOf"):
            at = self._at(block_hash)
            past = [] if subnet is None else subnet.history.get(params[1], [])
            return next((c for c in reversed(past) if c["block"] <= at), None)
        if key == ("SubtensorModule", "LastUpdate"):
            if subnet is None:
                return []
            return [subnet.last_update.get(uid, 0) for uid in range(len(subnet.neurons))]
        if key == ("SubtensorModule", "ValidatorPermit"):
            return [] if subnet is None else [n.permit for n in subnet.neurons]
        if key == ("SubtensorModule", "WeightsSetRateLimit"):
            return None if subnet is None else subnet.weights_rate_limit
        if key == ("SubtensorModule", "MinAllowedWeights"):
            return 0
        if key == ("SubtensorModule", "MaxWeightsLimit"):
            return 65535
        if key == ("SubtensorModule", "SubnetEpochConsensus"):
            return "Yuma"
        per_subnet = (
            "CommitRevealWeightsEnabled",
            "RevealPeriodEpochs",
            "WeightsVersionKey",
            "Tempo",
            "SubnetEpochIndex",
            "LastEpochBlock",
            "BlocksSinceLastStep",
            "PendingEpochAt",
        )
        if module != "SubtensorModule" or storage_function not in per_subnet:
            raise ChainError(f"fake subtensor: storage {module}.{storage_function} not modelled")
        if subnet is None:
            return None  # an absent subnet's items read as unset
        at = self._at(block_hash)
        tempo = max(1, subnet.tempo)
        values = {
            "CommitRevealWeightsEnabled": subnet.commit_reveal,
            "RevealPeriodEpochs": subnet.reveal_period,
            "WeightsVersionKey": subnet.version_key,
            "Tempo": subnet.tempo,
            "SubnetEpochIndex": self.epoch(at, tempo),
            "LastEpochBlock": self.epoch(at, tempo) * tempo,
            "BlocksSinceLastStep": at % tempo,
            "PendingEpochAt": 0,
        }
        return values[storage_function]

    async def map_has_entries(
        self, module: str, storage_function: str, params: list[Any], block_hash: str | None = None
    ) -> bool:
        return bool(await self.query_map(module, storage_function, params, block_hash))

    async def query_map(
        self,
        module: str,
        storage_function: str,
        params: list[Any] | None = None,
        block_hash: str | None = None,
    ) -> list[tuple[Any, Any]]:
        params = params or []
        key = (module, storage_function)
        subnet = self._subnet(params[0]) if params else None
        if key == ("Commitments", "CommitmentOf"):
            return [] if subnet is None else list(subnet.commitments.items())
        if key == ("Commitments", "RevealedCommitments"):
            return []
        if key == ("SubtensorModule", "Uids"):
            return (
                [] if subnet is None else [(n.hotkey, uid) for uid, n in enumerate(subnet.neurons)]
            )
        if key == ("SubtensorModule", "Keys"):
            return (
                [] if subnet is None else [(uid, n.hotkey) for uid, n in enumerate(subnet.neurons)]
            )
        if key == ("SubtensorModule", "Weights"):
            return [] if subnet is None else sorted(subnet.weights.items())
        raise ChainError(f"fake subtensor: storage map {module}.{storage_function} not modelled")

    async def query_batch(
        self,
        module: str,
        storage_function: str,
        param_sets: list[list[Any]],
        block_hash: str | None = None,
    ) -> list[Any]:
        return [await self.query(module, storage_function, p, block_hash) for p in param_sets]

    async def runtime_call(
        self, api: str, method: str, params: list[Any], block_hash: str | None = None
    ) -> Any:
        if (api, method) != ("SubnetInfoRuntimeApi", "get_metagraph"):
            raise ChainError(f"fake subtensor: runtime API {api}.{method} not modelled")
        subnet = self._subnet(params[0])
        if subnet is None:
            return None
        ns = subnet.neurons
        stake = [int(n.stake_tao * RAO) for n in ns]
        return {
            "netuid": params[0],
            "name": list(b"kinitro"),
            "symbol": list(b"k"),
            "block": self.block,
            "tempo": subnet.tempo,
            "last_step": self.block - self.block % subnet.tempo,
            "blocks_since_last_step": self.block % subnet.tempo,
            "owner_hotkey": ns[0].hotkey if ns else "",
            "owner_coldkey": ns[0].coldkey if ns else "",
            "network_registered_at": 0,
            "num_uids": len(ns),
            "max_uids": 256,
            "hotkeys": [n.hotkey for n in ns],
            "coldkeys": [n.coldkey for n in ns],
            "active": [True] * len(ns),
            "validator_permit": [n.permit for n in ns],
            "last_update": [subnet.last_update.get(u, 0) for u in range(len(ns))],
            "block_at_registration": [n.registered_at for n in ns],
            "alpha_stake": stake,
            "tao_stake": [0] * len(ns),
            "total_stake": stake,
        }

    async def constant(self, module: str, name: str) -> Any:
        raise ChainError(f"fake subtensor: constant {module}.{name} not modelled")

    async def decode_scale(self, type_string: str, data: Any) -> Any:
        raise ChainError("fake subtensor: decode_scale not modelled")

    async def events(self, block_hash: str | None = None) -> list[dict[str, Any]]:
        return []

    async def get_block(
        self, block_number: int | None = None, block_hash: str | None = None
    ) -> dict[str, Any] | None:
        return {"header": {"number": block_number or self.block}, "extrinsics": []}

    # ---- calls -----------------------------------------------------------------------------

    async def compose(self, call: Any) -> Any:
        module, function, params = call
        if (module, function) == ("Commitments", "set_commitment"):
            for entry in params["info"]["fields"]:
                for variant, value in entry.items():
                    raw = bytes.fromhex(str(value).removeprefix("0x"))
                    if not variant.startswith("Raw") or int(variant[3:]) != len(raw):
                        raise ChainError(f"cannot encode Data::{variant} with {len(raw)} bytes")
                    if len(raw) > 128:
                        raise ChainError("Data::Raw holds at most 128 bytes")
        return call

    async def estimate_fee(self, call: Any, keypair: Any) -> Balance:
        return Balance.from_rao(0)

    async def estimate_weight(self, call: Any, keypair: Any) -> dict[str, int]:
        return {"ref_time": 0, "proof_size": 0}

    async def account_next_index(self, address: str) -> int:
        return 0

    async def submit(
        self,
        call: Any,
        keypair: Any,
        *,
        nonce: int | None = None,
        period: int | None = None,
        wait_for_inclusion: bool = True,
        wait_for_finalization: bool = True,
    ) -> ExtrinsicResult:
        module, function, params = call
        payload = repr((module, function, sorted(params.items()), self.block)).encode()
        if not verify_signature(keypair.ss58_address, payload, keypair.sign(payload)):
            return self._fail("BadProof", "invalid transaction signature")
        self.submitted.append((module, function, keypair.ss58_address))
        self.advance(1)  # included in the next block
        if (module, function) == ("Commitments", "set_commitment"):
            return self._set_commitment(keypair.ss58_address, params)
        if (module, function) == ("SubtensorModule", "set_mechanism_weights"):
            return self._set_weights(keypair.ss58_address, params)
        if (module, function) == ("SubtensorModule", "commit_timelocked_mechanism_weights"):
            return self._commit_weights(keypair.ss58_address, params)
        return self._fail("CallFiltered", f"{module}.{function} is not modelled")

    def _fail(self, name: str, message: str) -> ExtrinsicResult:
        return ExtrinsicResult(success=False, message=message, error=ChainError(message, name=name))

    def _ok(self) -> ExtrinsicResult:
        return ExtrinsicResult(
            success=True,
            message="included",
            extrinsic_id=f"{self.block}-1",
            block_hash="0x" + f"{self.block:064x}",
        )

    def _set_commitment(self, signer: str, params: dict[str, Any]) -> ExtrinsicResult:
        subnet = self._subnet(params["netuid"])
        if subnet is None or subnet.uid(signer) is None:
            return self._fail("AccountNotAllowedCommit", "hotkey is not registered on the subnet")
        fields = params["info"]["fields"]
        size = sum(
            len(bytes.fromhex(str(v).removeprefix("0x"))) for e in fields for v in e.values()
        )
        epoch = self.epoch(self.block, subnet.tempo)
        last_epoch, used = subnet.used_space.get(signer, (epoch, 0))
        used = used if last_epoch == epoch else 0
        cost = max(100, size)
        if used + cost > subnet.max_space:
            return self._fail("SpaceLimitExceeded", "commitment space quota used up for this epoch")
        subnet.used_space[signer] = (epoch, used + cost)
        record = {"block": self.block, "deposit": 0, "info": {"fields": fields}}
        subnet.commitments[signer] = record
        subnet.history.setdefault(signer, []).append(record)
        return self._ok()

    def _set_weights(self, signer: str, params: dict[str, Any]) -> ExtrinsicResult:
        subnet = self._subnet(params["netuid"])
        if subnet is not None and subnet.commit_reveal:
            return self._fail("CommitRevealEnabled", "commit-reveal is on: commit weights")
        if subnet is None:
            return self._fail("HotKeyNotRegisteredInSubNet", "hotkey not registered")
        uid = subnet.uid(signer)
        last = subnet.last_update.get(uid, 0) if uid is not None else 0
        if uid is not None and last and self.block - last < subnet.weights_rate_limit:
            return self._fail("SettingWeightsTooFast", "weights set too fast")
        failure = self._apply_weights(
            subnet,
            signer,
            list(params["dests"]),
            list(params["weights"]),
            int(params.get("version_key", 0)),
        )
        if failure is not None:
            return failure
        return self._ok()

    def _apply_weights(
        self,
        subnet: FakeSubnet,
        signer: str,
        dests: list[int],
        values: list[int],
        version_key: int,
    ) -> ExtrinsicResult | None:
        """``internal_set_weights``: None when applied, else the failure."""
        uid = subnet.uid(signer)
        if uid is None:
            return self._fail("HotKeyNotRegisteredInSubNet", "hotkey not registered")
        if subnet.version_key and version_key < subnet.version_key:
            return self._fail("IncorrectWeightVersionKey", "weights version key is too old")
        if not subnet.neurons[uid].permit:
            return self._fail("NeuronNoValidatorPermit", "no validator permit")
        if len(dests) != len(values) or any(not 0 <= d < len(subnet.neurons) for d in dests):
            return self._fail("UidVecContainInvalidOne", "invalid uid in weights")
        if any(not 0 <= v <= 65535 for v in values):
            return self._fail("InvalidArgument", "weights must be u16")
        top = max(values, default=0)
        row = [(d, round(v * 65535 / top)) for d, v in zip(dests, values, strict=True) if top]
        subnet.weights[uid] = row
        if not subnet.commit_reveal:
            subnet.last_update[uid] = self.block
        return None

    def _commit_weights(self, signer: str, params: dict[str, Any]) -> ExtrinsicResult:
        subnet = self._subnet(params["netuid"])
        if subnet is None or not subnet.commit_reveal:
            return self._fail("CommitRevealDisabled", "commit-reveal is off on this subnet")
        if int(params["commit_reveal_version"]) != COMMIT_REVEAL_VERSION:
            return self._fail("IncorrectCommitRevealVersion", "unsupported commit-reveal version")
        uid = subnet.uid(signer)
        if uid is None:
            return self._fail("HotKeyNotRegisteredInSubNet", "hotkey not registered")
        last = subnet.last_update.get(uid, 0)
        if last and self.block - last < subnet.weights_rate_limit:
            return self._fail("CommittingWeightsTooFast", "weights committed too fast")
        epoch = self.epoch(self.block, subnet.tempo)
        queue = subnet.timelocked.setdefault(epoch, [])
        if sum(1 for who, *_ in queue if who == signer) >= MAX_UNREVEALED:
            return self._fail("TooManyUnrevealedCommits", "too many unrevealed commits")
        commit = params["commit"]
        raw = bytes.fromhex(commit.removeprefix("0x")) if isinstance(commit, str) else commit
        queue.append((signer, self.block, bytes(raw), int(params["reveal_round"])))
        subnet.last_update[uid] = self.block
        return self._ok()
