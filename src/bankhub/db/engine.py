"""Engine and unit of work. Services never commit; the request or job that owns the work does."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from bankhub.db.tenancy import TenantSession


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # Erased and purged data must not linger in free pages of the file (not every build's default).
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


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        private_sqlite_files(url)
        engine = create_async_engine(url, connect_args={"timeout": 10})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Database:
    """Owns the engine; hands out one session per unit of work."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # On PostgreSQL each transaction names the app whose rows it may touch (S14, tenancy).
        sync_session: type[Session] = TenantSession if self.dialect == "postgresql" else Session
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=sync_session
        )
        #: called after a commit that queued background work (see ``events.mark_outbox``)
        self.outbox_listeners: list[Callable[[], None]] = []
        #: SQLite: the lock writing units of work take turns on (per event loop)
        self._writers: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _writer_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._writers is None or self._writers[0] is not loop:
            self._writers = (loop, asyncio.Lock())
        return self._writers[1]

    @asynccontextmanager
    async def transaction(self, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block ends normally, rolls back otherwise.

        ``write``: the unit of work is known to write (background jobs' claims and syncs'
        applies). On SQLite, which has one writer at a time, such units of work in this
        process take turns on an in-process lock first: waiting there costs nothing, while
        waiting in SQLite's busy handler sleeps in growing steps and starves throughput when
        many syncs finish at once. Other processes still meet SQLite's own lock as before.
        """
        if write and self.dialect == "sqlite":
            async with self._writer_lock(), self._unit() as session:
                yield session
            return
        async with self._unit() as session:
            yield session

    @asynccontextmanager
    async def _unit(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            if session.info.pop("outbox", False):
                for listener in self.outbox_listeners:
                    listener()

    async def checkpoint(self) -> None:
        """On SQLite, fold the write-ahead log into the file and empty it.

        Erased and purged pages otherwise linger in the WAL until overwritten. Waits for readers
        up to the busy timeout, so the runner calls it from its periodic sweep, never a request.
        """
        if self.dialect != "sqlite":
            return
        async with self.engine.connect() as connection:
            await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def dispose(self) -> None:
        await self.engine.dispose()
