"""``LocalChain``: the ``ChainClient`` adapter for the LocalChain HTTP service.

    chain = LocalChain("http://127.0.0.1:9945", netuid=1)
    record = await chain.commit(wallet.hotkey, "kinitro:v1:...")
    await chain.close()

Besides the port it exposes the devnet administration calls used by ``kinitro chain``:
:meth:`register`, :meth:`set_stake`, :meth:`set_permit` (signed by the owning coldkey).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from kinitro.chain.errors import (
    BadNonceError,
    ChainUnavailableError,
    CommitmentTooLargeError,
    InvalidRequestError,
    RateLimitedError,
    error_from_code,
)
from kinitro.chain.local.state import signing_payload
from kinitro.chain.models import (
    MAX_COMMITMENT_BYTES,
    CommitmentRecord,
    Metagraph,
    Neuron,
    SubnetParams,
    WeightsRecord,
)
from kinitro.chain.signing import SigningKey, sign_message, verify_signature
from kinitro.chain.weights import normalize_u16

if TYPE_CHECKING:
    from bittensor_wallet import Keypair

DEFAULT_URL = "http://127.0.0.1:9945"


class LocalChain:
    """HTTP client of ``kinitro chain run``, bound to one subnet."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        netuid: int = 1,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._netuid = netuid
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=httpx.Timeout(timeout), transport=transport
        )
        self._chain_id: str | None = None

    @property
    def netuid(self) -> int:
        return self._netuid

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> LocalChain:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # ---- transport ---------------------------------------------------------------------

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ChainUnavailableError(
                f"LocalChain at {self.url} is unreachable ({type(exc).__name__}: {exc}); "
                "start it with `kinitro chain run`"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            raise ChainUnavailableError(
                f"LocalChain at {self.url} answered {response.status_code} with non-JSON"
            ) from None
        if response.is_success and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            err = error_from_code(str(error.get("code")), str(error.get("message")))
            if isinstance(err, RateLimitedError):
                err.retry_in_blocks = int(error.get("retry_in_blocks") or 0)
            raise err
        if response.status_code == 422:
            raise InvalidRequestError(f"LocalChain refused the request: {body}")
        raise ChainUnavailableError(f"LocalChain answered {response.status_code}: {body}")

    async def info(self) -> dict[str, Any]:
        """Chain id, current block, block interval and the enforced rules."""
        return await self._request("GET", "/v1/info")

    async def nonce(self, account: str) -> int:
        return int((await self._request("GET", f"/v1/accounts/{account}/nonce"))["nonce"])

    async def submit(self, key: SigningKey, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Sign ``op(args)`` with ``key`` and submit it; returns the result with its block."""
        if self._chain_id is None:
            self._chain_id = str((await self.info())["chain_id"])
        call = {"op": op, "netuid": self._netuid, "args": args}
        for attempt in range(5):
            nonce = await self.nonce(key.ss58_address)
            signature = sign_message(
                key, signing_payload(self._chain_id, key.ss58_address, nonce, call)
            )
            body = {
                "signer": key.ss58_address,
                "nonce": nonce,
                "call": call,
                "signature": signature,
            }
            try:
                reply = await self._request("POST", "/v1/extrinsics", json=body)
            except BadNonceError:
                if attempt == 4:
                    raise
                continue  # another process signed with the same key meanwhile
            result: dict[str, Any] = reply["result"]
            return result
        raise AssertionError("unreachable")

    # ---- ChainClient -------------------------------------------------------------------

    async def block(self) -> int:
        return int((await self._request("GET", "/v1/block"))["block"])

    async def metagraph(self) -> Metagraph:
        body = await self._request("GET", f"/v1/subnets/{self._netuid}/metagraph")
        return Metagraph(
            netuid=self._netuid,
            block=int(body["block"]),
            neurons=tuple(
                Neuron(
                    uid=int(n["uid"]),
                    hotkey=str(n["hotkey"]),
                    coldkey=str(n["coldkey"]),
                    stake=float(n["stake"]),
                    validator_permit=bool(n["validator_permit"]),
                    registered_at_block=int(n["registered_at_block"]),
                )
                for n in body["neurons"]
            ),
        )

    async def commitments(self) -> list[CommitmentRecord]:
        body = await self._request("GET", f"/v1/subnets/{self._netuid}/commitments")
        return [
            CommitmentRecord(
                netuid=self._netuid,
                hotkey=str(c["hotkey"]),
                uid=None if c["uid"] is None else int(c["uid"]),
                block=int(c["block"]),
                data=str(c["data"]),
            )
            for c in body["commitments"]
        ]

    async def commitment(self, hotkey: str, block: int | None = None) -> CommitmentRecord | None:
        params = {} if block is None else {"block": block}
        body = await self._request(
            "GET", f"/v1/subnets/{self._netuid}/commitments/{hotkey}", params=params
        )
        c = body.get("commitment")
        if not isinstance(c, dict):
            return None
        return CommitmentRecord(
            netuid=self._netuid,
            hotkey=str(c["hotkey"]),
            uid=None if c["uid"] is None else int(c["uid"]),
            block=int(c["block"]),
            data=str(c["data"]),
        )

    async def commit(self, hotkey: Keypair, data: str) -> CommitmentRecord:
        size = len(data.encode())
        if size > MAX_COMMITMENT_BYTES:
            raise CommitmentTooLargeError(
                f"commitment is {size} bytes; the chain limit is {MAX_COMMITMENT_BYTES} bytes"
            )
        result = await self.submit(hotkey, "commit", {"data": data})
        return CommitmentRecord(
            netuid=self._netuid,
            hotkey=hotkey.ss58_address,
            uid=int(result["uid"]),
            block=int(result["block"]),
            data=data,
        )

    async def subnet_params(self) -> SubnetParams:
        body = await self._request("GET", f"/v1/subnets/{self._netuid}/params")
        return SubnetParams(
            netuid=self._netuid,
            tempo=int(body["tempo"]),
            weights_rate_limit=int(body["weights_rate_limit"]),
            commit_reveal=bool(body["commit_reveal"]),
            reveal_period_epochs=int(body["reveal_period_epochs"]),
            weights_version_key=int(body["weights_version_key"]),
        )

    async def set_weights(
        self, hotkey: Keypair, weights: Mapping[int, float], *, version_key: int = 0
    ) -> WeightsRecord:
        row = normalize_u16(weights)
        args: dict[str, Any] = {"weights": {str(k): v for k, v in row.items()}}
        if version_key:
            args["version_key"] = version_key
        result = await self.submit(hotkey, "set_weights", args)
        reveal = result.get("reveal_block")
        return WeightsRecord(
            netuid=self._netuid,
            validator_uid=int(result["uid"]),
            validator_hotkey=hotkey.ss58_address,
            block=int(result["block"]),
            weights={int(k): int(v) for k, v in result["weights"].items()},
            reveal_block=None if reveal is None else int(reveal),
        )

    async def weights(self) -> list[WeightsRecord]:
        body = await self._request("GET", f"/v1/subnets/{self._netuid}/weights")
        return [
            WeightsRecord(
                netuid=self._netuid,
                validator_uid=int(w["validator_uid"]),
                validator_hotkey=w["validator_hotkey"],
                block=int(w["block"]),
                weights={int(k): int(v) for k, v in w["weights"].items()},
            )
            for w in body["weights"]
        ]

    def verify_signature(self, hotkey: str, message: bytes | str, signature: str | bytes) -> bool:
        return verify_signature(hotkey, message, signature)

    # ---- devnet administration (signed by the owning coldkey) --------------------------

    async def register(self, coldkey: SigningKey, hotkey: str) -> Neuron:
        """Register ``hotkey`` under ``coldkey`` on the subnet; returns the new neuron."""
        result = await self.submit(coldkey, "register", {"hotkey": hotkey})
        return Neuron(
            uid=int(result["uid"]),
            hotkey=hotkey,
            coldkey=coldkey.ss58_address,
            stake=0.0,
            validator_permit=False,
            registered_at_block=int(result["block"]),
        )

    async def set_stake(self, coldkey: SigningKey, hotkey: str, stake: float) -> int:
        """Set ``hotkey``'s stake (devnet faucet); returns the block."""
        result = await self.submit(coldkey, "set_stake", {"hotkey": hotkey, "stake": stake})
        return int(result["block"])

    async def set_permit(self, coldkey: SigningKey, hotkey: str, permit: bool | None) -> int:
        """Force the validator permit on/off, or ``None`` to derive it from stake."""
        result = await self.submit(coldkey, "set_permit", {"hotkey": hotkey, "permit": permit})
        return int(result["block"])
