"""``create_app(settings) -> FastAPI``: the backend service.

The lifespan opens the database pool, the chain client and the artifact registry,
starts the background tasks (LISTEN bridge, chain monitor, scheduler, scoring, stats)
and stops them in reverse order. Tests build as many apps as they like: there are no
module-level singletons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kinitro import __version__
from kinitro.backend import events
from kinitro.backend.api import admin, history, public, renders
from kinitro.backend.api.media import media_router
from kinitro.backend.artifacts import open_verifier
from kinitro.backend.audits import Auditor
from kinitro.backend.broadcaster import Broadcaster
from kinitro.backend.chain_monitor import ChainMonitor
from kinitro.backend.db import repo_validators
from kinitro.backend.db.common import utcnow
from kinitro.backend.db.models import MIGRATION_TREE
from kinitro.backend.deps import ScraperDep
from kinitro.backend.errors import BackendError, SealedError
from kinitro.backend.limits import (
    BodyLimitMiddleware,
    ConnectionCaps,
    RateLimitMiddleware,
    TokenBuckets,
)
from kinitro.backend.listener import Listener
from kinitro.backend.locks import MIGRATIONS, STATS, LeaderLock
from kinitro.backend.metrics import Metrics
from kinitro.backend.realtime import realtime_endpoint
from kinitro.backend.scheduler import Scheduler
from kinitro.backend.score_engine import ScoreEngine
from kinitro.backend.settings import Settings
from kinitro.backend.state import BackendState
from kinitro.backend.stats import collect_stats
from kinitro.backend.validator_hub import ValidatorHub
from kinitro.backend.validator_ws import validator_endpoint
from kinitro.backend.web import mount_dashboard
from kinitro.chain.settings import ChainSettings, open_chain
from kinitro.chain.wallets import load_hotkey
from kinitro.core import migrations
from kinitro.core.db import create_engine, dsn
from kinitro.protocol.realtime import CLOSE_OVERLOADED, CLOSE_TOO_MANY_FROM_ADDRESS, StatsEvent
from kinitro.protocol.views import Health

if TYPE_CHECKING:
    from bittensor_wallet import Keypair

    from kinitro.backend.artifacts import ArtifactVerifier
    from kinitro.chain.port import ChainClient

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    chain: ChainClient | None = None,
    verifier: ArtifactVerifier | None = None,
) -> FastAPI:
    """The backend app. ``chain`` / ``verifier`` default to the configured adapters."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            await _migrate(settings.database_url)
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        own_chain = chain is None
        chain_client = chain if chain is not None else _open_chain(settings)
        state = BackendState(
            settings=settings,
            engine=engine,
            chain=chain_client,
            verifier=verifier if verifier is not None else open_verifier(settings),
            hub=ValidatorHub(),
            broadcaster=Broadcaster(
                settings.realtime_queue_size, settings.realtime_tick_s, metrics
            ),
            metrics=metrics,
            ingest_slots=asyncio.Semaphore(settings.ingest_concurrency),
            rest_buckets=rest_buckets,
            realtime_caps=ConnectionCaps(
                total=settings.realtime_max_clients,
                per_address=settings.realtime_max_per_address,
                total_code=CLOSE_OVERLOADED,
                per_address_code=CLOSE_TOO_MANY_FROM_ADDRESS,
                what="realtime connections",
            ),
            round_key=_round_key(settings),
            media=media,
        )
        app.state.backend = state
        listener = Listener(state)
        tasks = [
            _spawn("listener", listener.run),
            _spawn("broadcaster", state.broadcaster.run),
            _spawn("chain-monitor", ChainMonitor(state).run),
            _spawn("scheduler", Scheduler(state).run),
            _spawn("scoring", ScoreEngine(state).run),
            _spawn("stats", lambda: _stats_loop(state)),
        ]
        if settings.audit_workers:
            tasks.append(_spawn("audits", Auditor(state).run))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.ready.wait(), timeout=10)
        log.info(
            "backend %s up (replica %s) on %s:%s",
            __version__,
            settings.replica_id,
            settings.host,
            settings.port,
        )
        try:
            yield
        finally:
            await state.hub.close_all()
            state.broadcaster.close_all(1001, "backend shutting down")
            for task in reversed(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

            with contextlib.suppress(Exception):
                async with engine.begin() as conn:
                    await repo_validators.disconnect_replica(conn, settings.replica_id)
            if own_chain:
                await chain_client.close()
            await engine.dispose()

    metrics = Metrics()
    rest_buckets = TokenBuckets(settings.rest_rate_per_s, settings.rest_burst)
    media = settings.media_store()
    app = FastAPI(
        title="Kinitro backend",
        version=__version__,
        description="REST API of the Kinitro backend. Realtime feed: `/ws/realtime`; "
        "validators: `/ws/validator`. See docs/backend.md.",
        lifespan=lifespan,
    )
    app.add_middleware(RateLimitMiddleware, buckets=rest_buckets, metrics=metrics)
    # outermost: a body over its route's limit is refused before anything else runs
    app.add_middleware(
        BodyLimitMiddleware,
        limits=[
            ("/api/v1/admin/", settings.max_body_bytes),
            ("/api/v1/renders/", settings.max_body_bytes),  # render workers' reports
        ],
        default=0,
    )

    @app.exception_handler(BackendError)
    async def _backend_error(_request: Request, exc: BackendError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        body: dict[str, Any] = {"detail": str(exc), "code": exc.code}
        if isinstance(exc, SealedError):
            # the API's datetime form (UTC, "Z"), as in the episode's own sealed_until
            body["sealed_until"] = exc.sealed_until.isoformat().replace("+00:00", "Z")
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": jsonable_errors(exc), "code": "invalid_request"}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # framework errors (unparsable body, unknown path, wrong method) in our shape
        code = HTTP_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "")
        return JSONResponse(
            {"detail": str(exc.detail), "code": code or "internal_error"},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(DBAPIError)
    async def _db_error(request: Request, exc: DBAPIError) -> JSONResponse:
        status, code, detail = classify_db_error(exc)
        if status >= 500:
            log.warning("%s %s: database error: %s", request.method, request.url.path, exc.orig)
        return JSONResponse({"detail": detail, "code": code}, status_code=status)

    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(OSError)
    async def _db_unreachable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "the database is unavailable, retry later", "code": "unavailable"},
            status_code=503,
        )

    @app.exception_handler(Exception)
    async def _internal_error(_request: Request, _exc: Exception) -> JSONResponse:
        # a bug: logged with its traceback (by the server), answered in the error shape
        return JSONResponse({"detail": "internal error", "code": "internal_error"}, status_code=500)

    app.include_router(public.router)
    app.include_router(history.router)
    app.include_router(admin.router)
    app.include_router(renders.router)

    @app.get(
        "/health",
        tags=["ops"],
        response_model=Health,
        responses={503: {"model": Health, "description": "The database does not answer"}},
    )
    async def health(request: Request) -> JSONResponse:
        state = request.app.state.backend
        try:
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            db_ok = True
        except Exception:  # noqa: BLE001 - health reports, never raises
            db_ok = False
        body = Health(
            status="ok" if db_ok else "degraded",
            db=db_ok,
            replica_id=settings.replica_id,
            version=__version__,
            validators_connected=len(state.hub.sessions),
            realtime_clients=state.realtime_caps.count,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if db_ok else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Metrics",
        description="Prometheus metrics; in production a token is needed (docs/backend.md).",
        response_class=PlainTextResponse,
    )
    async def metrics_page(request: Request, _scraper: ScraperDep) -> PlainTextResponse:
        data = generate_latest(request.app.state.backend.metrics.registry)
        return PlainTextResponse(data.decode(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ws/validator")
    async def ws_validator(ws: WebSocket) -> None:
        await validator_endpoint(ws, ws.app.state.backend)

    @app.websocket("/ws/realtime")
    async def ws_realtime(ws: WebSocket) -> None:
        await realtime_endpoint(ws, ws.app.state.backend)

    if media is not None:
        app.include_router(media_router(media))

    mount_dashboard(app)
    return app


HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def classify_db_error(exc: DBAPIError) -> tuple[int, str, str]:
    """(status, code, detail) of a database error that reached the edge.

    Values PostgreSQL cannot take (SQLSTATE class 22, or refused by the driver before
    sending, or a NOT NULL / CHECK constraint) are the client's fault: 400; unique and
    foreign-key violations are 409. A transaction aborted by a concurrent change
    (class 40: deadlock, serialization) is 409, safe to retry. Lost or refused connections
    are 503. Anything else is a bug: 500.
    """

    chain: list[BaseException] = []
    cause: BaseException | None = exc.orig
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__
    sqlstate = next(
        (str(getattr(c, "sqlstate", "") or "") for c in chain if getattr(c, "sqlstate", None)), ""
    )
    if sqlstate.startswith("40"):  # deadlock / serialization failure with a concurrent change
        return 409, "conflict", "the request conflicted with a concurrent change; retry it"
    if sqlstate in ("23505", "23503", "23P01"):  # unique / foreign key / exclusion
        return 409, "conflict", "the request conflicts with existing data"
    if (
        sqlstate.startswith("22")
        or sqlstate.startswith("23")
        or any(isinstance(c, asyncpg.InterfaceError) and isinstance(c, ValueError) for c in chain)
    ):
        return 400, "bad_request", "a request value cannot be stored or compared by the database"
    if (
        exc.connection_invalidated
        or any(isinstance(c, OSError | asyncpg.PostgresConnectionError) for c in chain)
        or sqlstate.startswith(("08", "53", "57"))
    ):
        return 503, "unavailable", "the database is unavailable, retry later"
    return 500, "internal_error", "internal error"


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]


def _open_chain(settings: Settings) -> ChainClient:
    return open_chain(
        ChainSettings.load(
            backend=settings.chain,
            local_url=settings.chain_url,
            netuid=settings.netuid,
            network=settings.bittensor_network,
        )
    )


def _round_key(settings: Settings) -> Keypair | None:
    """The hotkey that writes round commitments (``round_wallet_*``), if configured."""
    if not settings.round_wallet_name:
        log.warning(
            "no round_wallet_name: rounds are not committed on chain (devnet only); "
            "`kinitro round verify` will fail them"
        )
        return None

    return load_hotkey(
        settings.round_wallet_name, settings.round_wallet_hotkey, settings.round_wallet_path
    )


async def _migrate(url: str) -> None:
    """Apply the backend migrations; replicas starting together take turns (advisory lock)."""

    conn = await asyncpg.connect(dsn(url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS)
        await asyncio.to_thread(migrations.upgrade, MIGRATION_TREE, url)
    finally:
        await conn.close()


def _spawn(name: str, fn: Callable[[], Coroutine[Any, Any, None]]) -> asyncio.Task[None]:
    return asyncio.create_task(fn(), name=f"backend-{name}")


async def _stats_loop(state: Any) -> None:
    """Emit a ``stats`` event when the counters change (one replica at a time)."""

    lock = LeaderLock(dsn(state.settings.database_url), STATS)
    last = None
    try:
        while True:
            await asyncio.sleep(state.settings.stats_interval_s)
            try:
                if not await lock.held():
                    continue
                async with state.engine.begin() as conn:
                    stats = await collect_stats(conn)
                    if stats != last:
                        last = stats
                        await events.emit(conn, StatsEvent(at=utcnow(), stats=stats))
            except Exception:  # stats are best effort
                log.debug("stats pass failed", exc_info=True)
    finally:
        await lock.release()
