"""The REST API fuzzed against its own OpenAPI schema (schemathesis + hypothesis).

A real backend (uvicorn on loopback, real PostgreSQL, real LocalChain) is seeded with a
competition, a scheduled submission, a job with status, an episode with step samples and
a result, so id-taking routes also hit existing rows. Every operation of
``/openapi.json`` — public and admin (with the admin key) — is then called with
schema-valid and schema-violating inputs. Checks: no 5xx, the status code and the body
are the ones the schema documents, and every error body is ``{"detail", "code"}``.

The server runs in the test's event loop; hypothesis drives blocking HTTP calls from a
worker thread. Shrinking is off and examples are few, so the run stays bounded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from sqlalchemy.exc import DBAPIError

from kinitro.backend.app import classify_db_error
from kinitro.protocol.common import JobState
from kinitro.protocol.validator_ws import Ack, EpisodeSteps, JobStatus, StepSample
from kinitro.storage.artifacts import LocalRegistry

from .conftest import ADMIN_KEY, Backend, Net, create_competition, free_port, login
from .playing import completed, episodes_for
from .test_flow import commit_artifact, get

schemathesis = pytest.importorskip("schemathesis")

MAX_EXAMPLES = 25
BUDGET_S = 75.0
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid_request",
}


async def _seed(backend: Backend, net: Net, registry: LocalRegistry) -> None:
    await create_competition(backend, "mt1")
    validator = await net.validator()
    client, ok = await login(backend, validator)
    assert ok.type == "auth_ok"
    await commit_artifact(net, registry)
    job = await client.recv_type("eval_job", within=15)
    await client.send(Ack.of(job))
    now = datetime.now(UTC)
    messages = [
        JobStatus(job_id=job.job_id, state=JobState.RUNNING, seq=1, episodes_total=2, at=now),
        *episodes_for(job, 1),
        EpisodeSteps(
            job_id=job.job_id,
            episode_index=0,
            batch_index=0,
            samples=[
                StepSample(step=0, observation=[0.0], action=[0.0], reward=0.0, success=False)
            ],
        ),
        completed(job, episodes_for(job, 1)),
    ]
    for message in messages:
        await client.send(message)
        ack = await client.recv_type("ack")
        assert ack.ok, ack
    await client.close()
    assert (await get(backend, "/api/v1/episodes"))["total"] == 2


@dataclass
class Findings:
    failures: dict[str, str] = field(default_factory=dict)
    calls: int = 0

    def add(self, label: str, case: Any, exc: BaseException) -> None:
        inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        for one in inner:
            title = getattr(one, "title", None) or type(one).__name__
            key = f"{label}: {title}"
            self.failures.setdefault(key, f"{case.as_curl_command()}\n{one}")


def _error_body_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx body is ``{"detail": ..., "code": <documented code>}`` (a sealed 403 adds
    ``sealed_until``)."""
    if response.status_code < 400:
        return None
    body = response.json()
    sealed = response.status_code == 403 and isinstance(body, dict) and body.get("code") == "sealed"
    keys = {"detail", "code", "sealed_until"} if sealed else {"detail", "code"}
    assert isinstance(body, dict) and set(body) == keys, body
    expected = "sealed" if sealed else ERROR_CODES.get(response.status_code)
    assert expected is None or body["code"] == expected, (response.status_code, body)
    return True


def _fuzz(base_url: str, findings: Findings) -> None:
    """Runs in a worker thread: blocking HTTP against the server in the test's loop."""
    from schemathesis.checks import not_a_server_error  # noqa: PLC0415 - schemathesis is slow to import: only the fuzz test loads it
    from schemathesis.specs.openapi.checks import (  # noqa: PLC0415 - schemathesis is slow to import: only the fuzz test loads it
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
        schemathesis.check(_error_body_shape),
    ]
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    deadline = time.monotonic() + BUDGET_S
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    for result_ in schema.get_all_operations():
        operation = result_.ok()
        for mode in modes:
            if time.monotonic() > deadline:
                return

            label = f"{operation.label} [{mode.value}]"

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                findings.calls += 1
                try:
                    case.call_and_validate(
                        base_url=base_url, headers=headers, checks=checks, timeout=10
                    )
                except (
                    Exception,
                    BaseExceptionGroup,
                ) as exc:  # collected: one report for every operation
                    findings.add(label, case, exc)  # noqa: B023 - run() is called right away

            try:
                run()
            except Unsatisfiable:  # nothing to violate (an operation without inputs)
                assert mode is schemathesis.GenerationMode.NEGATIVE, label


