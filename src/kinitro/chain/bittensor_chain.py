"""``BittensorChain``: the ``ChainClient`` port on the bittensor 11 SDK.

The SDK is imported lazily (on first use), so the CLI never pays for it. One async
``bittensor.Client`` per adapter; tests inject a fake ``Substrate`` (the SDK's own
chain-access seam, ``Client(substrate=...)``), so the real SDK code — reads, the
``SetWeights`` intent, the executor — runs under test.

* block — ``client.block()``
* metagraph — ``client.subnets.metagraph(netuid, commitments=False)`` (one runtime call)
* commitments — ``client.subnets.commitments(netuid)`` (Commitments pallet maps)
* commitment as of a block — ``client.identity.commitment(netuid, hotkey, block=N)``
  (``Commitments.CommitmentOf`` read at block N's hash: needs an archive node for blocks
  older than the node's state pruning window, ~256 blocks on a default lite node)
* commit — ``Commitments.set_commitment`` with one ``Raw<N>`` field, signed by the hotkey
* subnet params — ``Tempo``, ``WeightsSetRateLimit``, ``CommitRevealWeightsEnabled``,
  ``RevealPeriodEpochs``, ``WeightsVersionKey``
* set_weights — the ``SetWeights`` intent (clip, u16 normalisation, rate-limit preflight,
  commit-reveal when the subnet uses it, ``version_key``), signed by the hotkey. On a
  commit-reveal subnet (the chain's default) nothing changes in ``Weights`` until the
  reveal, so the record returned is the committed row with its inclusion block and
  ``reveal_block``: the first block of epoch ``commit epoch + RevealPeriodEpochs``, from
  the chain's epoch schedule at the inclusion block (``SubnetEpochIndex``,
  ``LastEpochBlock``, ``PendingEpochAt``, ``Tempo``), when the chain decrypts it
* weights — ``SubtensorModule.Weights`` rows (u16) with ``Keys`` and ``LastUpdate``

SDK failures become :mod:`kinitro.chain.errors` by the SDK's ``ErrorCode``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import bittensor
from bittensor import BittensorError, calls

from kinitro.chain.errors import (
    ChainError,
    ChainUnavailableError,
    CommitmentTooLargeError,
    InvalidRequestError,
    InvalidWeightsError,
    NotRegisteredError,
    PermissionDeniedError,
    RateLimitedError,
)
from kinitro.chain.models import (
    MAX_COMMITMENT_BYTES,
    CommitmentRecord,
    Metagraph,
    Neuron,
    SubnetParams,
    WeightsRecord,
)
from kinitro.chain.signing import verify_signature
from kinitro.chain.weights import normalize_u16

if TYPE_CHECKING:
    from bittensor_wallet import Keypair


# what substrate nodes answer for a block whose state they pruned (or never had)
_PRUNED_STATE = ("State already discarded", "UnknownBlock", "Unknown block")


def _translate(exc: BaseException, what: str) -> ChainError:
    """Map an SDK exception to our error tree by its ``ErrorCode``."""
    code = getattr(getattr(exc, "code", None), "value", None)
    name = getattr(exc, "name", None)
    message = f"{what}: {getattr(exc, 'message', None) or exc}"
    if name in ("AccountNotAllowedCommit",) or code == "not_registered":
        return NotRegisteredError(message)
    if code in ("rate_limited", "limit_exceeded"):
        return RateLimitedError(message)
    if code == "not_authorized":
        return PermissionDeniedError(message)
    if code == "invalid_argument":
        return InvalidWeightsError(message) if "weight" in what else InvalidRequestError(message)
    if type(exc).__name__ in ("RpcConnectionError", "ConnectionNotReady", "RpcPolicyError"):
        return ChainUnavailableError(message)
    if any(hint in message for hint in _PRUNED_STATE):
        return ChainUnavailableError(
            f"{message} (this node no longer has that block's state: reading old blocks "
            "needs an archive node, e.g. --network wss://archive.chain.opentensor.ai:443)"
        )
    return ChainError(message, code=str(code or "chain_error"))


class BittensorChain:
    """The port on a Bittensor network (``finney``, ``test``, ``local`` or a ws URL)."""

    def __init__(self, network: str = "finney", netuid: int = 1, *, substrate: Any = None) -> None:
        self.network = network
        self._netuid = netuid
        self._substrate = substrate
        self._client: Any = None

    @property
    def netuid(self) -> int:
        return self._netuid

    async def _connect(self) -> Any:
        if self._client is None:
            client = bittensor.Client(self.network, substrate=self._substrate)
            try:
                await client.connect()
            except Exception as exc:
                raise ChainUnavailableError(
                    f"cannot connect to bittensor network {self.network!r}: {exc}"
                ) from exc
            self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def _call(self, what: str, fn: Any) -> Any:
        client = await self._connect()
        try:
            return await fn(client)
        except BittensorError as exc:
            raise _translate(exc, what) from exc

    # ---- reads --------------------------------------------------------------------------

    async def block(self) -> int:
        return int(await self._call("block", lambda c: c.block()))

    async def metagraph(self) -> Metagraph:
        graph = await self._call(
            "metagraph", lambda c: c.subnets.metagraph(self._netuid, commitments=False)
        )
        if graph is None:
            raise ChainError(f"subnet {self._netuid} does not exist on {self.network}")
        return Metagraph(
            netuid=self._netuid,
            block=int(graph.block),
            neurons=tuple(
                Neuron(
                    uid=int(n.uid),
                    hotkey=str(n.hotkey),
                    coldkey=str(n.coldkey),
                    stake=int(n.total_stake.rao) / 1e9,  # subnet (alpha) units
                    validator_permit=bool(n.validator_permit),
                    registered_at_block=int(n.block_at_registration),
                )
                for n in graph.neurons
            ),
        )

    async def commitments(self) -> list[CommitmentRecord]:
        found = await self._call("commitments", lambda c: c.subnets.commitments(self._netuid))
        records = [
            CommitmentRecord(
                netuid=self._netuid,
                hotkey=str(c.hotkey),
                uid=None if c.uid is None else int(c.uid),
                block=int(c.block),
                data=str(c.value),
            )
            for c in found.values()
            if c.value is not None  # sealed (timelocked) payloads are not readable yet
        ]
        records.sort(key=lambda r: (-r.block, r.hotkey))
        return records

    async def commitment(self, hotkey: str, block: int | None = None) -> CommitmentRecord | None:
        where = "commitment" if block is None else f"commitment at block {block}"

        async def read(client: Any) -> tuple[Any, Any]:
            if block is not None and block > await client.block():
                # a node resolves an unknown block number to no hash, i.e. to the head
                raise InvalidRequestError(f"block {block} does not exist yet")
            found = await client.identity.commitment(self._netuid, hotkey, block=block)
            if found is None:
                return None, None
            uid = await client.query(
                ("SubtensorModule", "Uids"), [self._netuid, hotkey], block=block
            )
            return found, uid

        found, uid = await self._call(where, read)
        if found is None:
            return None
        return CommitmentRecord(
            netuid=self._netuid,
            hotkey=hotkey,
            uid=None if uid is None else int(uid),
            block=int(found.block),
            data=str(found.data),
        )

    async def weights(self) -> list[WeightsRecord]:
        async def read(client: Any) -> list[WeightsRecord]:
            rows = await client.query_map(("SubtensorModule", "Weights"), [self._netuid])
            keys = await client.query_map(("SubtensorModule", "Keys"), [self._netuid])
            updates = await client.query(("SubtensorModule", "LastUpdate"), [self._netuid])
            hotkeys = {int(uid): str(hotkey) for uid, hotkey in keys}
            last = list(updates or [])
            out = []
            for uid, row in rows:
                uid = int(uid)
                values = {int(dest): int(w) for dest, w in row or [] if int(w) > 0}
                if not values:
                    continue
                out.append(
                    WeightsRecord(
                        netuid=self._netuid,
                        validator_uid=uid,
                        validator_hotkey=hotkeys.get(uid),
                        block=int(last[uid]) if uid < len(last) else None,
                        weights=values,
                    )
                )
            return sorted(out, key=lambda r: r.validator_uid)

        result: list[WeightsRecord] = await self._call("weights", read)
        return result

    def verify_signature(self, hotkey: str, message: bytes | str, signature: str | bytes) -> bool:
        return verify_signature(hotkey, message, signature)

    # ---- writes -------------------------------------------------------------------------

    async def commit(self, hotkey: Keypair, data: str) -> CommitmentRecord:
        raw = data.encode()
        if not raw:
            raise InvalidRequestError("commitment data must not be empty")
        if len(raw) > MAX_COMMITMENT_BYTES:
            raise CommitmentTooLargeError(
                f"commitment is {len(raw)} bytes; the chain limit is {MAX_COMMITMENT_BYTES} bytes"
            )

        async def write(client: Any) -> Any:
            call = calls.Commitments.set_commitment(
                netuid=self._netuid, info={"fields": [{f"Raw{len(raw)}": "0x" + raw.hex()}]}
            )
            result = await client.submit_call(call, hotkey, signer="hotkey")
            result.raise_for_failure()
            return await client.query(
                ("Commitments", "CommitmentOf"), [self._netuid, hotkey.ss58_address]
            )

        stored = await self._call("commit", write)
        uid = await self._call(
            "commit",
            lambda c: c.query(("SubtensorModule", "Uids"), [self._netuid, hotkey.ss58_address]),
        )
        return CommitmentRecord(
            netuid=self._netuid,
            hotkey=hotkey.ss58_address,
            uid=None if uid is None else int(uid),
            block=int((stored or {}).get("block") or 0),
            data=data,
        )

    async def subnet_params(self) -> SubnetParams:
        async def read(client: Any) -> SubnetParams:
            def item(name: str) -> Any:
                return client.query(("SubtensorModule", name), [self._netuid])

            tempo = await item("Tempo")
            if tempo is None:
                raise ChainError(f"subnet {self._netuid} does not exist on {self.network}")
            return SubnetParams(
                netuid=self._netuid,
                tempo=int(tempo),
                weights_rate_limit=int(await item("WeightsSetRateLimit") or 0),
                commit_reveal=bool(await item("CommitRevealWeightsEnabled")),
                reveal_period_epochs=int(await item("RevealPeriodEpochs") or 1),
                weights_version_key=int(await item("WeightsVersionKey") or 0),
            )

        params: SubnetParams = await self._call("subnet params", read)
        return params

    async def set_weights(
        self, hotkey: Keypair, weights: Mapping[int, float], *, version_key: int = 0
    ) -> WeightsRecord:
        row = normalize_u16(weights)  # same validation as LocalChain, before signing anything

        async def write(client: Any) -> tuple[int, bool]:
            required = int(
                await client.query(("SubtensorModule", "WeightsVersionKey"), [self._netuid]) or 0
            )
            if required and version_key < required:
                # checked here: a commit-reveal subnet would drop such weights at the
                # reveal, silently
                raise InvalidWeightsError(
                    f"weights version_key {version_key} is older than the subnet's required "
                    f"{required}: set weights_version_key to {required} or newer"
                )
            intent = bittensor.SetWeights(
                netuid=self._netuid,
                weights={int(k): float(v) for k, v in weights.items()},
                version_key=int(version_key),
            )
            result = await client.execute(intent, hotkey)
            result.raise_for_failure()
            block = _inclusion_block(result)
            if block is None:
                block = int(await client.block())
            return block, "reveal_round" in (result.data or {})

        block, committed = await self._call("set weights", write)
        uid = await self._call(
            "set weights",
            lambda c: c.query(("SubtensorModule", "Uids"), [self._netuid, hotkey.ss58_address]),
        )
        reveal_block = await self._call(
            "set weights", lambda c: self._reveal_block(c, block) if committed else _none()
        )
        return WeightsRecord(
            netuid=self._netuid,
            validator_uid=int(uid) if uid is not None else -1,
            validator_hotkey=hotkey.ss58_address,
            block=block,
            weights=row,
            reveal_block=reveal_block,
        )

    async def _reveal_block(self, client: Any, block: int) -> int:
        """When the chain reveals a commit included at ``block``: at the first block of
        epoch ``commit epoch + RevealPeriodEpochs`` (``reveal_crv3_commits``). The next
        epoch fires ``Tempo`` blocks after ``LastEpochBlock`` (or at an owner-triggered
        ``PendingEpochAt``), the later ones every ``Tempo`` blocks."""

        def item(name: str) -> Any:
            return client.query(("SubtensorModule", name), [self._netuid], block=block)

        tempo = int(await item("Tempo") or 0)
        period = max(1, int(await item("RevealPeriodEpochs") or 1))
        last = int(await item("LastEpochBlock") or 0)
        pending = int(await item("PendingEpochAt") or 0)
        nxt = last + tempo
        if pending > 0:
            nxt = min(nxt, pending)
        return max(nxt, block + 1) + (period - 1) * tempo


def _inclusion_block(result: Any) -> int | None:
    """The block an extrinsic was included in, from its id (``"<block>-<index>"``)."""
    head, _, _ = str(getattr(result, "extrinsic_id", None) or "").partition("-")
    return int(head) if head.isdigit() else None


async def _none() -> None:
    return None
