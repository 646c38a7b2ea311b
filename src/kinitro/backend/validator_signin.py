"""The I/O of a validator's sign-in, around the pure decision of :mod:`.validator_auth`.

:func:`challenge` issues the single-use nonce (stored in the database, so any replica can
tell a replay) and builds the ``auth_challenge``; :func:`evidence` finds out what
:func:`~.validator_auth.authorize` needs to know about the answer: the nonce consumed,
the signature checked, the hotkey's neuron (a hotkey the cached metagraph does not permit
waits for a fresh fetch, at most ``metagraph_min_refresh_s``, shared by every sign-in),
and the benchmark series of the active competitions.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from kinitro import __version__
from kinitro.backend import runtimes
from kinitro.backend.db import repo_admin, repo_competitions
from kinitro.backend.validator_auth import Evidence, permitted
from kinitro.protocol.validator_ws import AuthChallenge

if TYPE_CHECKING:
    from kinitro.backend.state import BackendState
    from kinitro.protocol.validator_ws import AuthResponse


async def challenge(state: BackendState) -> AuthChallenge:
    """A new ``auth_challenge``, its nonce recorded until ``auth_timeout_s`` from now."""
    nonce = secrets.token_hex(32)
    expires = datetime.now(UTC) + timedelta(seconds=state.settings.auth_timeout_s)
    async with state.engine.begin() as conn:
        await repo_admin.issue_nonce(conn, nonce, expires)
    return AuthChallenge(nonce=nonce, backend_version=__version__, expires_at=expires)


async def evidence(state: BackendState, response: AuthResponse, nonce: str) -> Evidence:
    """What the backend knows about ``response`` to the ``nonce`` it issued."""
    async with state.engine.begin() as conn:
        nonce_state = await repo_admin.consume_nonce(conn, nonce)
    signature_valid = state.chain.verify_signature(
        response.hotkey, response.signed_payload(), response.signature
    )
    metagraph = await state.metagraph()
    neuron = metagraph.by_hotkey(response.hotkey)
    if not permitted(neuron, state.settings.min_validator_stake):
        # the cached metagraph may predate a registration
        metagraph = await state.metagraph(fresh=True)
        neuron = metagraph.by_hotkey(response.hotkey)
    async with state.engine.connect() as conn:
        in_use = runtimes.series_of(await repo_competitions.list_competitions(conn, active=True))
    return Evidence(
        nonce=nonce,
        nonce_state=nonce_state,
        signature_valid=signature_valid,
        neuron=neuron,
        netuid=metagraph.netuid,
        series_in_use=frozenset(in_use),
    )