async def test_rest_api_conforms_to_its_openapi_schema(
    backend: Backend, net: Net, registry: LocalRegistry
) -> None:
    await _seed(backend, net, registry)
    findings = Findings()
    started = time.monotonic()
    await asyncio.to_thread(_fuzz, backend.url, findings)
    elapsed = time.monotonic() - started
    print(f"{findings.calls} calls in {elapsed:.1f} s")
    assert findings.calls > 300, findings.calls
    report = "\n\n".join(f"{k}\n{v}" for k, v in sorted(findings.failures.items()))
    assert not findings.failures, f"{len(findings.failures)} distinct failures:\n{report}"
    assert elapsed < BUDGET_S + 15


async def test_errors_outside_the_schema_keep_the_error_shape(backend: Backend) -> None:
    async with backend.client() as http:
        cases = [
            (await http.get("/api/v1/no-such-route"), 404, "not_found"),
            (await http.delete("/api/v1/competitions"), 405, "method_not_allowed"),
            (await http.get("/api/v1/jobs?state=queued&state=running"), 422, "invalid_request"),
            (await http.get("/api/v1/submissions?miner=5Grw"), 422, "invalid_request"),
            (
                await http.patch("/api/v1/admin/competitions/nope", json={"name": None}),
                422,
                "invalid_request",
            ),
            (await http.get(f"/api/v1/submissions/{2**63}"), 422, "invalid_request"),
            (await http.get("/api/v1/episodes?task=%00"), 422, "invalid_request"),
            (
                await http.post(
                    "/api/v1/admin/api-keys",
                    content=b'{"name": "a\\u0000b", "roles": ["read"]}',
                    headers={"Content-Type": "application/json"},
                ),
                422,
                "invalid_request",
            ),
            (
                await http.post(
                    "/api/v1/admin/api-keys",
                    content=b'{"name": "\\ud800", "roles": ["read"]}',
                    headers={"Content-Type": "application/json"},
                ),
                422,
                "invalid_request",
            ),
            (
                await http.post(
                    "/api/v1/admin/competitions",
                    content=b"\xff\xfe not json",
                    headers={"Content-Type": "application/json"},
                ),
                400,
                "bad_request",
            ),
        ]
        for resp, status, code in cases:
            assert resp.status_code == status, (resp.request.url, resp.text)
            assert resp.json()["code"] == code and resp.json()["detail"], resp.text
        unknown = (await http.get("/api/v1/submissions?miner=5Grw")).json()["detail"][0]
        assert unknown["loc"] == ["query", "miner"] and "miner_hotkey" in unknown["msg"]
        # nothing above broke the service; declared parameters still work
        assert (await http.get("/api/v1/stats")).status_code == 200
        assert (await http.get("/api/v1/validators?limit=500&connected=true")).status_code == 200


async def test_database_unreachable_is_503_unavailable(make_backend: Any) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    async with make_backend(database_url=dead) as backend, backend.client() as http:
        for path in ("/api/v1/competitions", "/api/v1/submissions/1", "/api/v1/admin/api-keys"):
            resp = await http.get(path)
            assert resp.status_code == 503, (path, resp.text)
            assert resp.json() == {
                "detail": "the database is unavailable, retry later",
                "code": "unavailable",
            }
        health = await http.get("/health")
        assert health.status_code == 503 and health.json()["db"] is False


def test_database_errors_map_to_specific_statuses() -> None:
    def wrapped(orig: BaseException) -> DBAPIError:
        return DBAPIError("SELECT 1", None, orig)  # type: ignore[arg-type]

    deadlock = classify_db_error(wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")))
    assert deadlock[:2] == (409, "conflict")
    nul = classify_db_error(wrapped(asyncpg.exceptions.CharacterNotInRepertoireError("0x00")))
    assert nul[:2] == (400, "bad_request")
    gone = classify_db_error(wrapped(ConnectionResetError("reset")))
    assert gone[:2] == (503, "unavailable")
    bug = classify_db_error(wrapped(asyncpg.exceptions.UndefinedColumnError("no column")))
    assert bug[:2] == (500, "internal_error")
