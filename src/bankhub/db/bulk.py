"""Bulk inserts by each driver's fastest path, inside the caller's unit of work.

A first sync stores tens of thousands of rows at once. Going through SQLAlchemy's statement
machinery costs more per row than the database does, so rows go straight to the driver:
``executemany`` on SQLite (or, for a caller that prepares more rows meanwhile, multi-row
``INSERT ... VALUES`` statements of up to 2,000 rows), ``COPY`` on PostgreSQL (a pipelined
``executemany`` where row-level security binds the role, which ``COPY FROM`` does not support).
Values are still converted by the columns' own types (``Money``, ``UTCDateTime``, ``JSON``...),
so what is stored is exactly what the ORM would have stored, and the rows are part of the
session's transaction like any other write.

Why multi-row statements when writing overlaps preparing: the ``sqlite3`` module releases the
GIL only inside each step, so an ``executemany`` in aiosqlite's thread takes the GIL back after
every row, and a process that prepares the next batch meanwhile (the sync engine does) waits on
the GIL at every row: the overlap gained nothing (2,000-row batches beside Python work,
overlapped 10.8–11.4 s against 10.8 s in turn). A multi-row statement binds its values once and
runs the whole batch in one step without the GIL (raw ``sqlite3``, 100,000 rows beside 3.9 s of
Python: 6.0–6.3 s overlapped against 8.5 s for ``executemany``; alone 3.8 s against 3.35 s).
One ``INSERT ... SELECT FROM json_each(?)`` a batch was tried first: as fast in bankhub, slower
alone (4.3 s), and JSON would end text at a NUL and cannot carry bytes.
"""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, Table, TextClause, bindparam, insert, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

_MISSING = object()
#: up to this many rows, an ordinary INSERT ... RETURNING (one round trip) is quicker
SMALL = 50


def _convert(values: list[Any], process: Callable[[Any], Any] | None) -> list[Any]:
    """One column's values as the driver takes them. Repeated values (timestamps of one sync,
    dates, currencies) are converted once."""
    if process is None:
        return values
    seen: dict[Any, Any] = {}
    out: list[Any] = []
    append = out.append
    for value in values:
        if value is None:
            append(None)
            continue
        try:
            done = seen.get(value, _MISSING)
        except TypeError:  # not hashable (a JSON document): converted each time
            append(process(value))
            continue
        if done is _MISSING:
            done = seen[value] = process(value)
        append(done)
    return out


Encoder = Callable[[Sequence[Mapping[str, Any]]], list[tuple[Any, ...]]]


def encoder(table: Table, columns: Sequence[str], dialect: Any) -> Encoder:
    """A function turning rows into tuples in ``columns`` order, each value converted by its
    column's type, column by column (a list comprehension per column beats a call per value).
    Callers that prepare many rows encode them a slice at a time, between other work."""
    processors = [
        (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in columns
    ]

    def encode(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        converted = [_convert([row[name] for row in rows], process) for name, process in processors]
        return list(zip(*converted, strict=True))

    return encode


def _encode(
    table: Table, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], dialect: Any
) -> list[tuple[Any, ...]]:
    return encoder(table, columns, dialect)(rows)


#: SQLite: the most bound parameters one statement may have (SQLITE_MAX_VARIABLE_NUMBER's
#: default since 3.32.0; 999 before)
_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: SQLite: the most rows one multi-row INSERT carries
STEP_ROWS = 2_000


async def _insert_sqlite(
    connection: AsyncConnection,
    table: Table,
    columns: Sequence[str],
    values: list[tuple[Any, ...]],
    *,
    one_step: bool,
) -> None:
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    head = f"INSERT INTO {quote(table.name)} ({names}) VALUES "  # noqa: S608 - names from the table's own metadata  # nosec B608
    row = f"({', '.join('?' for _ in columns)})"
    if not one_step:
        await connection.exec_driver_sql(head + row, values)
        return
    per = max(1, min(STEP_ROWS, _VARIABLES // len(columns)))
    for start in range(0, len(values), per):
        part = values[start : start + per]
        # the rows in the order given (an AUTOINCREMENT table's counted ids rely on it); a
        # full part's text is the same each time, so the driver's statement cache keeps it
        sql = head + ", ".join(itertools.repeat(row, len(part)))
        await connection.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(part)))


async def insert_encoded(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    values: list[tuple[Any, ...]],
    *,
    one_step: bool = False,
) -> None:
    """Insert rows already encoded by :func:`encoder` for the session's dialect. ``one_step``:
    on SQLite, write up to :data:`STEP_ROWS` rows a step without the GIL (for callers that
    prepare more rows while this runs; see the module's note)."""
    if not values:
        return
    connection = await session.connection()
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in columns)
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        # PostgreSQL refuses COPY FROM into a table whose row-level security binds the role
        # (S14: the runtime role); there the rows go as one pipelined executemany instead.
        if await driver.fetchval("SELECT row_security_active($1::regclass)", table.name):
            marks = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
            sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608 - names from the table's own metadata  # nosec B608
            await driver.executemany(sql, values)
        else:
            await driver.copy_records_to_table(table.name, records=values, columns=list(columns))
        return
    await _insert_sqlite(connection, table, columns, values, one_step=one_step)


