"""A throwaway PostgreSQL server for the test suite and the benchmarks.

Usage::

    from tests.pgserver import start_postgres

    with start_postgres() as pg:
        pg.create_database("t1")
        url = pg.url_for("t1")        # postgresql://postgres@127.0.0.1:PORT/t1

``start_postgres()`` runs ``initdb`` in a fresh temporary directory (in /dev/shm,
memory, when it has room and ``TMPDIR`` is not set) and starts the server on
127.0.0.1 with a free TCP port, with durability switched off (fsync,
synchronous_commit, full_page_writes) because the data is thrown away anyway.

PostgreSQL refuses to run as root.  When this process is root (as in CI), the
server binaries are run as the ``postgres`` user if it exists, else ``nobody``
(override with ``DAGCTL_TEST_PG_USER``), through ``runuser`` or ``setpriv``.

When ``DAGCTL_TEST_PG_URL`` is set, nothing is started: the returned object
points at that server (it needs a role allowed to create databases), and
``start``/``stop``/``restart`` raise ``RuntimeError``.

The server is stopped and its directory removed by ``close()``, at interpreter
exit (atexit), and — should the interpreter die without running atexit handlers
(SIGKILL, ``os._exit``) — by a small watchdog process that notices its parent
has gone.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg2
from psycopg2 import sql

__all__ = ["ENV_URL", "ENV_USER", "PgServer", "StopMode", "find_bindir", "start_postgres"]

ENV_URL = "DAGCTL_TEST_PG_URL"
ENV_USER = "DAGCTL_TEST_PG_USER"

StopMode = Literal["smart", "fast", "immediate"]

_SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
_START_TIMEOUT_S = 60
_START_ATTEMPTS = 3
_SHM = Path("/dev/shm")
_SHM_MIN_FREE = 2 << 30  # bytes; a container's 64 MiB /dev/shm is not used

# Runs as a separate process (own session, so Ctrl-C and process-group kills do
# not reach it).  It blocks on its stdin, a pipe whose write end only the parent
# holds; EOF means the parent closed it (normal close) or died.  Either way: stop
# the server if it is still up and remove the temporary directory.
_WATCHDOG_SOURCE = """
import os, shutil, signal, subprocess, sys
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
tmpdir, datadir, *pg_ctl = sys.argv[1:]
sys.stdin.buffer.read()
if os.path.exists(os.path.join(datadir, "postmaster.pid")):
    subprocess.run(
        [*pg_ctl, "stop", "-D", datadir, "-m", "immediate", "-w", "-t", "30"],
        cwd=tmpdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, check=False,
    )
shutil.rmtree(tmpdir, ignore_errors=True)
"""


# --------------------------------------------------------------------------- #
# Locating the binaries and the user to run them as
# --------------------------------------------------------------------------- #


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in _SERVER_BINARIES)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name  # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_bindir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Tried in order: ``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin``,
    then ``PATH``.  (On Debian ``pg_config`` may come from libpq-dev without the
    server, so every candidate is checked for the binaries themselves.)
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
    candidates.extend(
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    )
    for candidate in candidates:
        if _has_server_binaries(candidate):
            return candidate

    found = {name: shutil.which(name) for name in _SERVER_BINARIES}
    initdb = found["initdb"]
    if initdb is not None:
        # Resolve symlinks (e.g. /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb)
        # so that pg_ctl finds the matching postgres next to it.
        real = Path(initdb).resolve().parent
        if _has_server_binaries(real):
            return real
        if all(found.values()):
            return Path(initdb).parent
    missing = [name for name, path in found.items() if path is None] or list(_SERVER_BINARIES)
    tried = ", ".join(str(c) for c in candidates) or "none"
    raise RuntimeError(
        "PostgreSQL server binaries not found: missing "
        + ", ".join(missing)
        + f" (looked in `pg_config --bindir`, /usr/lib/postgresql/*/bin [{tried}] and PATH). "
        "Install the server (Debian: apt-get install postgresql) or set "
        f"{ENV_URL} to a running server."
    )


def _run_as_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as, or None when not root."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(ENV_USER)
    names = [wanted] if wanted else ["postgres", "nobody"]
    for name in names:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        if entry.pw_uid == 0:
            raise RuntimeError(f"{ENV_USER}={name} is root; PostgreSQL refuses to run as root")
        return entry
    raise RuntimeError(
        "running as root, and PostgreSQL refuses to run as root, but no unprivileged user to "
        f"run it as was found (tried: {', '.join(names)}). Create a `postgres` user, set "
        f"{ENV_USER} to an existing unprivileged user, or set {ENV_URL}."
    )


def _privilege_drop_prefix(user: pwd.struct_passwd) -> list[str]:
    runuser = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
    )
    if runuser:
        return [runuser, "-u", user.pw_name, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [
            setpriv,
            f"--reuid={user.pw_uid}",
            f"--regid={user.pw_gid}",
            "--init-groups",
            "--",
        ]
    raise RuntimeError(
        "running as root: need `runuser` or `setpriv` (util-linux) to run PostgreSQL as "
        f"user {user.pw_name!r}, and neither was found"
    )


def _user_gids(user: pwd.struct_passwd) -> set[int]:
    gids = {user.pw_gid}
    with contextlib.suppress(OSError):
        gids.update(os.getgrouplist(user.pw_name, user.pw_gid))
    return gids


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` can reach ``path`` (search permission on it and every parent)."""
    gids = _user_gids(user)
    for directory in [path, *path.parents]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _memory_dir() -> Path | None:
    """/dev/shm when it is there with room to spare, and TMPDIR does not say otherwise:
    the data is thrown away anyway, and in memory CREATE DATABASE and the WAL cost
    next to nothing, where on a busy disk each new database takes a tenth of a second."""
    if "TMPDIR" in os.environ:
        return None
    with contextlib.suppress(OSError):
        if _SHM.is_dir() and shutil.disk_usage(_SHM).free >= _SHM_MIN_FREE:
            return _SHM
    return None


