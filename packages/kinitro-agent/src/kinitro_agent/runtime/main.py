"""Command line of the agent runtime (argparse: it must start fast inside the sandbox)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from kinitro_agent import rpc
from kinitro_agent.runtime.server import LoadedAgent, Server


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m kinitro_agent.runtime",
        description="Serve a Kinitro agent bundle over the agent RPC (runs inside the sandbox).",
    )
    p.add_argument("--bundle", required=True, type=Path, help="agent bundle directory")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="an already connected Unix stream socket fd")
    where.add_argument("--socket", type=Path, help="listen on this Unix socket path")
    where.add_argument("--tcp", help="listen on HOST:PORT (pods)")
    p.add_argument("--ready-fd", type=int, help="write 'ready\\n' here once serving")
    p.add_argument("--max-frame", type=int, default=rpc.DEFAULT_MAX_FRAME)
    return p.parse_args(argv)


def _listen(args: argparse.Namespace) -> socket.socket:
    if args.socket is not None:
        path: Path = args.socket
        path.unlink(missing_ok=True)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
    else:
        host, _, port = str(args.tcp).rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"--tcp expects HOST:PORT, got {args.tcp!r}")
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((host.strip("[]"), int(port)))
    srv.listen(1)
    return srv


def _ready(fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.write(fd, b"ready\n")
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    bundle = args.bundle.resolve()
    if args.fd is not None:
        conn = socket.socket(fileno=args.fd)
        _ready(args.ready_fd)
        loaded = LoadedAgent.load(bundle)
        try:
            Server(conn, loaded, args.max_frame).serve()
        finally:
            conn.close()
        return 0
    srv = _listen(args)
    _ready(args.ready_fd)
    loaded = LoadedAgent.load(bundle)
    try:
        while True:  # one client at a time; a reconnect gets the same agent instance
            conn, _ = srv.accept()
            if conn.family != socket.AF_UNIX:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server = Server(conn, loaded, args.max_frame)
            try:
                server.serve()
            except OSError as exc:
                print(f"kinitro runtime: connection error: {exc}", file=sys.stderr)
            finally:
                conn.close()
            if server.closed:
                return 0
    finally:
        srv.close()
