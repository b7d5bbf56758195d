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

Only for reads of bounded cost: :class:`bankhub.db.engine.Database` opens these connections
``query_only`` and uses them for the units of work a route declares as reads
(``Database.read``); every writer keeps aiosqlite's thread (a write may wait for SQLite's lock,
which must not hold the loop). In WAL mode a reader never waits for the writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

#: how long a read waits on SQLite's busy handler, holding the loop (a reader in WAL mode
#: meets it only while a crashed writer's log is recovered)
READ_BUSY_TIMEOUT_MS = 1000


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

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._tx = _Immediate(conn)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    async def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> InlineCursor:
        return await InlineCursor(self._conn.cursor()).execute(sql, parameters)

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