def _make_tmpdir(user: pwd.struct_passwd | None) -> Path:
    memory = _memory_dir()
    if user is None:
        if memory is not None and os.access(memory, os.W_OK | os.X_OK):
            return Path(tempfile.mkdtemp(prefix="dagctl-pg-", dir=memory))
        return Path(tempfile.mkdtemp(prefix="dagctl-pg-"))
    bases = [Path(tempfile.gettempdir()).resolve(), Path("/tmp"), Path("/var/tmp")]
    if memory is not None:
        bases.insert(0, memory)
    for base in bases:
        if base.is_dir() and _traversable_by(base, user):
            tmp = Path(tempfile.mkdtemp(prefix="dagctl-pg-", dir=base))
            os.chown(tmp, user.pw_uid, user.pw_gid)
            return tmp
    raise RuntimeError(
        f"no temporary directory reachable by user {user.pw_name!r} (tried {', '.join(map(str, bases))})"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _with_dbname(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _libpq_url(url: str) -> str:
    """``postgresql+psycopg2://…`` (SQLAlchemy style) -> ``postgresql://…`` for libpq."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


# --------------------------------------------------------------------------- #
# The server
# --------------------------------------------------------------------------- #


class PgServer:
    """A PostgreSQL server for tests: a private local one, or an external one.

    ``PgServer()`` creates and starts a private server; ``PgServer(external_url=...)``
    wraps an existing server without managing it.  Prefer :func:`start_postgres`.
    """

    def __init__(self, *, external_url: str | None = None) -> None:
        self._owner_pid = os.getpid()
        self._closed = False
        self._running = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._tmpdir: Path | None = None
        self._datadir: Path | None = None
        self._user: pwd.struct_passwd | None = None
        self._prefix: list[str] = []
        self._bindir: Path | None = None

        if external_url is not None:
            self.is_external = True
            self._url = _libpq_url(external_url)
            self._port = urlsplit(self._url).port or 5432
            return

        self.is_external = False
        self._bindir = find_bindir()
        self._user = _run_as_user()
        if self._user is not None:
            self._prefix = _privilege_drop_prefix(self._user)
        self._port = _free_port()
        self._url = f"postgresql://postgres@127.0.0.1:{self._port}/postgres"
        self._tmpdir = _make_tmpdir(self._user)
        self._datadir = self._tmpdir / "data"
        atexit.register(self.close)
        try:
            self._start_watchdog()
            self._initdb()
            self._start_with_retries()
        except BaseException:
            self.close()
            raise

    # -- public API -------------------------------------------------------- #

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database (``postgresql://postgres@127.0.0.1:PORT/postgres``)."""
        return self._url

    @property
    def port(self) -> int:
        return self._port

    @property
    def datadir(self) -> Path:
        if self._datadir is None:
            raise RuntimeError(f"external server ({ENV_URL}): its data directory is not ours")
        return self._datadir

    @property
    def logfile(self) -> Path:
        return self._local_tmpdir() / "postgres.log"

    @property
    def running(self) -> bool:
        return self._running

    def url_for(self, dbname: str) -> str:
        """The URL of database ``dbname`` on this server."""
        return _with_dbname(self._url, dbname)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> Any:
        """A psycopg2 connection (caller closes it); ``dbname`` defaults to the URL's database."""
        return psycopg2.connect(self._url if dbname is None else self.url_for(dbname), **kwargs)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally from ``template``); return its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        self._admin_execute([query])
        return self.url_for(name)

    def allow_connections(self, name: str, allowed: bool) -> None:
        """Let clients connect to database ``name``, or not (a template nobody may use)."""
        self._admin_execute(
            [
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.SQL("true" if allowed else "false")
                )
            ]
        )

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating its connections first."""
        self._admin_execute(
            [
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = {} AND pid <> pg_backend_pid()"
                ).format(sql.Literal(name)),
                sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)),
            ]
        )

    def start(self) -> None:
        """Start the server again after :meth:`stop` (no-op if running)."""
        self._check_local("start")
        if self._closed:
            raise RuntimeError("PgServer is closed")
        if not self._running:
            self._start_once()

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the server (``smart``, ``fast`` or ``immediate``); keep its data."""
        self._check_local("stop")
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"bad stop mode {mode!r}")
        if self._running:
            self._pg_ctl("stop", "-m", mode, "-w", "-t", str(_START_TIMEOUT_S))
            self._running = False

    def restart(self, mode: StopMode = "fast") -> None:
        """Stop (with ``mode``) and start again on the same port and data directory."""
        self._check_local("restart")
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory (idempotent)."""
        if self._closed or os.getpid() != self._owner_pid:
            return  # already done, or a forked child that inherited us: not ours to stop
        self._closed = True
        if self.is_external:
            return
        atexit.unregister(self.close)
        try:
            if self._running:
                try:
                    self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
                except (RuntimeError, subprocess.SubprocessError):
                    self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "30", check=False)
                self._running = False
        finally:
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._stop_watchdog()

    def __enter__(self) -> PgServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "external" if self.is_external else "local"
        return f"<PgServer {kind} {self._url}>"

    # -- internals --------------------------------------------------------- #

    def _check_local(self, what: str) -> None:
        if self.is_external:
            raise RuntimeError(
                f"cannot {what} an external PostgreSQL server ({ENV_URL} is set); "
                "tests that need to control the server must skip when pg_server.is_external"
            )

    def _local_tmpdir(self) -> Path:
        if self._tmpdir is None:
            raise RuntimeError(f"external server ({ENV_URL}): no local directory")
        return self._tmpdir

    def _admin_execute(self, statements: Sequence[sql.Composable]) -> None:
        conn = psycopg2.connect(self._url)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()

    def _binary(self, name: str) -> str:
        assert self._bindir is not None
        return str(self._bindir / name)

    def _run(
        self, argv: list[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        for var in ("PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"):
            env.pop(var, None)
        proc = subprocess.run(
            [*self._prefix, *argv],
            cwd=self._local_tmpdir(),  # reachable by the unprivileged user
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{shlex.join(argv)} failed with exit code {proc.returncode}"
                + (f" (as user {self._user.pw_name})" if self._user else "")
                + f"\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(
            [self._binary("pg_ctl"), "-D", str(self.datadir), *args],
            check=check,
            timeout=_START_TIMEOUT_S + 30,
        )

    def _initdb(self) -> None:
        self._run(
            [
                self._binary("initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )

    def _server_options(self) -> str:
        return " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self._port}",
                f"-c unix_socket_directories={shlex.quote(str(self.datadir))}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
                # Checkpoints often enough that WAL files are recycled, not created
                # (each CREATE DATABASE writes the whole template to the WAL), and
                # the WAL stays small when it lives in memory.
                "-c max_wal_size=128MB",
                "-c min_wal_size=32MB",
            ]
        )

    def _start_once(self) -> None:
        # pg_ctl -w waits until the server accepts connections (or fails).
        proc = self._pg_ctl(
            "start",
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-l",
            str(self.logfile),
            "-o",
            self._server_options(),
            check=False,
        )
        if proc.returncode != 0:
            # A failed start can leave a postmaster behind (e.g. a -w timeout).
            self._pg_ctl("stop", "-m", "immediate", "-w", "-t", "10", check=False)
            raise RuntimeError(
                f"pg_ctl start failed (exit code {proc.returncode}, port {self._port})\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\n"
                f"server log ({self.logfile}):\n{self._log_tail()}"
            )
        self._running = True

    def _start_with_retries(self) -> None:
        # The free port is only probed, not held, so another process may take it
        # before the server binds; pick a new one and retry in that case.
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._start_once()
                return
            except RuntimeError as exc:
                if attempt == _START_ATTEMPTS or "Address already in use" not in str(exc):
                    raise
                self._port = _free_port()
                self._url = f"postgresql://postgres@127.0.0.1:{self._port}/postgres"
                time.sleep(0.1)

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def _start_watchdog(self) -> None:
        tmpdir = self._local_tmpdir()
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                _WATCHDOG_SOURCE,
                str(tmpdir),
                str(self.datadir),
                *self._prefix,
                self._binary("pg_ctl"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmpdir,
            start_new_session=True,
        )

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        try:
            if watchdog.stdin is not None:
                watchdog.stdin.close()  # EOF: it finds nothing left to clean up, and exits
            watchdog.wait(timeout=60)
        except subprocess.TimeoutExpired:
            watchdog.send_signal(signal.SIGKILL)
            watchdog.wait()


def start_postgres() -> PgServer:
    """A throwaway local server, or the server named by ``DAGCTL_TEST_PG_URL`` if set."""
    external = os.environ.get(ENV_URL)
    if external:
        return PgServer(external_url=external)
    return PgServer()
