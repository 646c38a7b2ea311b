"""A private PostgreSQL cluster started from the machine's PostgreSQL binaries.

Used when no database URL is given: by the devnet (one persistent cluster under its data
directory) and by the test harness (a throw-away cluster per test session).

PostgreSQL refuses to run as root, so when we are root the cluster is initialised and
run as an unprivileged system user (``postgres`` if it exists, else ``nobody``). Its data
directory must be reachable by that user; when the requested directory sits below a
directory that user cannot enter (for example ``/root``), the cluster lives in
``/var/tmp/kinitro-pg/<hash>`` instead and a ``LOCATION`` file records where.

The server listens on 127.0.0.1 only, on a port chosen once and remembered in the data
directory, with trust authentication for the ``kinitro`` superuser. ``ensure()`` is
idempotent: it initialises, starts or simply reuses the cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kinitro.core.errors import KinitroError

SUPERUSER = "kinitro"


class PostgresClusterError(KinitroError):
    """The private PostgreSQL cluster could not be created or started."""


def find_bin_dir() -> Path:
    """Directory holding ``initdb``/``pg_ctl``: ``$KINITRO_PG_BIN``, PATH, or Debian's layout."""
    override = os.environ.get("KINITRO_PG_BIN")
    if override:
        return Path(override)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda p: _version_key(p.parent.parent.name),
    )
    if candidates:
        return candidates[-1].parent
    raise PostgresClusterError(
        "PostgreSQL server binaries not found (looked for pg_ctl on PATH and in "
        "/usr/lib/postgresql/*/bin). Install them (Debian: apt-get install postgresql) "
        "or pass a database URL."
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split(".") if p.isdigit())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A private cluster rooted at ``data_dir`` (see module docstring)."""

    data_dir: Path
    port: int | None = None
    fsync: bool = True

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self._bin = find_bin_dir()
        self._user = _run_user()
        self._pgdata = self._resolve_pgdata()

    # -- public API -----------------------------------------------------------------
    @property
    def pgdata(self) -> Path:
        return self._pgdata

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self._port()}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self._port()}/{database}"

    def ensure(self, timeout: float = 60.0) -> str:
        """Initialise and start the cluster if needed; return the admin URL."""
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb()
        if not self.is_running():
            self._start(timeout)
        return self.url

    def is_running(self) -> bool:
        result = self._run([str(self._bin / "pg_ctl"), "status", "-D", str(self._pgdata)])
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if (self._pgdata / "PG_VERSION").exists() and self.is_running():
            self._run(
                [str(self._bin / "pg_ctl"), "stop", "-D", str(self._pgdata), "-m", mode, "-w"],
                check=True,
            )

    def destroy(self) -> None:
        """Stop the cluster and delete its files."""
        with contextlib.suppress(PostgresClusterError, subprocess.SubprocessError):
            self.stop("immediate")
        shutil.rmtree(self._pgdata, ignore_errors=True)

    # -- internals ------------------------------------------------------------------
    def _resolve_pgdata(self) -> Path:
        wanted = self.data_dir
        if self._user is None or _reachable_by(wanted.parent, self._user):
            return wanted
        digest = hashlib.sha256(str(wanted).encode()).hexdigest()[:16]
        fallback = Path("/var/tmp/kinitro-pg") / digest  # noqa: S108 - deliberate, see docstring
        wanted.mkdir(parents=True, exist_ok=True)
        (wanted / "LOCATION").write_text(f"{fallback}\n")
        return fallback

    def _port(self) -> int:
        if self.port is None:
            port_file = self._pgdata / "kinitro.port"
            if port_file.exists():
                self.port = int(port_file.read_text().strip())
            else:
                self.port = free_port()
        return self.port

    def _initdb(self) -> None:
        self._pgdata.mkdir(parents=True, exist_ok=True)
        self._pgdata.chmod(0o700)
        if self._user is not None:
            shutil.chown(self._pgdata, self._user.pw_uid, self._user.pw_gid)
        self._run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self._pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ],
            check=True,
        )
        port = self._port()
        conf = self._pgdata / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# --- kinitro private cluster ---\n"
                f"port = {port}\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self._pgdata}'\n"
                "max_connections = 300\n"
                "shared_buffers = 128MB\n"
                f"fsync = {'on' if self.fsync else 'off'}\n"
                f"full_page_writes = {'on' if self.fsync else 'off'}\n"
                f"synchronous_commit = {'on' if self.fsync else 'off'}\n"
            )
        port_file = self._pgdata / "kinitro.port"
        port_file.write_text(f"{port}\n")
        if self._user is not None:
            for path in (conf, port_file):
                shutil.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _start(self, timeout: float) -> None:
        port = self._port()
        log = self._pgdata / "server.log"
        result = self._run(
            [
                str(self._bin / "pg_ctl"),
                "start",
                "-D",
                str(self._pgdata),
                "-l",
                str(log),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                f"-p {port}",
            ]
        )
        if result.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = log.read_text()[-2000:]
            raise PostgresClusterError(
                f"PostgreSQL did not start on port {port}: {result.stderr.strip()}\n{tail}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.1)
        raise PostgresClusterError(f"PostgreSQL is not accepting connections on port {port}")

    def _run(self, argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        result = subprocess.run(  # type: ignore[call-overload]
            argv, capture_output=True, text=True, env=env, cwd="/", check=False, **kwargs
        )
        if check and result.returncode != 0:
            raise PostgresClusterError(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}"
            )
        return result  # type: ignore[no-any-return]


def _run_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresClusterError("running as root and no unprivileged user to run PostgreSQL")


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can traverse every existing ancestor of ``path``."""
    for part in [path, *path.parents]:
        if not part.exists():
            continue
        st = part.stat()
        if st.st_uid == user.pw_uid:
            mode_ok = bool(st.st_mode & 0o100)
        elif st.st_gid == user.pw_gid:
            mode_ok = bool(st.st_mode & 0o010)
        else:
            mode_ok = bool(st.st_mode & 0o001)
        if not mode_ok:
            return False
    return True
