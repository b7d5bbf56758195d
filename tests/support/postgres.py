"""A throwaway PostgreSQL server for tests.

``PostgresServer`` runs ``initdb`` into a fresh temporary directory, starts the server on a free
port on 127.0.0.1 (trust authentication, loopback only, durability switched off for speed) and
removes everything again on ``stop()``. PostgreSQL refuses to run as root, so when the tests run
as root the server runs as the unprivileged ``nobody`` user (via ``setpriv``/``runuser``) in a
temporary directory owned by it.

    server = PostgresServer()
    server.start()
    url = server.create_database("t_orders")   # postgresql+asyncpg://bankhub@127.0.0.1:PORT/t_orders
    ...
    server.stop()
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import asyncpg  # type: ignore[import-untyped]

DEFAULT_DATABASE = "bankhub_test"
DEFAULT_USER = "bankhub"
UNPRIVILEGED_USER = "nobody"

_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """The throwaway server could not be set up; the message includes the server's output."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres``, or None when none is installed.

    ``$BANKHUB_PG_BINDIR`` wins, then ``pg_config --bindir``, then the newest
    ``/usr/lib/postgresql/*/bin``, then ``initdb`` on PATH (resolving symlinks).
    """
    candidates: list[Path] = []
    env_dir = os.environ.get("BANKHUB_PG_BINDIR")
    if env_dir:
        candidates.append(Path(env_dir))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))

    def version_key(path: str) -> tuple[int, ...]:
        version = Path(path).parent.name
        return tuple(int(p) for p in re.findall(r"\d+", version)) or (0,)

    candidates.extend(
        Path(p)
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True)
    )
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_ident(name: str) -> str:
    if not _IDENT_RE.match(name):
        raise ValueError(f"not a safe database/user name: {name!r} (use [a-z0-9_], max 63)")
    return name


class PostgresServer:
    """One PostgreSQL server in a temporary directory; see the module docstring."""

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        database: str = DEFAULT_DATABASE,
        user: str = DEFAULT_USER,
        host: str = "127.0.0.1",
    ) -> None:
        self.bindir = bindir
        self.database = _check_ident(database)
        self.user = _check_ident(user)
        self.host = host
        self.port = 0
        self.tmpdir: Path | None = None
        self.startup_seconds: float | None = None
        self._run_as: pwd.struct_passwd | None = None
        self._started = False

    # -- public API --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the default database (``bankhub_test``)."""
        return self.url_for(self.database)

    @property
    def dsn(self) -> str:
        """libpq / asyncpg DSN of the default database."""
        return self.dsn_for(self.database)

    def url_for(self, database: str, user: str | None = None) -> str:
        """The URL of ``database`` as ``user`` (the superuser unless given)."""
        self._require_started()
        who = _check_ident(user) if user else self.user
        return f"postgresql+asyncpg://{who}@{self.host}:{self.port}/{database}"

    def dsn_for(self, database: str) -> str:
        self._require_started()
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def datadir(self) -> Path:
        assert self.tmpdir is not None, "server not started"
        return self.tmpdir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.tmpdir is not None, "server not started"
        return self.tmpdir / "sock"

    @property
    def logfile(self) -> Path:
        assert self.tmpdir is not None, "server not started"
        return self.tmpdir / "postgres.log"

    def start(self) -> PostgresServer:
        if self._started:
            return self
        if self.bindir is None:
            self.bindir = find_bindir()
        if self.bindir is None:
            raise PostgresError(
                "no PostgreSQL binaries found (looked at $BANKHUB_PG_BINDIR, pg_config --bindir, "
                "/usr/lib/postgresql/*/bin and initdb on PATH); install postgresql"
            )
        t0 = time.monotonic()
        self._run_as = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None
        self.tmpdir = Path(tempfile.mkdtemp(prefix="bankhub-pg-"))
        atexit.register(self.stop)
        try:
            self.socket_dir.mkdir(mode=0o700)
            if self._run_as is not None:
                for path in (self.tmpdir, self.socket_dir):
                    os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
            self._initdb()
            self._start_with_retries()
            self._psql("postgres", f'CREATE DATABASE "{self.database}"')
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and delete its directory. Idempotent."""
        tmpdir, self.tmpdir = self.tmpdir, None
        was_started, self._started = self._started, False
        atexit.unregister(self.stop)
        if tmpdir is None:
            return
        datadir = tmpdir / "data"
        if was_started or (datadir / "postmaster.pid").exists():
            try:
                self._run(
                    [self._tool("pg_ctl"), "stop", "-D", str(datadir), "-m", "immediate", "-w"],
                    cwd=tmpdir,
                    timeout=30,
                )
            except (PostgresError, OSError, subprocess.SubprocessError):
                self._kill_postmaster(datadir)
        shutil.rmtree(tmpdir, ignore_errors=True)

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database and return its SQLAlchemy async URL: empty, or a copy of
        ``template`` (which nobody may be connected to)."""
        name = _check_ident(name or f"t_{uuid.uuid4().hex[:16]}")
        copy = f' TEMPLATE "{_check_ident(template)}"' if template else ""
        self._psql("postgres", f'CREATE DATABASE "{name}"{copy}')
        return self.url_for(name)

    def replace_database(self, name: str, template: str) -> str:
        """Drop ``name`` and create it again as a copy of ``template``; returns its URL."""
        name, template = _check_ident(name), _check_ident(template)
        self._psql(
            "postgres",
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'CREATE DATABASE "{name}" TEMPLATE "{template}"',
        )
        return self.url_for(name)

    def run_sql(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser (roles, grants: what a database administrator does)."""
        self._require_started()
        self._psql(database, sql)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        name = _check_ident(name)
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self.port}" if self._started else "stopped"
        return f"<PostgresServer {state}>"

    # -- internals ---------------------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise PostgresError("PostgresServer is not running; call start() first")

    def _tool(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _as_server_user(self, argv: Sequence[str]) -> list[str]:
        if self._run_as is None:
            return list(argv)
        uid, gid = self._run_as.pw_uid, self._run_as.pw_gid
        setpriv = shutil.which("setpriv")
        if setpriv:
            return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", UNPRIVILEGED_USER, "--", *argv]
        raise PostgresError("running as root but neither setpriv nor runuser is available")

    def _run(
        self, argv: Sequence[str], *, cwd: Path, timeout: float, as_server: bool = True
    ) -> str:
        cmd = self._as_server_user(argv) if as_server else list(argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if self._run_as is not None:
            env["HOME"] = str(cwd)
            env["USER"] = env["LOGNAME"] = UNPRIVILEGED_USER
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise PostgresError(
                f"{' '.join(argv)} failed with exit {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}" + self._log_tail()
            )
        return proc.stdout

    def _log_tail(self) -> str:
        if self.tmpdir is None:
            return ""
        try:
            lines = self.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n--- postgres.log (tail) ---\n" + "\n".join(lines[-40:])

    def _initdb(self) -> None:
        assert self.tmpdir is not None
        self._run(
            [
                self._tool("initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=self.tmpdir,
            timeout=120,
        )
        # Only loopback TCP and the private socket directory; nothing else may connect.
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    def _write_conf(self) -> None:
        settings = {
            "listen_addresses": f"'{self.host}'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
            # the time each transaction committed (pg_xact_commit_timestamp): the scale-out
            # tests measure commit-to-delivery from the commit itself
            "track_commit_timestamp": "on",
        }
        body = "".join(f"{k} = {v}\n" for k, v in settings.items())
        (self.datadir / "postgresql.auto.conf").write_text(
            "# written by tests/support/postgres.py\n" + body
        )

    def _start_with_retries(self, attempts: int = 3) -> None:
        assert self.tmpdir is not None
        for attempt in range(1, attempts + 1):
            self.port = free_port(self.host)
            self._write_conf()
            try:
                self._run(
                    [
                        self._tool("pg_ctl"),
                        "start",
                        "-D",
                        str(self.datadir),
                        "-l",
                        str(self.logfile),
                        "-w",
                        "-t",
                        "60",
                    ],
                    cwd=self.tmpdir,
                    timeout=90,
                )
            except PostgresError:
                # Most likely someone grabbed the port between free_port() and the bind.
                self._kill_postmaster(self.datadir)
                if attempt == attempts:
                    raise
                continue
            self._started = True
            return

    def _kill_postmaster(self, datadir: Path) -> None:
        try:
            pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def _psql(self, database: str, *statements: str) -> None:
        """Run each statement in turn (each its own transaction, as ``psql -c`` would), stopping
        at the first error. Through asyncpg in a thread of its own (the caller may sit under a
        running event loop): a ``psql`` process per call cost ~0.1 s, and the fixtures call
        this three times for every PostgreSQL test."""
        assert self.tmpdir is not None

        async def run() -> None:
            connection = await asyncpg.connect(
                host=self.host, port=self.port, user=self.user, database=database, timeout=30
            )
            try:
                for sql in statements:
                    await connection.execute(sql, timeout=60)
            finally:
                await connection.close()

        with ThreadPoolExecutor(1) as pool:
            try:
                pool.submit(asyncio.run, run()).result()
            except asyncpg.PostgresError as exc:
                raise PostgresError(f"{statements} failed: {exc}{self._log_tail()}") from exc


@dataclass(frozen=True)
class PostgresRoles:
    """One database, its owner role and the runtime role's name (see ``bankhub.db.roles``)."""

    database: str
    owner: str
    app: str
    owner_url: str
    app_url: str
    superuser_url: str