async def insert_many(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
) -> None:
    """Insert ``rows`` (each with every name in ``columns``) in the session's transaction."""
    if not rows:
        return
    connection = await session.connection()
    await insert_encoded(session, table, columns, _encode(table, rows, columns, connection.dialect))


_ALLOCATE = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


async def _allocated_ids(connection: AsyncConnection, table: Table, n: int) -> list[int]:
    """PostgreSQL: ``n`` new ids taken from the table's sequence."""
    found = await connection.execute(_ALLOCATE, {"table": table.name, "n": n})
    return [int(new_id) for new_id in found.scalars()]


async def _newest_id(connection: AsyncConnection, table: Table) -> int:
    """SQLite: the largest id so far (rows inserted next have larger ones)."""
    found = await connection.execute(select(table.c.id).order_by(table.c.id.desc()).limit(1))
    return int(found.scalar() or 0)


async def insert_many_with_ids(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    key: str,
    scope: tuple[str, Any],
) -> dict[Any, int]:
    """Insert ``rows`` and return their new ids by ``key``, a column unique within ``scope``
    (a ``(column, value)`` every row shares, e.g. the account).

    PostgreSQL: ids are taken from the table's sequence first, then the rows are copied with
    them. SQLite: the rows are inserted, then the scope's rows newer than the largest id before
    the insert are read back (only keys of this insert count, should anyone else have written).
    """
    if not rows:
        return {}
    connection = await session.connection()
    id_column = table.c.id
    if len(rows) <= SMALL:
        # A refresh's few new rows: one INSERT ... RETURNING beats three round trips.
        returned = await connection.execute(
            _returning(table, key), [{c: row[c] for c in columns} for row in rows]
        )
        return {k: int(i) for i, k in returned.tuples()}
    if connection.dialect.name == "postgresql":
        allocated = await _allocated_ids(connection, table, len(rows))
        with_ids = [{**row, "id": new_id} for row, new_id in zip(rows, allocated, strict=True)]
        await insert_many(session, table, with_ids, ["id", *columns])
        return {row[key]: row["id"] for row in with_ids}
    newest = await _newest_id(connection, table)
    await insert_many(session, table, rows, columns)
    scope_column, scope_value = scope
    wanted = {row[key] for row in rows}
    found = await connection.execute(
        select(id_column, table.c[key]).where(
            table.c[scope_column] == scope_value, id_column > newest
        )
    )
    ids = {k: int(i) for i, k in found.tuples() if k in wanted}
    if len(ids) != len(wanted):
        raise RuntimeError(f"{len(wanted) - len(ids)} inserted rows of {table.name} not found")
    return ids


async def _sequence(connection: AsyncConnection, table: Table) -> int:
    """SQLite: the largest id an ``AUTOINCREMENT`` table has ever handed out (0 before any)."""
    found = await connection.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = ?", (table.name,)
    )
    return int(found.scalar() or 0)


async def _insert_counted(
    connection: AsyncConnection,
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    values: list[tuple[Any, ...]],
    *,
    one_step: bool,
) -> list[int]:
    """SQLite, ``AUTOINCREMENT`` table: the new ids are counted, not read back.

    Each row inserted without an id gets the table's sequence plus one and moves the sequence
    to it, and from its first insert the unit of work holds SQLite's only write lock, so the
    rows of one insert get the last ``n`` ids of the sequence, in their order. Reading
    the batch's keys and ids back instead cost, per batch, a query of ``n`` rows and its
    answer through SQLAlchemy's result machinery on the event loop, and one more round trip
    to find the largest id before the insert.
    """
    await insert_encoded(session, table, columns, values, one_step=one_step)
    last = await _sequence(connection, table)
    return list(range(last - len(values) + 1, last + 1))


