"""Engine and unit of work. Services never commit; the request or job that owns the work does."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiosqlite
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bankhub.db import commit_order, inline_sqlite
from bankhub.db.tenancy import TenantSession

log = logging.getLogger(__name__)

#: PostgreSQL: the channel a unit of work that queued background work notifies on commit, and
#: runners listen on (``bankhub.jobs.wakeup``); the payload names the kinds of work queued
WORK_CHANNEL = "bankhub_work"
_NOTIFY_WORK = text(f"SELECT pg_notify('{WORK_CHANNEL}', :kinds)")
#: the kinds of background work a unit of work can queue: the names of the runner's sources
#: (``events.mark_outbox``). A commit wakes only the sources of the kinds it queued: every
#: source's claim is a writing unit of work, and on SQLite the writers take turns, so waking
#: them all after each event made the deliveries' claim wait behind the others' (a fifth more
#: commit-to-delivery time, bench/webhooks.py).
WORK_KINDS: Final = frozenset({"deliveries", "outbox", "syncs"})

#: SQLite: how many times a scrub's checkpoint waits out the busy timeout for readers
SCRUB_CHECKPOINT_TRIES = 3
#: PostgreSQL: how long a scrub's VACUUM waits for a table another VACUUM (or a schema change)
#: holds, before it gives up and says so
SCRUB_LOCK_TIMEOUT = "30s"
#: PostgreSQL: the tables among ``names`` (in the current schema) this role may VACUUM: their
#: owner, the database's owner or a superuser (and, from PostgreSQL 17, the MAINTAIN privilege)
_VACUUMABLE = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relname = ANY(:names) AND (
    pg_has_role(current_user, c.relowner, 'USAGE')
    OR pg_has_role(current_user, (SELECT datdba FROM pg_database
                                  WHERE datname = current_database()), 'USAGE')
    OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
    {maintain}
)
ORDER BY c.relname
"""


#: PostgreSQL: a unit of work that added at least this many rows to a table, and more than
#: ``ANALYZE_FRACTION`` of the rows the planner believes it holds, has it analyzed after the
#: commit (a refresh's few rows never pay for it)
ANALYZE_MIN_ROWS = 1_000
#: autovacuum's own default (``autovacuum_analyze_scale_factor``), applied at once instead of
#: at its next round
ANALYZE_FRACTION = 0.1
#: how long that ANALYZE waits for a table another ANALYZE or VACUUM holds (then it has fresh
#: statistics anyway, or soon)
ANALYZE_LOCK_TIMEOUT = "2s"
#: ``session.info`` key: rows added per table by the unit of work (:func:`note_growth`)
_GROWN = "bankhub.grown"
#: the planner's idea of a table's size (-1: never analyzed nor vacuumed)
_RELTUPLES = text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)")


