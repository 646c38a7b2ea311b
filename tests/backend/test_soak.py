"""Soak: the backend under a steady mixed load for a bounded time, on loopback.

The validator acceptance network (``tests/validator/e2e.py``: LocalChain, ``kinitro
backend run``, two ``kinitro validator run`` with scripted evaluators, each a real
process) evaluates a miner every few seconds for ``SOAK_S`` seconds while, at the same
time:

* realtime viewers (real WebSocket clients) connect, subscribe, read, and drop — closing
  politely, vanishing without a close frame, or stalling — over and over;
* the validators are restarted (SIGTERM or ``kill -9``) and reconnect;
* bursts of bad requests arrive: oversized and malformed bodies, request floods, garbage
  WebSocket frames, forged and unknown validator sign-ins, too many sockets from one
  address.

Then: every job's result, episodes and statuses are stored exactly once, the backend log
has no error, and its memory is flat: the RSS grows by less than ``RSS_GROWTH_MB`` after
the warm-up and by less than ``RSS_SECOND_HALF_MB`` over the second half of the soak (a
leak grows with the load; allocator high-water marks do not).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import websockets
from bittensor_wallet import Keypair

from kinitro.core import migrations
from kinitro.jobqueue import JobQueue
from kinitro.jobqueue.models import MIGRATION_TREE
from kinitro.protocol.realtime import Ping, Subscribe, dump_message, parse_server_message
from kinitro.protocol.validator_ws import AuthResponse, parse_validator_message
from kinitro.protocol.validator_ws import dump_message as dump_validator
from validator.e2e import ADMIN_KEY, Network  # tests/ is on sys.path (rootdir conftest)
from validator.test_acceptance import assert_exactly_once, wait_all_delivered

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(480)]

SOAK_S = 60.0
VIEWERS = 24
RSS_GROWTH_MB = 60.0
RSS_SECOND_HALF_MB = 20.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Soak:
    def __init__(self, net: Network, queues: list[JobQueue]) -> None:
        self.net = net
        self.queues = queues
        self.ws = f"ws://127.0.0.1:{net.backend_port}"
        self.until = 0.0
        self.problems: list[str] = []
        self.counts: dict[str, int] = {}

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    @property
    def running(self) -> bool:
        return time.monotonic() < self.until

    # ------------------------------------------------------------ the load

    async def miners(self) -> None:
        while self.running:
            await self.net.submit_miner()
            await asyncio.sleep(6.0)

    async def viewer(self, index: int) -> None:
        rng = random.Random(index)
        source = f"127.0.1.{1 + index}"
        while self.running:
            try:
                await self._view(rng, source)
            except (OSError, websockets.WebSocketException, TimeoutError) as exc:
                self.count(f"viewer {type(exc).__name__}")
            await asyncio.sleep(rng.uniform(0.05, 0.5))

    async def _view(self, rng: random.Random, source: str) -> None:
        ws = await websockets.connect(
            f"{self.ws}/ws/realtime", local_addr=(source, 0), open_timeout=10
        )
        sub = Subscribe(event_types=rng.choice([[], ["job_status", "episode_completed"]]))
        await ws.send(dump_message(sub))
        first = parse_server_message(await asyncio.wait_for(ws.recv(), 15))
        if first.type != "snapshot" or first.ref_id != sub.id:
            self.problems.append(f"first realtime frame {first.type}, not the snapshot")
        self.count("viewer sessions")
        end = time.monotonic() + rng.uniform(0.5, 4.0)
        mode = rng.choice(["polite", "polite", "vanish", "stall", "ping"])
        while time.monotonic() < end:
            if mode == "stall":  # not reading: the server must not care
                await asyncio.sleep(end - time.monotonic())
                break
            if mode == "ping":
                await ws.send(dump_message(Ping()))
            with contextlib.suppress(TimeoutError):
                frame = parse_server_message(await asyncio.wait_for(ws.recv(), 0.5))
                if frame.type == "events":
                    self.count("viewer events")
                elif frame.type not in ("pong",):
                    self.problems.append(f"unexpected realtime frame {frame.type}")
        if mode == "vanish":
            ws.transport.abort()  # no close frame, no FIN handshake
        else:
            await ws.close()

    async def validator_restarts(self) -> None:
        rng = random.Random(7)
        while self.running:
            await asyncio.sleep(rng.uniform(8.0, 14.0))
            node = rng.choice(self.net.nodes)
            if rng.random() < 0.5:
                await asyncio.to_thread(node.validator.stop)
            else:
                node.validator.kill9()
            node.validator.start()
            self.count("validator restarts")

    async def bad_requests(self) -> None:
        await asyncio.sleep(SOAK_S / 4)
        await self._burst()
        await asyncio.sleep(SOAK_S / 4)
        await self._burst()

    async def _burst(self) -> None:
        http = self.net.http
        async with httpx.AsyncClient(base_url=http, timeout=15) as client:
            calls = []
            for i in range(10):
                calls.append(self._declared_huge_body(i))
                calls.append(client.post("/api/v1/admin/competitions", content=b"{not json"))
                calls.append(
                    client.post(
                        "/api/v1/admin/competitions",
                        content=b"[" * 5000,
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                    )
                )
                calls.append(client.get("/api/v1/jobs", params={"limit": 10**9}))
                calls.append(client.get("/api/v1/episodes/99999999999999999999999"))
                calls.append(
                    client.get(
                        "/api/v1/admin/api-keys", headers={"Authorization": "Bearer kin_x_y"}
                    )
                )
            calls.extend(client.get("/api/v1/stats") for _ in range(150))  # a flood
            answers = await asyncio.gather(*calls, return_exceptions=True)
        for answer in answers:
            if isinstance(answer, Exception):
                self.count(f"bad request {type(answer).__name__}")
            elif isinstance(answer, int):
                self.count(f"bad request {answer}")
            elif answer.status_code >= 500:
                self.problems.append(f"{answer.request.url.path}: {answer.status_code}")
            else:
                self.count(f"bad request {answer.status_code}")
        await asyncio.gather(
            *(self._garbage_realtime(i) for i in range(8)),
            *(self._bad_sign_in(i) for i in range(8)),
            self._too_many_sockets(),
        )

    async def _declared_huge_body(self, i: int) -> int:
        """A 50 MB body announced, never sent: the status of the answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.net.backend_port)
        writer.write(
            (
                "POST /api/v1/admin/competitions HTTP/1.1\r\nHost: x\r\n"
                f"X-Forwarded-For: 198.51.100.{i}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {50 * 2**20}\r\n\r\n{{"
            ).encode()
        )
        try:
            status_line = await asyncio.wait_for(reader.readline(), 15)
        finally:
            writer.close()
        return int(status_line.split()[1])

    async def _garbage_realtime(self, i: int) -> None:
        with contextlib.suppress(websockets.WebSocketException, OSError, TimeoutError):
            async with websockets.connect(f"{self.ws}/ws/realtime", max_size=None) as ws:
                for frame in (b"\xff\x00garbage", "{" * 300, "x" * 70_000, '{"type":"nope"}'):
                    await ws.send(frame)
                    reply = parse_server_message(await asyncio.wait_for(ws.recv(), 10))
                    if reply.type != "error":
                        self.problems.append(f"garbage realtime frame got {reply.type}")
                self.count("garbage realtime sessions")

    async def _bad_sign_in(self, i: int) -> None:
        with contextlib.suppress(websockets.WebSocketException, OSError, TimeoutError):
            async with websockets.connect(f"{self.ws}/ws/validator") as ws:
                challenge = parse_validator_message(await asyncio.wait_for(ws.recv(), 10))
                if challenge.type != "auth_challenge":
                    self.count("sign-in refused early")
                    return
                key = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
                forger = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
                signer = key if i % 2 else forger  # unknown hotkey, or a forged signature
                payload = f"kinitro-auth:{challenge.nonce}:{key.ss58_address}".encode()
                sig = bytes(signer.sign(payload))
                await ws.send(
                    dump_validator(
                        AuthResponse(
                            hotkey=key.ss58_address,
                            nonce=challenge.nonce,
                            signature=sig.hex(),
                            validator_version="soak",
                        )
                    )
                )
                reply = parse_validator_message(await asyncio.wait_for(ws.recv(), 15))
                expected = "not_permitted" if i % 2 else "auth_failed"
                if reply.type != "error" or reply.code != expected:
                    self.problems.append(f"bad sign-in got {reply}")
                self.count("bad sign-ins refused")

    async def _too_many_sockets(self) -> None:
        sockets, refused = [], 0
        for _ in range(40):  # the per-address cap is 32
            with contextlib.suppress(websockets.WebSocketException, OSError):
                ws = await websockets.connect(
                    f"{self.ws}/ws/realtime", local_addr=("127.0.2.1", 0), open_timeout=10
                )
                sockets.append(ws)
        await asyncio.sleep(1.0)  # refused sockets are closed right after the handshake
        for ws in sockets:
            refused += ws.close_code == 4429
            await ws.close()
        if refused < 8:
            self.problems.append(f"only {refused} of 40 sockets from one address refused")
        self.count("sockets refused per address")

    # ------------------------------------------------------------ the watch

    async def memory(self, samples: list[tuple[float, float]]) -> None:
        assert self.net.backend is not None and self.net.backend.popen is not None
        pid = self.net.backend.popen.pid
        started = time.monotonic()
        while self.running:
            samples.append((time.monotonic() - started, _rss_mb(pid)))
            await asyncio.sleep(1.0)
        samples.append((time.monotonic() - started, _rss_mb(pid)))


