"""SQLite connections that run their statements on the event loop, for short indexed reads.

aiosqlite runs every call (cursor, execute, fetch, close, commit) in the connection's own thread
and hands the result back through the event loop: four or more hand-offs per statement, each a
wake-up of the loop and a fight for the GIL. For the API's hot reads (a key, a login and an
account by index, one page of an account's transactions) the hand-offs cost many times the
statement itself (bench/read.py). This adapter offers aiosqlite's interface, as SQLAlchemy's
``sqlite+aiosqlite`` dialect uses it, over a plain ``sqlite3`` connection whose calls run
inline: nothing is awaited, so the loop is held only for the statement's own time.

It is written here because no maintained package offers it: aiosqlite always hands off, and
SQLAlchemy's synchronous ``pysqlite`` dialect cannot back an ``AsyncSession``.

Reads: :class:`bankhub.db.engine.Database` opens these connections ``query_only`` and uses
them for the units of work a route declares as reads (``Database.read``). In WAL mode a reader
never waits for the writer.

Writes: the runner's group commit (``bankhub.db.group``) writes the small statements of many
refreshes in one transaction, one after the other: through aiosqlite each is a hand-off, and the
chain of hand-offs, not SQLite, was what a refresh at scale waited on (bench/concurrency.py).
Its batches run over a :func:`writer` connection. A write may meet SQLite's lock (another
process writing), which must not hold the loop: the writer's busy timeout is zero, and a
statement SQLite refuses as busy is tried again after an ``await asyncio.sleep`` that lets the
loop run, in growing steps, for as long as aiosqlite's connections would wait. The batch opens
its transaction with ``BEGIN IMMEDIATE``, so the lock is taken (or waited for) by that first
statement and no later one of the batch meets it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

#: how long a read waits on SQLite's busy handler, holding the loop (a reader in WAL mode
#: meets it only while a crashed writer's log is recovered)
READ_BUSY_TIMEOUT_MS = 1000
#: how long a writer's statement is tried again while SQLite's lock is held elsewhere (as long
#: as aiosqlite's connections wait in SQLite's busy handler), and its first and longest pause
WRITE_BUSY_SECONDS = 10.0
_FIRST_PAUSE, _LONGEST_PAUSE = 0.001, 0.05


class InlineCursor:
    """aiosqlite's ``Cursor`` as SQLAlchemy calls it, run inline."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid


def _busy(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class WriterCursor(InlineCursor):
    """An :class:`InlineCursor` whose statements wait for SQLite's lock off the loop."""

    __slots__ = ()

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        deadline = time.monotonic() + WRITE_BUSY_SECONDS
        pause = _FIRST_PAUSE
        while True:
            try:
                return await super().execute(sql, parameters)
            except sqlite3.OperationalError as error:
                if not _busy(error) or time.monotonic() + pause > deadline:
                    raise
            # a refused statement had no effect: the same one is sent again
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)


class _Immediate:
    """Stands for aiosqlite's request queue, which SQLAlchemy uses directly to set the
    isolation level: the call runs at once and its future is resolved."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as error:  # noqa: BLE001 - handed to the awaiting caller, as aiosqlite does
            future.set_exception(error)
        else:
            future.set_result(result)


class InlineConnection:
    """aiosqlite's ``Connection`` as SQLAlchemy calls it, run inline."""

    cursor_class: type[InlineCursor] = InlineCursor

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _Immediate(conn)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def cursor(self) -> InlineCursor:
        return self.cursor_class(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await self.cursor_class(self._conn.cursor()).execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def reader(database: str, *, uri: bool = False) -> Callable[..., Any]:
    """An ``async_creator_fn`` for SQLAlchemy's aiosqlite dialect: a read-only inline connection
    to ``database`` (the writers' pragmas that matter to a reader, and ``query_only``, so that a
    unit of work taken for reading can never write)."""

    async def connect(*_args: Any, **_kwargs: Any) -> InlineConnection:
        conn = sqlite3.connect(database, uri=uri, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={READ_BUSY_TIMEOUT_MS}")
        # readers beside the writer need WAL (a no-op once the writers' engine has set it)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA query_only=ON")
        return InlineConnection(conn)

    return connect


class WriterConnection(InlineConnection):
    cursor_class = WriterCursor


def writer(database: str, *, uri: bool = False) -> Callable[..., Any]:
    """An ``async_creator_fn`` for SQLAlchemy's aiosqlite dialect: an inline connection that
    writes, with the writers' pragmas (``bankhub.db.engine``) but no busy handler: a statement
    refused as busy waits on the loop instead (:class:`WriterCursor`)."""

    async def connect(*_args: Any, **_kwargs: Any) -> InlineConnection:
        conn = sqlite3.connect(database, uri=uri, check_same_thread=False)
        for pragma in (
            "busy_timeout=0",
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "secure_delete=ON",
        ):
            await WriterCursor(conn.cursor()).execute(f"PRAGMA {pragma}")
        return WriterConnection(conn)

    return connect
