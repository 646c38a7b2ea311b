"""LocalChain state machine and its durable, append-only log.

The state is rebuilt on start-up by replaying ``extrinsics.jsonl`` (one accepted signed
call per line, with the block it was included in) through the same :meth:`ChainState.apply`
that accepts live calls, so replay is exact. ``head.json`` remembers the block height
between restarts (blocks are produced only while the service runs, like a real chain).

Data directory layout::

    <data-dir>/genesis.json      chain id, rules, created_at (written once)
    <data-dir>/extrinsics.jsonl  accepted calls, fsynced before they are acknowledged
    <data-dir>/head.json         {"block": N}, rewritten atomically every block
    <data-dir>/chain.lock        flock held by the running service (one per data dir)
"""

from __future__ import annotations

import bisect
import fcntl
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kinitro.chain.errors import (
    AlreadyRegisteredError,
    BadNonceError,
    ChainError,
    CommitmentTooLargeError,
    InvalidRequestError,
    NotRegisteredError,
    PermissionDeniedError,
    RateLimitedError,
)
from kinitro.chain.local import weights as weights_rules
from kinitro.chain.local.weights import WeightsBook, epoch_index
from kinitro.chain.models import (
    MAX_COMMITMENT_BYTES,
    U16_MAX,
    CommitmentRecord,
    Metagraph,
    Neuron,
    SubnetParams,
    WeightsRecord,
)
from kinitro.chain.signing import require_signature, require_ss58

log = logging.getLogger(__name__)

SIGNING_PREFIX = "kinitro-localchain:v1:"
OPS = ("register", "set_stake", "set_permit", "commit", "set_weights")


COMMITMENT_MIN_COST = 100
"""Bytes of space a commitment uses at least (subtensor's commitments pallet)."""


@dataclass(frozen=True, slots=True)
class ChainRules:
    """What the chain enforces. Fixed at genesis (stored in ``genesis.json``).

    Commitments follow subtensor's space rule, not a fixed rate limit: each hotkey may
    commit ``commit_space_bytes`` per subnet epoch (``tempo`` blocks), a commitment using
    ``max(100, its size)`` bytes of it (:func:`epoch_index`). Weights follow
    :mod:`kinitro.chain.local.weights` (rate limit, commit-reveal, version key).
    """

    tempo: int = 360
    commit_space_bytes: int = 3100
    weights_rate_limit_blocks: int = 100
    max_uids: int = 256
    max_validators: int = 64
    min_validator_stake: float = 1000.0
    commit_reveal_epochs: int = 0
    """0: weights in effect at once (devnet); N: committed, revealed N epochs later."""
    weights_version_key: int = 0
    """The lowest ``version_key`` weights are accepted with (0: any)."""


@dataclass(slots=True)
class _Neuron:
    uid: int
    hotkey: str
    coldkey: str
    registered_at: int
    stake: float = 0.0
    permit_override: bool | None = None


@dataclass(slots=True)
class _Subnet:
    netuid: int
    neurons: list[_Neuron] = field(default_factory=list)
    uid_of: dict[str, int] = field(default_factory=dict)
    commitments: dict[str, tuple[int, str]] = field(default_factory=dict)
    # every commitment a hotkey made, oldest first: reads "as of a block" (archive node)
    history: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    used_space: dict[str, tuple[int, int]] = field(default_factory=dict)  # (epoch, bytes)
    weights: WeightsBook = field(default_factory=WeightsBook)


