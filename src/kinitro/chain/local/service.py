"""The LocalChain HTTP service (``kinitro chain run``): one process owns the chain state
and several processes (backend, validators, miners) share it over HTTP.

Routes (JSON)::

    GET  /health                               {"status": "ok", "block": N}
    GET  /v1/info                              chain id, block, block interval, rules
    GET  /v1/block                             {"block": N}
    GET  /v1/accounts/{ss58}/nonce             {"nonce": N}
    GET  /v1/subnets/{netuid}/metagraph        {"netuid", "block", "neurons": [...]}
    GET  /v1/subnets/{netuid}/commitments      {"netuid", "block", "commitments": [...]}
    GET  /v1/subnets/{netuid}/commitments/{hotkey}?block=N
                                               {"netuid", "block", "commitment": {...}|null}
    GET  /v1/subnets/{netuid}/weights          {"netuid", "block", "weights": [...]}
    POST /v1/extrinsics                        signed call → {"block": N, "result": {...}}

Refusals answer ``{"error": {"code", "message", "retry_in_blocks"?}}`` with a 4xx status;
:mod:`kinitro.chain.local.client` turns them back into typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from kinitro.chain.errors import (
    ChainError,
    ChainUnavailableError,
    InvalidRequestError,
    RateLimitedError,
)
from kinitro.chain.local.state import ChainRules, ChainState, ChainStore

log = logging.getLogger(__name__)

_STATUS = {
    "invalid_request": 400,
    "invalid_weights": 400,
    "commitment_too_large": 400,
    "invalid_signature": 401,
    "permission_denied": 403,
    "not_registered": 403,
    "already_registered": 409,
    "bad_nonce": 409,
    "rate_limited": 429,
    "unavailable": 503,
}


class Extrinsic(BaseModel):
    """A signed call. ``signature`` is over :func:`state.signing_payload`."""

    signer: str
    nonce: int = Field(ge=0)
    call: dict[str, Any]
    signature: str


class LocalChainService:
    """Owns the state, the store and the block producer."""

    def __init__(self, data_dir: Path, *, block_interval: float, rules: ChainRules) -> None:
        if block_interval <= 0:
            raise InvalidRequestError("block interval must be > 0 seconds")
        self.store = ChainStore(data_dir)
        self.block_interval = block_interval
        self.rules = rules
        self.state: ChainState | None = None
        self.lock = asyncio.Lock()
        self._producer: asyncio.Task[None] | None = None

    def open(self) -> None:
        """Lock the data directory and load the state (raises ``ChainError`` clearly)."""
        if self.state is not None:
            return
        self.store.acquire()
        try:
            self.state = self.store.load(self.rules)
        except BaseException:
            self.store.close()
            raise
        self.store.write_head(self.state.block)

    def start(self) -> None:
        self.open()
        self._producer = asyncio.get_running_loop().create_task(self._produce_blocks())

    async def stop(self) -> None:
        if self._producer is not None:
            self._producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._producer
        if self.state is not None:
            self.store.write_head(self.state.block)
        self.store.close()

    @property
    def chain(self) -> ChainState:
        assert self.state is not None, "service not started"
        return self.state

    async def _produce_blocks(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.block_interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at += self.block_interval
            async with self.lock:
                self.chain.block += 1
                self.store.write_head(self.chain.block)

    async def submit(self, ext: Extrinsic) -> dict[str, Any]:
        payload = ext.model_dump()
        async with self.lock:
            result = self.chain.apply(payload)
            # Durable before acknowledged; replay re-applies at the same block.
            try:
                self.store.append(self.chain.block, payload)
            except OSError as exc:
                # Not persisted: rebuild the state from the log so memory matches disk.
                block = self.chain.block
                log.error("cannot append to the extrinsic log: %s", exc)
                self.state = self.store.load(self.rules)
                self.state.block = max(self.state.block, block)
                raise ChainUnavailableError(
                    f"chain storage failed, call not applied: {exc}"
                ) from exc
        log.info(
            "extrinsic included",
            extra={"op": ext.call.get("op"), "signer": ext.signer, "block": result["block"]},
        )
        return result


def create_app(
    data_dir: Path, *, block_interval: float = 1.0, rules: ChainRules | None = None
) -> FastAPI:
    """The LocalChain FastAPI app; the lifespan loads the state and produces blocks."""
    service = LocalChainService(
        data_dir, block_interval=block_interval, rules=rules or ChainRules()
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Kinitro LocalChain", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(ChainError)
    async def _chain_error(_: Request, exc: ChainError) -> JSONResponse:
        body: dict[str, Any] = {"code": exc.code, "message": exc.message}
        if isinstance(exc, RateLimitedError):
            body["retry_in_blocks"] = exc.retry_in_blocks
        return JSONResponse({"error": body}, status_code=_STATUS.get(exc.code, 400))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "block": service.chain.block}

    @app.get("/v1/info")
    async def info() -> dict[str, Any]:
        return {
            "chain_id": service.chain.chain_id,
            "block": service.chain.block,
            "block_interval": service.block_interval,
            "rules": asdict(service.chain.rules),
        }

    @app.get("/v1/block")
    async def block() -> dict[str, int]:
        return {"block": service.chain.block}

    @app.get("/v1/accounts/{account}/nonce")
    async def nonce(account: str) -> dict[str, int]:
        return {"nonce": service.chain.nonce(account)}

    @app.get("/v1/subnets/{netuid}/metagraph")
    async def metagraph(netuid: int) -> dict[str, Any]:
        graph = service.chain.metagraph(netuid)
        return {
            "netuid": netuid,
            "block": graph.block,
            "neurons": [asdict(n) for n in graph.neurons],
        }

    @app.get("/v1/subnets/{netuid}/commitments")
    async def commitments(netuid: int) -> dict[str, Any]:
        return {
            "netuid": netuid,
            "block": service.chain.block,
            "commitments": [asdict(c) for c in service.chain.commitments(netuid)],
        }

    @app.get("/v1/subnets/{netuid}/commitments/{hotkey}")
    async def commitment(netuid: int, hotkey: str, block: int | None = None) -> dict[str, Any]:
        record = service.chain.commitment_at(netuid, hotkey, block)
        return {
            "netuid": netuid,
            "block": service.chain.block if block is None else block,
            "commitment": None if record is None else asdict(record),
        }

    @app.get("/v1/subnets/{netuid}/weights")
    async def weights(netuid: int) -> dict[str, Any]:
        rows = service.chain.weights(netuid)
        return {
            "netuid": netuid,
            "block": service.chain.block,
            "weights": [
                {**asdict(r), "weights": {str(k): v for k, v in r.weights.items()}} for r in rows
            ],
        }

    @app.get("/v1/subnets/{netuid}/params")
    async def params(netuid: int) -> dict[str, Any]:
        return {"block": service.chain.block, **asdict(service.chain.subnet_params(netuid))}

    @app.post("/v1/extrinsics")
    async def submit(ext: Extrinsic) -> dict[str, Any]:
        result = await service.submit(ext)
        return {"block": result["block"], "result": result}

    return app


def run(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9945,
    block_interval: float = 1.0,
    rules: ChainRules | None = None,
    log_level: str = "info",
) -> None:
    """Serve the chain until interrupted (blocking)."""

    app = create_app(data_dir, block_interval=block_interval, rules=rules)
    app.state.service.open()  # fail fast, before binding the port, with a clear message
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
