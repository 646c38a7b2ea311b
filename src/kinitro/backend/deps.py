"""FastAPI dependencies (``Annotated``): state, DB connections, pagination, API keys."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncConnection

from kinitro.backend import apikeys
from kinitro.backend.db import repo_admin
from kinitro.backend.db.common import utcnow
from kinitro.backend.errors import AuthError, ForbiddenError
from kinitro.backend.state import BackendState
from kinitro.protocol.common import COMPETITION_ID_MAX, COMPETITION_ID_PATTERN

MAX_ROW_ID = 2**63 - 1
"""Row ids are PostgreSQL ``bigint``: larger values are refused with 422, not sent to SQL."""

_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$"
_HOTKEY = r"^[1-9A-HJ-NP-Za-km-z]{46,48}$"
_TASK = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"

# --- path and query parameters, constrained like the wire types they name
RowIdPath = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
RowIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
CompetitionIdPath = Annotated[
    str, Path(min_length=1, max_length=COMPETITION_ID_MAX, pattern=COMPETITION_ID_PATTERN)
]
CompetitionIdQuery = Annotated[
    str | None, Query(min_length=1, max_length=COMPETITION_ID_MAX, pattern=COMPETITION_ID_PATTERN)
]
_ROUND_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$"
RoundIdPath = Annotated[str, Path(min_length=1, max_length=80, pattern=_ROUND_ID)]
RoundIdQuery = Annotated[str | None, Query(min_length=1, max_length=80, pattern=_ROUND_ID)]
JobIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=_IDENTIFIER)]
JobIdQuery = Annotated[str | None, Query(min_length=1, max_length=128, pattern=_IDENTIFIER)]
HotkeyQuery = Annotated[str | None, Query(pattern=_HOTKEY, description="SS58 address")]
HotkeyPath = Annotated[str, Path(pattern=_HOTKEY, description="SS58 address")]
TaskQuery = Annotated[str | None, Query(min_length=1, max_length=96, pattern=_TASK)]


def get_state(request: Request) -> BackendState:
    state: BackendState = request.app.state.backend
    return state


StateDep = Annotated[BackendState, Depends(get_state)]


async def get_conn(state: StateDep) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction, committed when the route returns normally."""
    async with state.engine.begin() as conn:
        yield conn


# scope="function": commit before the response is sent. With FastAPI's default ("request")
# the commit ran after the client had its answer: a 201 could precede the row (the next
# request would not see it), and a failed commit would be reported as a success.
ConnDep = Annotated[AsyncConnection, Depends(get_conn, scope="function")]


def strict_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (a mistyped filter would
    otherwise be ignored and return everything) and any given more than once (no
    parameter of this API is a list)."""
    route = request.scope.get("route")
    declared = None
    if route is not None:
        # keyed by the endpoint function: module-level, so shared by every app instance
        declared = _QUERY_NAMES.get(route.endpoint)
        if declared is None:
            declared = _QUERY_NAMES[route.endpoint] = _declared_query(route.dependant)
    seen: set[str] = set()
    problems: list[dict[str, object]] = []
    for name, _ in request.query_params.multi_items():
        if declared is not None and name not in declared:
            msg = "unknown query parameter" + (
                f" (this route takes: {', '.join(sorted(declared))})" if declared else ""
            )
            problems.append({"loc": ("query", name), "msg": msg, "type": "unknown"})
        elif name in seen:
            problems.append(
                {"loc": ("query", name), "msg": "given more than once", "type": "repeated"}
            )
        seen.add(name)
    if problems:
        raise RequestValidationError(problems)


_QUERY_NAMES: dict[Any, frozenset[str]] = {}


def _declared_query(dependant: Any) -> frozenset[str]:
    names = {str(field.alias) for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return frozenset(names)


@dataclass(frozen=True)
class Pagination:
    limit: int
    offset: int


def pagination(
    limit: Annotated[int, Query(ge=1, le=500, description="Page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="Rows to skip")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


PageDep = Annotated[Pagination, Depends(pagination)]

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer kin_…`")


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    key_id: int | None


async def principal(
    state: StateDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or not creds.credentials:
        raise AuthError("an API key is required (Authorization: Bearer …)")
    key = creds.credentials
    boot = state.settings.admin_api_key
    if (
        boot is not None
        and boot.get_secret_value()
        and apikeys.matches(key, apikeys.digest(boot.get_secret_value()))
    ):
        return Principal("bootstrap", frozenset({"admin"}), None)
    prefix = apikeys.prefix_of(key)
    if prefix is None:
        raise AuthError("malformed API key")
    async with state.engine.begin() as conn:
        row = await repo_admin.key_by_prefix(conn, prefix)
        if row is None or not apikeys.matches(key, row["key_hash"]):
            raise AuthError("unknown API key")
        if row["revoked_at"] is not None:
            raise AuthError("API key revoked")
        if row["expires_at"] is not None and row["expires_at"] <= utcnow():
            raise AuthError("API key expired")
        await repo_admin.key_used(conn, row["id"])
    return Principal(row["name"], frozenset(row["roles"]), row["id"])


def require_role(role: str):  # type: ignore[no-untyped-def]
    async def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if role not in who.roles:
            raise ForbiddenError(f"API key {who.name!r} lacks the {role!r} role")
        return who

    return check


AdminDep = Annotated[Principal, Depends(require_role("admin"))]


async def scraper(state: StateDep, request: Request) -> None:
    """Who may read ``/metrics``: anyone when ``metrics_open``; otherwise a scraper with
    the ``metrics_token`` or an API key with the ``admin`` or ``read`` role. (The header
    is read here rather than declared: on the devnet the route needs none.)"""
    if state.settings.metrics_open:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    creds = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())
        if scheme.lower() == "bearer" and value.strip()
        else None
    )
    token = state.settings.metrics_token
    if (
        creds is not None
        and token is not None
        and hmac.compare_digest(creds.credentials.encode(), token.get_secret_value().encode())
    ):
        return
    who = await principal(state, creds)
    if not who.roles & {"admin", "read"}:
        raise ForbiddenError(f"API key {who.name!r} may not read metrics (needs admin or read)")


ScraperDep = Annotated[None, Depends(scraper)]
