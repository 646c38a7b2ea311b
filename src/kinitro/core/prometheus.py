"""Serve one process's Prometheus registry over HTTP on a configurable host, port and path.

The validator and the evaluator are not web services, so each starts this small server
beside its work (a daemon thread, ``prometheus_client``'s threaded WSGI server): ``GET
<path>`` answers the text exposition format, every other path 404. The backend serves its
``/metrics`` from its own app instead. Bind to loopback (the default) or a monitoring
network; the data is operational, not secret, but nothing public should scrape it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from kinitro.core.errors import ConfigError


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # one line per scrape is noise; errors still reach stderr


class MetricsServer:
    """``registry`` on ``http://host:port/path`` until :meth:`close`."""

    def __init__(
        self, registry: CollectorRegistry, *, host: str, port: int, path: str = "/metrics"
    ) -> None:
        if not path.startswith("/"):
            raise ConfigError(f"metrics path must start with '/': {path!r}")
        metrics = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != path:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [f"metrics are at {path}\n".encode()]
            return metrics(environ, start_response)  # type: ignore[no-any-return]

        try:
            self._server = make_server(
                host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self.host, self.port, self.path = host, int(self._server.server_port), path
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