def signing_payload(chain_id: str, signer: str, nonce: int, call: dict[str, Any]) -> bytes:
    """The exact bytes a signer signs: prefix + canonical JSON (sorted keys, no spaces)."""
    body = json.dumps(
        {"chain_id": chain_id, "signer": signer, "nonce": nonce, "call": call},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return (SIGNING_PREFIX + body).encode()


class ChainState:
    """In-memory chain state; :meth:`apply` validates and applies one signed call."""

    def __init__(self, chain_id: str, rules: ChainRules, block: int = 0) -> None:
        self.chain_id = chain_id
        self.rules = rules
        self.block = block
        self.nonces: dict[str, int] = {}
        self.subnets: dict[int, _Subnet] = {}

    # ---- reads -------------------------------------------------------------------------

    def nonce(self, account: str) -> int:
        return self.nonces.get(account, 0)

    def _subnet(self, netuid: int) -> _Subnet:
        return self.subnets.get(netuid) or _Subnet(netuid)

    def _permits(self, subnet: _Subnet) -> set[int]:
        eligible = [
            n
            for n in subnet.neurons
            if n.permit_override is None and n.stake >= self.rules.min_validator_stake
        ]
        eligible.sort(key=lambda n: (-n.stake, n.uid))
        permitted = {n.uid for n in eligible[: self.rules.max_validators]}
        permitted |= {n.uid for n in subnet.neurons if n.permit_override is True}
        return permitted

    def metagraph(self, netuid: int) -> Metagraph:
        subnet = self._subnet(netuid)
        permits = self._permits(subnet)
        return Metagraph(
            netuid=netuid,
            block=self.block,
            neurons=tuple(
                Neuron(
                    uid=n.uid,
                    hotkey=n.hotkey,
                    coldkey=n.coldkey,
                    stake=n.stake,
                    validator_permit=n.uid in permits,
                    registered_at_block=n.registered_at,
                )
                for n in subnet.neurons
            ),
        )

    def commitments(self, netuid: int) -> list[CommitmentRecord]:
        subnet = self._subnet(netuid)
        records = [
            CommitmentRecord(
                netuid=netuid, hotkey=hotkey, uid=subnet.uid_of.get(hotkey), block=block, data=data
            )
            for hotkey, (block, data) in subnet.commitments.items()
        ]
        records.sort(key=lambda r: (-r.block, r.hotkey))
        return records

    def commitment_at(self, netuid: int, hotkey: str, block: int | None) -> CommitmentRecord | None:
        """``hotkey``'s commitment as of ``block`` (default: now): the latest made at or
        before it, or None."""
        if block is not None and not 0 <= block <= self.block:
            raise InvalidRequestError(f"block {block} does not exist yet (head is {self.block})")
        subnet = self._subnet(netuid)
        history = subnet.history.get(hotkey, [])
        at = self.block if block is None else block
        i = bisect.bisect_right(history, at, key=lambda entry: entry[0])
        if i == 0:
            return None
        made, data = history[i - 1]
        return CommitmentRecord(
            netuid=netuid, hotkey=hotkey, uid=subnet.uid_of.get(hotkey), block=made, data=data
        )

    def weights(self, netuid: int) -> list[WeightsRecord]:
        """Every uid's row in effect now (commits whose reveal block has come included)."""
        subnet = self._subnet(netuid)
        subnet.weights.reveal(self.block)
        return [
            WeightsRecord(
                netuid=netuid,
                validator_uid=uid,
                validator_hotkey=subnet.neurons[uid].hotkey,
                block=block,
                weights=dict(row),
            )
            for uid, (block, row) in sorted(subnet.weights.rows.items())
        ]

    def subnet_params(self, netuid: int) -> SubnetParams:
        rules = self.rules
        return SubnetParams(
            netuid=netuid,
            tempo=rules.tempo,
            weights_rate_limit=rules.weights_rate_limit_blocks,
            commit_reveal=rules.commit_reveal_epochs > 0,
            reveal_period_epochs=max(1, rules.commit_reveal_epochs),
            weights_version_key=rules.weights_version_key,
        )

    # ---- writes ------------------------------------------------------------------------

    def check_signed(self, ext: dict[str, Any]) -> None:
        """Verify the envelope (addresses, nonce, signature) without changing state."""
        signer = require_ss58(str(ext.get("signer", "")), "signer")
        nonce = ext.get("nonce")
        call = ext.get("call")
        if not isinstance(nonce, int) or isinstance(nonce, bool):
            raise InvalidRequestError("nonce must be an integer")
        if not isinstance(call, dict):
            raise InvalidRequestError("call must be an object")
        expected = self.nonce(signer)
        if nonce != expected:
            raise BadNonceError(f"nonce {nonce} for {signer} is stale; next nonce is {expected}")
        require_signature(
            signer, signing_payload(self.chain_id, signer, nonce, call), str(ext.get("signature"))
        )

    def apply(self, ext: dict[str, Any], *, verify: bool = True) -> dict[str, Any]:
        """Validate and apply one signed call at the current block; return its result.

        Raises a :class:`ChainError` subclass and leaves the state untouched on refusal.
        """
        if verify:
            self.check_signed(ext)
        signer: str = ext["signer"]
        call: dict[str, Any] = ext["call"]
        op = call.get("op")
        netuid = call.get("netuid")
        args = call.get("args") or {}
        if op not in OPS:
            raise InvalidRequestError(f"unknown call {op!r}; expected one of {', '.join(OPS)}")
        if not isinstance(netuid, int) or isinstance(netuid, bool) or not 0 <= netuid <= U16_MAX:
            raise InvalidRequestError(f"netuid must be an integer in 0..65535, got {netuid!r}")
        if not isinstance(args, dict):
            raise InvalidRequestError("call args must be an object")
        handler = getattr(self, f"_op_{op}")
        result: dict[str, Any] = handler(signer, netuid, args)
        self.nonces[signer] = self.nonce(signer) + 1
        result["block"] = self.block
        return result

    def _registered(self, netuid: int, hotkey: str) -> tuple[_Subnet, _Neuron]:
        subnet = self.subnets.get(netuid)
        uid = subnet.uid_of.get(hotkey) if subnet else None
        if subnet is None or uid is None:
            raise NotRegisteredError(f"hotkey {hotkey} is not registered on netuid {netuid}")
        return subnet, subnet.neurons[uid]

    def _owned(self, signer: str, netuid: int, args: dict[str, Any]) -> _Neuron:
        hotkey = require_ss58(str(args.get("hotkey", "")), "hotkey")
        _, neuron = self._registered(netuid, hotkey)
        if neuron.coldkey != signer:
            raise PermissionDeniedError(
                f"hotkey {hotkey} is owned by coldkey {neuron.coldkey}, not {signer}"
            )
        return neuron

    def _op_register(self, signer: str, netuid: int, args: dict[str, Any]) -> dict[str, Any]:
        hotkey = require_ss58(str(args.get("hotkey", "")), "hotkey")
        subnet = self.subnets.setdefault(netuid, _Subnet(netuid))
        if hotkey in subnet.uid_of:
            raise AlreadyRegisteredError(
                f"hotkey {hotkey} is already registered on netuid {netuid} "
                f"as uid {subnet.uid_of[hotkey]}"
            )
        if len(subnet.neurons) >= self.rules.max_uids:
            raise PermissionDeniedError(f"netuid {netuid} is full ({self.rules.max_uids} uids)")
        uid = len(subnet.neurons)
        subnet.neurons.append(_Neuron(uid, hotkey, signer, self.block))
        subnet.uid_of[hotkey] = uid
        return {"uid": uid, "hotkey": hotkey, "coldkey": signer}

    def _op_set_stake(self, signer: str, netuid: int, args: dict[str, Any]) -> dict[str, Any]:
        neuron = self._owned(signer, netuid, args)
        stake = args.get("stake")
        if not isinstance(stake, (int, float)) or isinstance(stake, bool) or not stake >= 0:
            raise InvalidRequestError(f"stake must be a number >= 0, got {stake!r}")
        if stake == float("inf"):
            raise InvalidRequestError("stake must be finite")
        neuron.stake = float(stake)
        return {"uid": neuron.uid, "stake": neuron.stake}

    def _op_set_permit(self, signer: str, netuid: int, args: dict[str, Any]) -> dict[str, Any]:
        neuron = self._owned(signer, netuid, args)
        permit = args.get("permit")
        if permit is not None and not isinstance(permit, bool):
            raise InvalidRequestError("permit must be true, false or null (derive from stake)")
        neuron.permit_override = permit
        return {"uid": neuron.uid, "permit": permit}

    def _op_commit(self, signer: str, netuid: int, args: dict[str, Any]) -> dict[str, Any]:
        data = args.get("data")
        if not isinstance(data, str) or not data:
            raise InvalidRequestError("commitment data must be a non-empty string")
        size = len(data.encode())
        if size > MAX_COMMITMENT_BYTES:
            raise CommitmentTooLargeError(
                f"commitment is {size} bytes; the chain limit is {MAX_COMMITMENT_BYTES} bytes"
            )
        subnet, neuron = self._registered(netuid, signer)
        tempo = max(1, self.rules.tempo)
        epoch = epoch_index(netuid, self.block, tempo)
        last_epoch, used = subnet.used_space.get(signer, (epoch, 0))
        used = used if last_epoch == epoch else 0
        cost = max(COMMITMENT_MIN_COST, size)
        budget = self.rules.commit_space_bytes
        if used + cost > budget:
            wait = (epoch + 1) * (tempo + 1) - netuid - 1 - self.block
            raise RateLimitedError(
                f"hotkey {signer} used {used} of its {budget} bytes of commitment space this "
                f"epoch (a commitment uses max(100, its size) = {cost}); the next epoch "
                f"starts in {wait} blocks",
                retry_in_blocks=wait,
            )
        subnet.used_space[signer] = (epoch, used + cost)
        subnet.commitments[signer] = (self.block, data)
        subnet.history.setdefault(signer, []).append((self.block, data))
        return {"uid": neuron.uid, "hotkey": signer, "data": data}

    def _op_set_weights(self, signer: str, netuid: int, args: dict[str, Any]) -> dict[str, Any]:
        subnet, neuron = self._registered(netuid, signer)
        if neuron.uid not in self._permits(subnet):
            raise PermissionDeniedError(
                f"hotkey {signer} (uid {neuron.uid}) has no validator permit on netuid {netuid}"
            )
        row = weights_rules.parse_weights(args.get("weights"), len(subnet.neurons), netuid)
        weights_rules.check_version_key(args.get("version_key", 0), self.rules.weights_version_key)
        reveal_block = weights_rules.set_weights(
            subnet.weights,
            uid=neuron.uid,
            row=row,
            block=self.block,
            netuid=netuid,
            tempo=self.rules.tempo,
            rate_limit=self.rules.weights_rate_limit_blocks,
            reveal_epochs=self.rules.commit_reveal_epochs,
        )
        return {
            "uid": neuron.uid,
            "weights": {str(k): v for k, v in row.items()},
            "reveal_block": reveal_block,
        }


class ChainStore:
    """The data directory: genesis, the append-only extrinsic log and the head block."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.genesis_path = data_dir / "genesis.json"
        self.log_path = data_dir / "extrinsics.jsonl"
        self.head_path = data_dir / "head.json"
        self.lock_path = data_dir / "chain.lock"
        self._log_fd: int | None = None
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        """Hold an exclusive lock on the data dir (one service per chain)."""

        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ChainError(
                f"another LocalChain service is already using {self.data_dir}"
            ) from None
        self._lock_fd = fd

    def load(self, rules: ChainRules) -> ChainState:
        """Create genesis if needed, then replay the log into a fresh state."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.genesis_path.exists():
            try:
                genesis = json.loads(self.genesis_path.read_text())
                # rules of older versions (a fixed commit rate limit) are dropped: the
                # chain then applies today's defaults for what it did not record
                known = {f.name for f in fields(ChainRules)}
                rules = ChainRules(**{k: v for k, v in genesis["rules"].items() if k in known})
                str(genesis["chain_id"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ChainError(
                    f"{self.genesis_path} is corrupted ({type(exc).__name__}: {exc}); restore "
                    "it from a backup or start a new chain in an empty data directory"
                ) from None
        else:
            genesis = {
                "chain_id": "localchain-" + secrets.token_hex(8),
                "created_at": datetime.now(UTC).isoformat(),
                "rules": asdict(rules),
            }
            _atomic_write(self.genesis_path, json.dumps(genesis, indent=2))
        state = ChainState(str(genesis["chain_id"]), rules)
        replayed = self._replay(state)
        head = 0
        if self.head_path.exists():
            try:
                head = int(json.loads(self.head_path.read_text())["block"])
            except (ValueError, KeyError, TypeError):
                log.warning("head.json is unreadable; resuming from the log")
        state.block = max(head, state.block)
        log.info(
            "localchain loaded",
            extra={"chain_id": state.chain_id, "block": state.block, "extrinsics": replayed},
        )
        return state

    def _replay(self, state: ChainState) -> int:
        if not self.log_path.exists():
            return 0
        count = 0
        good_bytes = 0
        with self.log_path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break  # torn final write: never acknowledged, drop it
                try:
                    entry = json.loads(raw)
                    state.block = int(entry["block"])
                    state.apply(entry["ext"], verify=False)
                except (ValueError, KeyError, TypeError, ChainError) as exc:
                    raise ChainError(
                        f"{self.log_path} is corrupted at line {number} ({exc}); restore it "
                        "from a backup or start a new chain in an empty data directory"
                    ) from None
                count += 1
                good_bytes += len(raw)
        if good_bytes != self.log_path.stat().st_size:
            log.warning("dropping a torn final line from the extrinsic log")
            with self.log_path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return count

    def append(self, block: int, ext: dict[str, Any]) -> None:
        """Durably append one accepted call (fsync before returning)."""
        if self._log_fd is None:
            self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = json.dumps({"block": block, "ext": ext}, sort_keys=True, separators=(",", ":"))
        os.write(self._log_fd, (line + "\n").encode())
        os.fsync(self._log_fd)

    def write_head(self, block: int) -> None:
        _atomic_write(self.head_path, json.dumps({"block": block}), fsync=False)

    def close(self) -> None:
        for fd in (self._log_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._log_fd = self._lock_fd = None


def _atomic_write(path: Path, text: str, *, fsync: bool = True) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    tmp.replace(path)