def _errors_in(log: Path) -> list[str]:
    bad = []
    for line in log.read_text(errors="replace").splitlines():
        if "Traceback" in line or "Exception in ASGI" in line:
            bad.append(line)
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict) and record.get("level") in ("error", "critical"):
                bad.append(line)
    return bad


async def test_backend_soak(
    tmp_path: Path,
    backend_db_url: str,
    validator_db_url: str,
    make_empty_db: Callable[[], str],
) -> None:
    other = make_empty_db()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(migrations.upgrade, MIGRATION_TREE, other).result()
    net = Network(
        tmp_path,
        backend_db_url,
        [validator_db_url, other],
        backend_env={"KINITRO_BACKEND_LOG_LEVEL": "INFO"},
    )
    queues: list[JobQueue] = []
    try:
        await net.start()
        queues = [JobQueue.connect(node.db, pool_size=2) for node in net.nodes]
        soak = Soak(net, queues)
        # warm-up: the first evaluation and a round of viewers, then the baseline
        await net.submit_miner()
        await wait_all_delivered(net, queues, within=90)
        soak.until = time.monotonic() + 3.0
        await asyncio.gather(*(soak.viewer(i) for i in range(VIEWERS)))
        assert net.backend is not None and net.backend.popen is not None
        baseline = _rss_mb(net.backend.popen.pid)

        samples: list[tuple[float, float]] = []
        soak.until = time.monotonic() + SOAK_S
        await asyncio.gather(
            soak.miners(),
            soak.validator_restarts(),
            soak.bad_requests(),
            soak.memory(samples),
            *(soak.viewer(i) for i in range(VIEWERS)),
        )
        await wait_all_delivered(net, queues, within=120)
        await assert_exactly_once(net, queues)

        assert not soak.problems, soak.problems[:10]
        assert soak.counts.get("viewer sessions", 0) > VIEWERS * 5, soak.counts
        assert soak.counts.get("bad request 413", 0) >= 10, soak.counts
        assert soak.counts.get("bad request 429", 0) >= 1, soak.counts
        assert soak.counts.get("validator restarts", 0) >= 3, soak.counts
        errors = _errors_in(net.root / "logs" / "backend.log")
        assert not errors, errors[:5]
        half = SOAK_S / 2
        second_half = [rss for t, rss in samples if t >= half]
        growth, late = samples[-1][1] - baseline, second_half[-1] - second_half[0]
        print(
            f"soak {SOAK_S:.0f}s: jobs={len(net.miners) * 2} rss baseline={baseline:.0f} MB "
            f"end={samples[-1][1]:.0f} MB (+{growth:.1f}, second half +{late:.1f}); {soak.counts}"
        )
        assert growth < RSS_GROWTH_MB, samples
        assert late < RSS_SECOND_HALF_MB, samples
    finally:
        for jq in queues:
            await jq.close()
        net.close()
