"""The runtime's wait for the next request: asleep until there is data, not before.

A process blocked in ``recv`` on a Unix stream socket is woken each time its peer reads
what it sent (free send-buffer space is signalled on the same wait queue): once per round
trip, after every reply, two needless context switches on the rollout worker's core. The
runtime waits in ``poll`` instead; these tests watch its thread's context switches in
``/proc`` while the peer reads the reply.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kinitro_agent.runtime.server import waiting_recv_into


def _switches(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches in /proc")


@contextmanager
def _blocked_reader(
    wait: Callable[[socket.socket], Callable[[memoryview], int]],
) -> Iterator[tuple[socket.socket, int, list[bytes]]]:
    """A thread that has sent a reply and now waits for the next request with ``wait``;
    yields (the peer's socket, the thread's id, what the thread received)."""
    peer, runtime = socket.socketpair()
    got: list[bytes] = []
    started = threading.Event()
    tid: list[int] = []

    def serve() -> None:
        tid.append(threading.get_native_id())
        runtime.sendall(b"reply")  # now sits in the peer's receive queue
        recv_into = wait(runtime)
        buf = bytearray(64)
        started.set()
        n = recv_into(memoryview(buf))
        got.append(bytes(buf[:n]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert started.wait(5)
        time.sleep(0.2)  # let it block
        yield peer, tid[0], got
    finally:
        peer.sendall(b"next")
        thread.join(5)
        peer.close()
        runtime.close()


def test_reading_the_reply_does_not_wake_the_waiting_runtime() -> None:
    with _blocked_reader(waiting_recv_into) as (peer, tid, got):
        before = _switches(tid)
        assert peer.recv(64) == b"reply"
        time.sleep(0.2)
        assert _switches(tid) == before, "woken by the peer reading its reply"
        assert got == []
    assert got == [b"next"]


def test_waiting_recv_returns_data_and_end_of_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        recv_into = waiting_recv_into(b)
        buf = bytearray(16)
        a.sendall(b"abc")
        assert recv_into(memoryview(buf)) == 3
        assert bytes(buf[:3]) == b"abc"
        a.shutdown(socket.SHUT_WR)
        assert recv_into(memoryview(buf)) == 0