def note_growth(session: AsyncSession, table: str, rows: int) -> None:
    """``rows`` were added to ``table`` in this unit of work; after a large ingest the table's
    planner statistics are refreshed once it commits (:meth:`Database.refresh_statistics`).

    Why: right after a large first sync, before autovacuum's next round, PostgreSQL's planner
    still believes the table small; it then plans an account's newest-first page as a bitmap
    scan of the account's rows and a sort (milliseconds a page, growing with the account)
    instead of reading the index backwards (docs/operations.md, "Planner statistics")."""
    if rows >= ANALYZE_MIN_ROWS:
        grown: dict[str, int] = session.info.setdefault(_GROWN, {})
        grown[table] = grown.get(table, 0) + rows


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """What :meth:`Database.scrub` achieved."""

    #: SQLite: the write-ahead log was emptied into the file; PostgreSQL: every table vacuumed
    complete: bool
    #: PostgreSQL: the tables this role may not vacuum (left to autovacuum)
    skipped: tuple[str, ...] = ()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Erased and purged data must not linger in the free space of pages or in free pages (not
    # every build's default): deleted cells and freed pages are overwritten with zeros as they
    # are freed. FAST would leave freed pages as they were; ON costs ingest nothing measurable
    # (docs/security.md, "Erasure").
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


#: the files of a SQLite database: SQLite makes the others with the main file's mode
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private_sqlite_files(url: str) -> None:
    """The database file is created readable and writable by its owner only (0600), before
    SQLite opens it (SQLite would create it with the process's umask, world-readable by
    default); files of an older installation are narrowed to 0600 too."""
    name = make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if path.parent.is_dir():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for suffix in SQLITE_SUFFIXES:
        part = path.with_name(path.name + suffix)
        if part.exists() and part.stat().st_mode & 0o777 != 0o600:
            part.chmod(0o600)


#: how long a failed SQLite connect waits for aiosqlite's worker thread to stop
_THREAD_STOP_WAIT = 5.0


async def _open_sqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """aiosqlite's connect, which waits for the connection's worker thread when connecting fails.

    aiosqlite (0.22) stops the thread of a failed connect without waiting for it; if the event
    loop closes first (a process shutting down right after a failed readiness probe, or a
    command that could not open its database) the thread dies on "Event loop is closed" and
    prints a traceback. Waiting here means a failed connect leaves no thread behind. A
    cancelled connect does not wait: whoever cancelled it wants control back now.
    """
    connection = aiosqlite.connect(*args, **kwargs)
    # as SQLAlchemy's own aiosqlite adapter does: the thread never keeps a process alive
    worker = connection._thread  # aiosqlite has no public handle on it
    worker.daemon = True
    try:
        return await connection
    except Exception:
        await asyncio.to_thread(worker.join, _THREAD_STOP_WAIT)
        raise


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        private_sqlite_files(url)
        engine = create_async_engine(
            url, connect_args={"timeout": 10, "async_creator_fn": _open_sqlite}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


#: SQLite: read connections kept open (reads need no lock in WAL mode; each is a file handle)
READ_POOL_SIZE = 8
READ_POOL_OVERFLOW = 24


#: PostgreSQL: the read pool's connections (the API's account and transaction reads)
PG_READ_POOL_SIZE = 5
PG_READ_POOL_OVERFLOW = 10


def make_read_engine(url: str) -> AsyncEngine | None:
    """The engine of :meth:`Database.read`, or None where reads share the main one (an
    in-memory SQLite database each connection would see empty).

    SQLite: connections that read on the event loop (``inline_sqlite``). PostgreSQL: a pool of
    its own without ``pool_pre_ping``, whose check before every checkout cost a round trip of
    its own (a transaction: BEGIN, the ping, ROLLBACK) on every read. A pooled connection found
    dead instead fails its first statement, is thrown away with the pool's other connections of
    its age, and the read's authentication, which sends that first statement, retries once on
    a fresh one (``api.auth``): nothing of the read was done yet."""
    if make_url(url).get_backend_name() == "postgresql":
        return create_async_engine(
            url, pool_size=PG_READ_POOL_SIZE, max_overflow=PG_READ_POOL_OVERFLOW
        )
    return _inline_engine(url, inline_sqlite.reader, READ_POOL_SIZE, READ_POOL_OVERFLOW)


def make_batch_engine(url: str) -> AsyncEngine | None:
    """SQLite: an engine whose connections write on the event loop (``inline_sqlite.writer``),
    for the group commit's batches; None elsewhere (PostgreSQL, an in-memory database)."""
    return _inline_engine(url, inline_sqlite.writer, 1, 1)


def _inline_engine(
    url: str, creator: Callable[..., Any], pool_size: int, overflow: int
) -> AsyncEngine | None:
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    if "mode=memory" in name or parsed.query.get("mode") == "memory":
        return None
    uri = parsed.query.get("uri") == "true"
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=overflow,
        connect_args={"async_creator_fn": creator(name, uri=uri)},
    )


#: SQLite: the longest a thread that wants the GIL waits for the one holding it (Python's
#: default is 5 ms); see :func:`shorten_switch_interval`
SQLITE_SWITCH_INTERVAL = 0.001


def shorten_switch_interval() -> None:
    """SQLite: let aiosqlite's connection threads have the GIL back sooner, process-wide.

    Each statement a SQLite unit of work sends through aiosqlite crosses to the connection's
    thread and back, and each crossing waits for the GIL. While the event loop is busy (a
    sync categorizing and sealing its next batch, requests being served), a waiting thread
    gets it only when the interpreter's switch interval runs out, 5 ms by default: a
    2,000-row batch written in one step beside the next batch's preparing took ~2 times its
    own time (bulk.py), and a 100,000-row first sync measured 8.3–9.2 s at 1 ms against
    10.0 s at 5 ms. PostgreSQL processes (asyncpg, no threads on these paths) keep the default.
    Never lengthens an interval someone set shorter.
    """
    if sys.getswitchinterval() > SQLITE_SWITCH_INTERVAL:
        sys.setswitchinterval(SQLITE_SWITCH_INTERVAL)


class Database:
    """Owns the engine; hands out one session per unit of work.

    ``maintenance_url``: PostgreSQL, a role that may VACUUM the tables (their owner, the
    migration URL) where the runtime role may not; used by :meth:`scrub` only.
    """

    def __init__(self, url: str, *, maintenance_url: str | None = None) -> None:
        self.url = url
        self.maintenance_url = maintenance_url if maintenance_url != url else None
        self.engine = make_engine(url)
        if self.dialect == "sqlite":
            shorten_switch_interval()
        # On PostgreSQL each transaction names the app whose rows it may touch (S14, tenancy).
        sync_session: type[Session] = TenantSession if self.dialect == "postgresql" else Session
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=sync_session
        )
        #: called after a commit that queued background work (see ``events.mark_outbox``): the
        #: runner in this process; on PostgreSQL the commit also notifies the runners of every
        #: process (``WORK_CHANNEL``)
        self.outbox_listeners: list[Callable[[frozenset[str]], None]] = []
        #: SQLite: the lock writing units of work take turns on (per event loop)
        self._writers: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        #: SQLite: the engine of :meth:`read` (None: reads share :attr:`engine`)
        self.read_engine = make_read_engine(url)
        self._read_sessions = (
            None
            if self.read_engine is None
            else async_sessionmaker(
                self.read_engine, expire_on_commit=False, sync_session_class=sync_session
            )
        )
        #: SQLite: the engine of :meth:`transaction`'s ``batch`` units of work
        self.batch_engine = make_batch_engine(url)
        self._batch_sessions = (
            None
            if self.batch_engine is None
            else async_sessionmaker(self.batch_engine, expire_on_commit=False)
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _writer_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._writers is None or self._writers[0] is not loop:
            self._writers = (loop, asyncio.Lock())
        return self._writers[1]

    @asynccontextmanager
    async def transaction(
        self, *, write: bool = False, batch: bool = False
    ) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends normally, rolls back otherwise.

        ``write``: the unit of work is known to write (background jobs' claims and syncs'
        applies). On SQLite, which has one writer at a time, such units of work in this
        process take turns on an in-process lock first: waiting there costs nothing, while
        waiting in SQLite's busy handler sleeps in growing steps and starves throughput when
        many syncs finish at once. Other processes still meet SQLite's own lock as before.

        ``batch`` (with ``write``): the group commit's batch of many small units of work. On
        SQLite its statements run on the event loop (``inline_sqlite.writer``: no hand-off to
        aiosqlite's thread per statement; SQLite's lock is waited for off the loop); the batch
        must open its transaction with ``BEGIN IMMEDIATE``.
        """
        if write and self.dialect == "sqlite":
            sessions = self._batch_sessions if batch else None
            async with self._writer_lock(), self._unit(sessions) as session:
                yield session
            return
        async with self._unit() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A unit of work that only reads a bounded amount (the API's key, login, account and
        page look-ups). On SQLite its statements run on the event loop over a read-only
        connection (``bankhub.db.inline_sqlite``: no hand-off to aiosqlite's thread; a write
        in it fails); on PostgreSQL it is :meth:`transaction` on a pool without the pre-ping
        (:func:`make_read_engine`)."""
        if self._read_sessions is None:
            async with self._unit() as session:
                yield session
            return
        if self.dialect == "postgresql":  # the read's audit entry commits with it
            async with self._unit(self._read_sessions) as session:
                yield session
            return
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def _unit(
        self, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> AsyncIterator[AsyncSession]:
        async with (sessions or self._sessions)() as session:
            try:
                yield session
                # the feeds' rows go in last, under their apps' feed locks (db.commit_order)
                await commit_order.write_appends(session)
                queued: set[str] | None = session.info.get("outbox")
                if queued and self.dialect == "postgresql":
                    # inside the transaction: PostgreSQL delivers it only if the commit succeeds
                    await session.execute(_NOTIFY_WORK, {"kinds": ",".join(sorted(queued))})
                await session.commit()
            except BaseException:
                commit_order.drop_appends(session)
                session.info.pop(_GROWN, None)
                await session.rollback()
                raise
            if queued := session.info.pop("outbox", None):
                for listener in self.outbox_listeners:
                    listener(frozenset(queued))
            grown = session.info.pop(_GROWN, None)
        if grown and self.dialect == "postgresql":
            await self.refresh_statistics(grown)

    async def refresh_statistics(self, grown: dict[str, int]) -> list[str]:
        """PostgreSQL: ANALYZE each table of ``grown`` (rows added by a committed unit of work)
        that grew by more than ``ANALYZE_FRACTION`` of its planner size; the tables analyzed.

        ANALYZE reads a bounded sample (``default_statistics_target``: 30,000 rows), so its
        cost does not grow with the table. Only the tables' owner may run it: the maintenance
        role (``BANKHUB_MIGRATION_DATABASE_URL``), else the runtime role where it may; a table
        neither may analyze is left to autovacuum. A failure is logged, never raised: the
        rows are committed, and statistics only make later reads faster.
        """
        maintenance = create_async_engine(self.maintenance_url or self.url, poolclass=NullPool)
        analyzed: list[str] = []
        try:
            async with maintenance.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                due = []
                for name, rows in grown.items():
                    believed = (await autocommit.execute(_RELTUPLES, {"name": name})).scalar()
                    if believed is not None and rows > ANALYZE_FRACTION * max(0.0, believed):
                        due.append(name)
                allowed = await _vacuumable(autocommit, due) if due else []
                if allowed:
                    await autocommit.exec_driver_sql(f"SET lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'")
                for name in allowed:
                    # the names are the schema's own, found in pg_class
                    await autocommit.exec_driver_sql(f'ANALYZE "{name}"')
                    analyzed.append(name)
                if set(due) - set(allowed):
                    log.warning(
                        "this role may not ANALYZE %s after a large ingest: reads may be slow "
                        "until autovacuum analyzes it; give bankhub "
                        "BANKHUB_MIGRATION_DATABASE_URL (docs/operations.md)",
                        ", ".join(sorted(set(due) - set(allowed))),
                    )
        except (DBAPIError, OSError) as exc:
            log.warning("refreshing planner statistics after a large ingest failed: %s", exc)
        finally:
            await maintenance.dispose()
        return analyzed

    async def checkpoint(self) -> None:
        """On SQLite, fold the write-ahead log into the file and empty it.

        Erased and purged pages otherwise linger in the WAL until overwritten. Waits for readers
        up to the busy timeout, so the runner calls it from its periodic sweep, never a request.
        """
        if self.dialect != "sqlite":
            return
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def scrub(self, tables: Sequence[str]) -> Scrubbed:
        """After an erasure has committed: leave nothing of the deleted rows readable in the
        database's files. Call it between the commit and the answer.

        SQLite: ``secure_delete`` (set on every connection) zeroed the freed space as the rows
        were deleted, but in page images written to the write-ahead log; the file still holds
        the old pages, and the log older frames. A TRUNCATE checkpoint copies the zeroed pages
        into the file and empties the log. It waits (the busy timeout) for readers of an older
        snapshot; after ``SCRUB_CHECKPOINT_TRIES`` waits it gives up and says so (the runner's
        periodic checkpoint finishes the work). ``tables`` does not matter here.

        PostgreSQL: a DELETE leaves each row as a dead tuple in its page, and every index
        entry, until VACUUM. ``VACUUM (INDEX_CLEANUP ON)`` of ``tables`` removes them (the
        option, because PostgreSQL skips index cleanup when few pages changed, leaving the
        index entries). It needs a role that may vacuum (``maintenance_url`` or the runtime
        role); tables it may not vacuum are skipped, named and left to autovacuum. Where the
        role may (``pg_checkpoint``), a CHECKPOINT then writes the cleaned pages to the files at
        once. What remains afterwards (free space of pages, WAL segments, backups) is in
        docs/security.md.
        """
        if self.dialect == "sqlite":
            return await self._checkpoint_now()
        return await self._vacuum(tables)

    async def _checkpoint_now(self) -> Scrubbed:
        async with self._writer_lock():
            for _ in range(SCRUB_CHECKPOINT_TRIES):
                async with self.engine.connect() as connection:
                    busy = (
                        await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    ).scalar_one()
                if busy == 0:
                    return Scrubbed(complete=True)
        log.warning(
            "the write-ahead log could not be emptied after an erasure (readers kept it busy); "
            "the runner's next checkpoint empties it"
        )
        return Scrubbed(complete=False)

    async def _vacuum(self, tables: Sequence[str]) -> Scrubbed:
        # a connection of its own, never pooled: its session settings (lock_timeout) and role
        # stay with it
        maintenance = create_async_engine(self.maintenance_url or self.url, poolclass=NullPool)
        try:
            async with maintenance.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                allowed = await _vacuumable(autocommit, tables)
                if allowed:
                    await autocommit.exec_driver_sql(f"SET lock_timeout = '{SCRUB_LOCK_TIMEOUT}'")
                    # the names are the schema's own, found in pg_class above
                    quoted = ", ".join(f'"{name}"' for name in allowed)
                    await autocommit.exec_driver_sql(f"VACUUM (INDEX_CLEANUP ON) {quoted}")
                    if await _may_checkpoint(autocommit):
                        # the cleaned pages reach the table files now, not at the server's
                        # next checkpoint (docs/security.md)
                        await autocommit.exec_driver_sql("CHECKPOINT")
        except DBAPIError as exc:
            if "lock timeout" not in str(exc.orig):
                raise
            log.warning(
                "the VACUUM after an erasure waited too long for a table; autovacuum "
                "finishes the work"
            )
            return Scrubbed(complete=False)
        finally:
            await maintenance.dispose()
        skipped = tuple(sorted(set(tables) - set(allowed)))
        if skipped:
            log.warning(
                "this role may not VACUUM %s: erased rows stay in their pages until autovacuum "
                "runs; give bankhub BANKHUB_MIGRATION_DATABASE_URL (docs/operations.md)",
                ", ".join(skipped),
            )
        return Scrubbed(complete=not skipped, skipped=skipped)

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()
        if self.batch_engine is not None:
            await self.batch_engine.dispose()


async def _vacuumable(connection: AsyncConnection, tables: Sequence[str]) -> list[str]:
    version = int((await connection.exec_driver_sql("SHOW server_version_num")).scalar_one() or 0)
    maintain = "OR has_table_privilege(c.oid, 'MAINTAIN')" if version >= 170000 else ""
    query = text(_VACUUMABLE.format(maintain=maintain))
    rows = await connection.execute(query, {"names": list(tables)})
    return [str(name) for name in rows.scalars()]


async def _may_checkpoint(connection: AsyncConnection) -> bool:
    """A superuser, or (PostgreSQL 15+) a member of ``pg_checkpoint``, may run CHECKPOINT."""
    version = int((await connection.exec_driver_sql("SHOW server_version_num")).scalar_one() or 0)
    query = _MAY_CHECKPOINT if version >= 150000 else _IS_SUPERUSER
    return bool((await connection.exec_driver_sql(query)).scalar_one())


_IS_SUPERUSER = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
_MAY_CHECKPOINT = (
    "SELECT rolsuper OR pg_has_role(current_user, 'pg_checkpoint', 'MEMBER') "
    "FROM pg_roles WHERE rolname = current_user"
)
