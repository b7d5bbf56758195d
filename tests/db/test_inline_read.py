"""``Database.read``: on SQLite, short reads on the event loop over read-only connections."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from bankhub.db.engine import Database


def traced(db: Database) -> list[tuple[int, str]]:
    """(thread, statement) of every statement SQLite itself runs on ``db``'s read connections."""
    seen: list[tuple[int, str]] = []
    assert db.read_engine is not None

    @event.listens_for(db.read_engine.sync_engine, "connect")
    def trace(dbapi_connection: Any, _record: Any) -> None:
        raw = dbapi_connection._connection._conn  # the sqlite3 connection under the adapter
        raw.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))

    return seen


async def made(path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{path}")
    async with db.transaction(write=True) as session:
        await session.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
        await session.execute(text("INSERT INTO items VALUES (1, 'one')"))
    return db


async def test_reads_run_on_the_event_loop_s_thread(tmp_path: Path) -> None:
    db = await made(tmp_path / "read.sqlite3")
    seen = traced(db)
    try:
        async with db.read() as session:
            found = (await session.execute(text("SELECT name FROM items WHERE id = 1"))).all()
        assert [tuple(row) for row in found] == [("one",)]
        selects = [thread for thread, sql in seen if sql.startswith("SELECT name")]
        assert selects == [threading.get_ident()]
    finally:
        await db.dispose()


async def test_a_read_unit_cannot_write(tmp_path: Path) -> None:
    db = await made(tmp_path / "readonly.sqlite3")
    try:
        with pytest.raises(OperationalError, match="readonly"):
            async with db.read() as session:
                await session.execute(text("INSERT INTO items VALUES (2, 'two')"))
        async with db.transaction() as session:
            count = (await session.execute(text("SELECT count(*) FROM items"))).scalar_one()
        assert count == 1
    finally:
        await db.dispose()


async def test_a_read_sees_what_the_writer_committed_since(tmp_path: Path) -> None:
    """Separate connections: every read unit sees the last commit (WAL, no stale snapshot)."""
    db = await made(tmp_path / "fresh.sqlite3")
    try:
        async with db.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 1
        async with db.transaction(write=True) as session:
            await session.execute(text("INSERT INTO items VALUES (2, 'two')"))
        async with db.read() as session:
            assert (await session.execute(text("SELECT count(*) FROM items"))).scalar_one() == 2
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
        assert mode == "wal"
    finally:
        await db.dispose()


async def test_an_in_memory_database_reads_through_its_one_engine() -> None:
    db = Database("sqlite+aiosqlite:///:memory:")
    try:
        assert db.read_engine is None
        async with db.read() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await db.dispose()
