"""wait_http_ok / stop_process against real child processes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from kinitro.chain.local.process import free_port
from kinitro.core.processes import ProcessExited, stop_process, wait_http_ok

SLOW_SERVER = """
import http.server, sys, time
time.sleep(0.5)  # not ready at once
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_waits_until_the_service_answers_then_stops_it() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SERVER, str(port)])
    try:
        assert wait_http_ok(f"http://127.0.0.1:{port}/health", 30, alive=proc)
        assert not wait_http_ok(f"http://127.0.0.1:{port}/missing", 0.3, alive=proc)
    finally:
        assert stop_process(proc, timeout=5) is not None
    assert proc.poll() is not None


def test_a_crashing_service_is_reported_at_once() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(ProcessExited, match="code 3"):
        wait_http_ok(f"http://127.0.0.1:{free_port()}/health", 30, alive=proc)
    assert time.monotonic() - started < 10


def test_a_process_ignoring_sigterm_is_killed() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    assert stop_process(proc, timeout=0.5) == -9
