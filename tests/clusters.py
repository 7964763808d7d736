"""A private PostgreSQL cluster and a pgbouncer in front of it, for the tests that need a
database they may stop, or a connection pooler in transaction mode.

``tests/conftest.py`` starts one of each per test session, on free ports on 127.0.0.1, and
stops and removes them at the end. ``initdb``, ``pg_ctl`` and pgbouncer refuse to run as root,
so as root they run as the ``postgres`` user, in a directory handed over to it (pytest's
``tmp_path`` is not readable by that user).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url

from helpers import free_port
from helpers import libpq_url
from helpers import require_service

#: Where Debian keeps the server's programs, by version.
SERVER_PROGRAMS = "/usr/lib/postgresql"
#: The database user of both, with ``trust`` authentication.
USER = "postgres"

#: The ports of the running pgbouncers: an app on one of them must not use server-side
#: prepared statements (see :func:`engine_options`).
POOLED_PORTS: set[int] = set()


def engine_options(database_url: str) -> dict[str, Any]:
    """The engine options of the tests' apps on ``database_url``: on PostgreSQL a pool big
    enough for every racing thread, and through pgbouncer in transaction mode no server-side
    prepared statements (psycopg's ``prepare_threshold=None``), as ``docs/operations.rst``
    tells integrators."""
    if not database_url.startswith("postgresql"):
        return {}
    options: dict[str, Any] = {"pool_size": 20}
    if make_url(database_url).port in POOLED_PORTS:
        options["connect_args"] = {"prepare_threshold": None}
    return options


def _server_programs() -> Path | None:
    """The newest PostgreSQL server's ``bin`` folder, or ``None``."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    folders = sorted(
        Path(SERVER_PROGRAMS).glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    usable = [folder for folder in folders if (folder / "initdb").exists()]
    return usable[-1] if usable else None


def _pgbouncer() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer",) if os.access(path, os.X_OK)), None
    )


def _as_server_user(command: list[str]) -> list[str]:
    """``command`` as the ``postgres`` user when we are root, which the programs refuse."""
    if os.geteuid() == 0:
        return ["runuser", "-u", USER, "--", *command]
    return command


def _hand_over(path: Path) -> None:
    """Make ``path`` the ``postgres`` user's, when we are root."""
    if os.geteuid() == 0:
        account = pwd.getpwnam(USER)
        os.chown(path, account.pw_uid, account.pw_gid)


def _run(command: list[str]) -> None:
    completed = subprocess.run(
        _as_server_user(command), capture_output=True, text=True, timeout=120, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {completed.stderr or completed.stdout}")


def _wait_until_connectable(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(libpq_url(url), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Cluster:
    """A PostgreSQL cluster of the test session's own, which tests may stop and start."""

    directory: Path
    programs: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL."""
        with psycopg.connect(libpq_url(self.url()), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        settings = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.directory}"
            # A throwaway cluster: durability buys nothing here, speed does.
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        log = self.directory / "postgresql.log"
        _run([str(self.programs / "pg_ctl"), "-D", str(self.data), "-l", str(log), "-w", "-t",
              "60", "-o", settings, "start"])  # fmt: skip
        _wait_until_connectable(self.url())

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every connection, as a restart does."""
        _run([str(self.programs / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The server stopped inside the block, and started again after it, however it ends."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """initdb into a temporary directory, start it on a free port; stop and remove it at the
    end. Skips (fails under ``CI=true``) without PostgreSQL's server programs."""
    programs = _server_programs()
    if programs is None:
        require_service("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    assert programs is not None
    directory = Path(tempfile.mkdtemp(prefix="ucloud-2fa-cluster-"))
    _hand_over(directory)
    cluster = Cluster(directory, programs, free_port())
    try:
        _run([str(programs / "initdb"), "-D", str(cluster.data), "-U", USER, "-A", "trust",
              "-E", "UTF8", "--no-locale", "--no-sync"])  # fmt: skip
        cluster.start()
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Pgbouncer:
    """pgbouncer in transaction pooling mode in front of a :class:`Cluster`."""

    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"


#: As ``docs/operations.rst`` advises: transaction pooling, every database of the cluster, no
#: ``ignore_startup_parameters`` (so a client may not rely on ``options=-c ...``), a short retry
#: of the server login, so that it reconnects soon after a restart, and a short wait in its
#: queue, so that requests fail soon while the server is down.
PGBOUNCER_INI = """\
[databases]
* = host=127.0.0.1 port={cluster_port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory}/userlist.txt
pool_mode = transaction
default_pool_size = 40
max_client_conn = 400
server_login_retry = 1
query_wait_timeout = 3
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


@contextmanager
def pgbouncer(cluster: Cluster) -> Iterator[Pgbouncer]:
    """pgbouncer on a free port in front of ``cluster``; stopped (by its process id) at the
    end. Skips (fails under ``CI=true``) without pgbouncer."""
    program = _pgbouncer()
    if program is None:
        require_service("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    assert program is not None
    directory = cluster.directory / "pgbouncer"
    directory.mkdir()
    _hand_over(directory)
    port = free_port()
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        PGBOUNCER_INI.format(cluster_port=cluster.port, user=USER, port=port, directory=directory)
    )
    (directory / "userlist.txt").write_text(f'"{USER}" ""\n')
    _run([program, "-d", str(ini)])  # daemonizes, writing its pid file
    pidfile, deadline = directory / "pgbouncer.pid", time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "pgbouncer did not start"
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    POOLED_PORTS.add(port)
    try:
        _wait_until_connectable(Pgbouncer(port).url(USER))
        yield Pgbouncer(port)
    finally:
        POOLED_PORTS.discard(port)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