async def insert_encoded_with_ids(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    values: list[tuple[Any, ...]],
    keys: Sequence[Any],
    *,
    key: str,
    scope: tuple[str, Any],
    one_step: bool = False,
) -> list[int]:
    """Insert rows encoded by :func:`encoder` (``keys``: each row's value of ``key``, a column
    unique within ``scope``); their new ids, in the rows' order. On SQLite, a table with
    ``AUTOINCREMENT`` has them counted (:func:`_insert_counted`); otherwise ids are found as
    in :func:`insert_many_with_ids`. ``one_step`` as for :func:`insert_encoded`."""
    if not values:
        return []
    connection = await session.connection()
    id_column = table.c.id
    if connection.dialect.name == "postgresql":
        ids = await _allocated_ids(connection, table, len(values))
        with_ids = [(new_id, *row) for new_id, row in zip(ids, values, strict=True)]
        await insert_encoded(session, table, ["id", *columns], with_ids)
        return ids
    if table.dialect_options["sqlite"]["autoincrement"]:
        return await _insert_counted(connection, session, table, columns, values, one_step=one_step)
    newest = await _newest_id(connection, table)
    await insert_encoded(session, table, columns, values, one_step=one_step)
    scope_column, scope_value = scope
    found = await connection.execute(
        select(table.c[key], id_column).where(
            table.c[scope_column] == scope_value, id_column > newest
        )
    )
    by_key = dict(found.tuples().all())
    try:
        return [int(by_key[k]) for k in keys]
    except KeyError:
        missing = sum(k not in by_key for k in keys)
        raise RuntimeError(f"{missing} inserted rows of {table.name} not found") from None


@functools.cache
def _returning(table: Table, key: str) -> Insert:
    """``INSERT ... RETURNING id, key`` for ``table``, built once (a statement built per call
    costs its construction and its cache key every time, see ``sync.engine``'s statements)."""
    return insert(table).returning(table.c.id, table.c[key])


@functools.lru_cache(maxsize=64)
def _per_id(table: Table, column: str, names: tuple[str, ...], dialect: Dialect) -> TextClause:
    """The statement of :func:`insert_per_id`, built once per table, columns and engine's
    dialect; its parameters are ``names`` (each converted by its column's type) and ``ids``."""
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(c) for c in (*names, column))
    params = [bindparam(name, type_=table.c[name].type) for name in names]
    if dialect.name == "postgresql":
        # without a cast, parameters in a SELECT list are text to PostgreSQL
        values = ", ".join(
            f"CAST(:{name} AS {table.c[name].type.compile(dialect)})" for name in names
        )
        source = (
            "unnest(CAST(:ids AS BIGINT[])) WITH ORDINALITY AS given(value, position)"
            " ORDER BY given.position"
        )
    else:
        values = ", ".join(f":{name}" for name in names)
        source = "json_each(:ids) AS given ORDER BY given.key"
    sql = f"INSERT INTO {quote(table.name)} ({columns}) SELECT {values}, given.value FROM {source}"  # noqa: S608 - names from the table's own metadata  # nosec B608
    return text(sql).bindparams(*params, bindparam("ids"))


async def insert_per_id(
    session: AsyncSession,
    table: Table,
    column: str,
    ids: Sequence[int],
    constants: Mapping[str, Any],
) -> None:
    """One row per id, in the ids' order: ``column`` takes the id, every other column the same
    value from ``constants`` (converted by its column's type). The ids travel as one parameter
    (a JSON array on SQLite, an array on PostgreSQL) and the database makes the rows: one
    statement, however many ids."""
    if not ids:
        return
    connection = await session.connection()
    dialect = connection.dialect
    numbers = [int(i) for i in ids]
    statement = _per_id(table, column, tuple(constants), dialect)
    given = numbers if dialect.name == "postgresql" else json.dumps(numbers)
    await connection.execute(statement, {**constants, "ids": given})
