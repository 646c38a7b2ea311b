"""Light realtime clients for ``realtime_fanout.py``: many sockets per process, cheap parsing.

A benchmark of a server's fan-out must not measure its clients. On a 2-core machine a
full WebSocket library and ``json.loads`` per frame cost more than the server does, so
these clients speak the protocol by hand on raw asyncio sockets: an HTTP upgrade, one
masked ``subscribe`` frame, then they only split frames and scan each text frame for the
``"seq":…,"sent":…`` pairs the benchmark's events carry (a regex, no JSON parsing). Pings
are answered, close frames recorded (1008 = closed as a slow consumer). Each socket binds
its own loopback source address (127.0.0.x), so per-address limits see distinct viewers.

Run in worker processes by :func:`worker` (multiprocessing, spawn): it connects its share
of clients, reports ready, and on demand reports counts, ordering violations, a latency
histogram (1 ms bins) and its own CPU time.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from array import array
from typing import Any

HIST_BINS = 60_001  # 1 ms bins, the last one is "60 s or more"
_PAIR = re.compile(rb'"seq":(\d+),"sent":([0-9.eE+-]+)')


def _masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes([0x81])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + mask + body


def _control_frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class LightClient(asyncio.Protocol):
    def __init__(self, host: str, port: int, subscribe: str, stats: Stats) -> None:
        self.host, self.port = host, port
        self.subscribe = subscribe
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.snapshot = asyncio.get_running_loop().create_future()
        self.received = 0
        self.last_seq = -1
        self.close_code: int | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/realtime HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        transport.write(request.encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buf[:end]).split(b"\r\n", 1)[0]
            del self.buf[: end + 4]
            if b" 101 " not in status:
                self._fail(f"handshake refused: {status!r}")
                return
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_masked_text_frame(self.subscribe))
        self._frames()

    def _frames(self) -> None:
        buf, pos, size = self.buf, 0, len(self.buf)
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 4], "big"), pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, start = int.from_bytes(buf[pos + 2 : pos + 10], "big"), pos + 10
            if size - start < length:
                break
            self._frame(opcode, bytes(buf[start : start + length]))
            pos = start + length
        if pos:
            del buf[:pos]

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            if not self.snapshot.done():
                self.snapshot.set_result(None)  # the first text frame answers subscribe
                return
            now = time.time()
            hist, pairs = self.stats.hist, _PAIR.findall(payload)
            if not pairs:
                return
            self.stats.frames += 1
            for seq, sent in pairs:
                n = int(seq)
                if n <= self.last_seq:
                    self.stats.out_of_order += 1
                self.last_seq = n
                hist[min(HIST_BINS - 1, int((now - float(sent)) * 1000))] += 1
            self.received += len(pairs)
        elif opcode == 0x8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            assert self.transport is not None
            self.transport.close()
        elif opcode == 0x9:
            assert self.transport is not None
            self.transport.write(_control_frame(0xA, payload))

    def _fail(self, why: str) -> None:
        self.stats.errors.append(why)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.snapshot.done():
            self.snapshot.set_exception(ConnectionError(f"closed before the snapshot ({exc})"))
        if not self.closed.done():
            self.closed.set_result(self.close_code)


class Stats:
    def __init__(self) -> None:
        self.hist = array("q", bytes(8 * HIST_BINS))
        self.frames = 0
        self.out_of_order = 0
        self.errors: list[str] = []


async def _connect(host: str, port: int, source: str, subscribe: str, stats: Stats) -> LightClient:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: LightClient(host, port, subscribe, stats),
        host,
        port,
        local_addr=(source, 0),
    )
    await asyncio.wait_for(client.snapshot, 120)
    return client


async def _run(conn: Any, host: str, port: int, first: int, count: int, subscribe: str) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    gate = asyncio.Semaphore(64)  # handshakes in flight per process

    async def one(index: int) -> LightClient | None:
        source = f"127.0.{1 + index // 250}.{1 + index % 250}"
        async with gate:
            try:
                return await _connect(host, port, source, subscribe, stats)
            except (OSError, TimeoutError, ConnectionError) as exc:
                stats.errors.append(f"{type(exc).__name__}: {exc}")
                return None

    started = time.perf_counter()
    clients = [c for c in await asyncio.gather(*(one(first + i) for i in range(count))) if c]
    conn.send(("ready", len(clients), time.perf_counter() - started, stats.errors[:3]))
    cpu0 = time.process_time()  # the events arrive while the parent publishes
    command, expected, deadline_s = await loop.run_in_executor(None, conn.recv)
    assert command == "collect"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if all(c.received >= expected or c.closed.done() for c in clients):
            break
        await asyncio.sleep(0.05)
    done_at = time.time()
    conn.send(
        {
            "clients": [
                (c.received, c.closed.result() if c.closed.done() else None) for c in clients
            ],
            "frames": stats.frames,
            "out_of_order": stats.out_of_order,
            "hist": stats.hist.tobytes(),
            "cpu_s": time.process_time() - cpu0,
            "done_at": done_at,
            "errors": stats.errors[:5],
        }
    )
    for client in clients:
        if client.transport is not None:
            client.transport.close()


def worker(conn: Any, host: str, port: int, first: int, count: int, subscribe: str) -> None:
    """Process entry point: ``count`` clients, numbered from ``first`` (source addresses)."""
    try:
        import uvloop  # noqa: PLC0415 - optional: uvloop when it is installed

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_run(conn, host, port, first, count, subscribe))
