"""Group commit: units of work handed over together share one transaction, a savepoint each."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import group as group_module
from bankhub.db.engine import Database
from bankhub.db.group import GroupCommit


class Refused(Exception):
    pass


async def make_db(url: str) -> Database:
    db = Database(url)
    async with db.transaction(write=True) as session:
        await session.execute(text("CREATE TABLE gc_items (id INTEGER PRIMARY KEY, name TEXT)"))
        await session.execute(text("CREATE TABLE gc_parent (id INTEGER PRIMARY KEY)"))
        await session.execute(
            text(
                "CREATE TABLE gc_child (id INTEGER PRIMARY KEY, parent INTEGER"
                " REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    return db


async def names(db: Database) -> list[str]:
    async with db.transaction() as session:
        rows = await session.execute(text("SELECT name FROM gc_items ORDER BY id"))
        return [str(name) for (name,) in rows]


def insert(n: int, *, fail: bool = False) -> group_module.Work[int]:
    async def work(session: AsyncSession) -> int:
        await session.execute(
            text("INSERT INTO gc_items (id, name) VALUES (:id, :name)"), {"id": n, "name": f"i{n}"}
        )
        if fail:
            raise Refused(n)
        return n

    return work


async def test_a_failing_unit_of_work_spoils_only_its_own_changes(database_url: str) -> None:
    db = await make_db(database_url)
    try:
        grouped = GroupCommit(db)
        results = await asyncio.gather(
            *(grouped.run(insert(n, fail=n == 3)) for n in range(1, 6)), return_exceptions=True
        )
        assert results[:2] == [1, 2]
        assert results[3:] == [4, 5]
        assert isinstance(results[2], Refused)
        assert await names(db) == ["i1", "i2", "i4", "i5"]
    finally:
        await db.dispose()


async def test_units_of_work_ready_together_commit_together(tmp_path: object) -> None:
    """On SQLite the batch is one transaction: a unit of work's result arrives only after the
    commit, and the commits are far fewer than the units of work."""
    db = await make_db(f"sqlite+aiosqlite:///{tmp_path}/group.sqlite3")
    commits = 0

    def counted(_connection: object) -> None:
        nonlocal commits
        commits += 1

    # the batches commit on the engine whose statements run on the loop; other units of work
    # (the read in ``names``) on the ordinary one
    assert db.batch_engine is not None
    for engine in (db.engine, db.batch_engine):
        event.listen(engine.sync_engine, "commit", counted)

    try:
        grouped = GroupCommit(db)
        results = await asyncio.gather(*(grouped.run(insert(n)) for n in range(1, 121)))
        assert results == list(range(1, 121))
        assert await names(db) == [f"i{n}" for n in range(1, 121)]
        # 120 units of work in batches of at most MAX_BATCH (plus the read in ``names``)
        assert commits <= -(-120 // group_module.MAX_BATCH) + 1
    finally:
        await db.dispose()


async def test_a_failed_commit_reaches_every_unit_of_work_of_the_batch(tmp_path: object) -> None:
    db = await make_db(f"sqlite+aiosqlite:///{tmp_path}/group.sqlite3")
    try:
        grouped = GroupCommit(db)

        async def orphan(session: AsyncSession) -> int:
            # passes its savepoint; the deferred foreign key fails the batch's commit
            await session.execute(text("INSERT INTO gc_child (id, parent) VALUES (1, 99)"))
            return 0

        results = await asyncio.gather(
            grouped.run(insert(1)), grouped.run(orphan), return_exceptions=True
        )
        assert all(isinstance(r, Exception) for r in results), results
        assert await names(db) == []
    finally:
        await db.dispose()


@pytest.mark.parametrize("size", [1, 7])
async def test_a_cancelled_caller_s_work_is_not_done(tmp_path: object, size: int) -> None:
    db = await make_db(f"sqlite+aiosqlite:///{tmp_path}/group.sqlite3")
    try:
        grouped = GroupCommit(db)
        # a full first batch is written while the others wait; one of them is cancelled then
        full = range(1000, 1000 + group_module.MAX_BATCH)
        first = [asyncio.ensure_future(grouped.run(insert(n))) for n in full]
        queued = [asyncio.ensure_future(grouped.run(insert(n))) for n in range(1, size + 1)]
        for _ in range(3):
            await asyncio.sleep(0)
        assert not first[0].done()  # the first batch is still being written
        queued[0].cancel()
        await asyncio.gather(*first, *queued, return_exceptions=True)
        await grouped.finish()
        expected = [*(f"i{n}" for n in range(2, size + 1)), *(f"i{n}" for n in full)]
        assert sorted(await names(db)) == sorted(expected)
    finally:
        await db.dispose()


async def test_a_batch_s_statements_run_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a batch's statements are not handed to aiosqlite's thread one by one: the
    thread answers each hand-off through ``call_soon_threadsafe``, and a batch makes none."""
    db = await make_db(f"sqlite+aiosqlite:///{tmp_path}/group.sqlite3")
    loop = asyncio.get_running_loop()
    handed_back = 0
    original = type(loop).call_soon_threadsafe

    def counting(self: asyncio.AbstractEventLoop, *args: object, **kwargs: object) -> object:
        nonlocal handed_back
        handed_back += 1
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    try:
        grouped = GroupCommit(db)
        await grouped.run(insert(1))  # the batch engine's connection is opened
        monkeypatch.setattr(type(loop), "call_soon_threadsafe", counting)
        results = await asyncio.gather(*(grouped.run(insert(n)) for n in range(2, 42)))
        monkeypatch.undo()
        assert results == list(range(2, 42))
        # 40 units of work: BEGIN, 40 savepoints, inserts and releases, the commit
        assert handed_back == 0
        assert await names(db) == [f"i{n}" for n in range(1, 42)]
    finally:
        await db.dispose()


async def test_a_batch_waits_for_another_process_s_write_lock_off_the_loop(
    tmp_path: Path,
) -> None:
    """While another connection (another process) holds SQLite's write lock, the batch waits
    for it without holding the event loop, then writes once the lock is free."""
    path = tmp_path / "group.sqlite3"
    db = await make_db(f"sqlite+aiosqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO gc_items (id, name) VALUES (100, 'other')")
        grouped = GroupCommit(db)
        writing = asyncio.ensure_future(grouped.run(insert(1)))
        turns = 0
        while turns < 20:  # the loop keeps turning while the batch waits for the lock
            await asyncio.sleep(0.001)
            turns += 1
        assert not writing.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(writing, 10) == 1
        assert await names(db) == ["i1", "other"]
    finally:
        other.close()
        await db.dispose()


async def test_one_app_s_units_of_work_commit_together_on_postgresql(database_url: str) -> None:
    """Units of work given their app share a batch on PostgreSQL too (on SQLite every unit of
    work does): one app's refreshes no longer commit one by one, each waiting for the app's
    feed lock; without an app a unit of work keeps its own transaction there."""
    db = await make_db(database_url)
    commits = 0

    def counted(_connection: object) -> None:
        nonlocal commits
        commits += 1

    for engine in (db.engine, db.batch_engine):
        if engine is not None:
            event.listen(engine.sync_engine, "commit", counted)
    try:
        grouped = GroupCommit(db)
        results = await asyncio.gather(
            *(grouped.run(insert(n, fail=n == 7), app_id=1) for n in range(1, 121)),
            return_exceptions=True,
        )
        assert isinstance(results[6], Refused)
        assert [r for r in results if not isinstance(r, Refused)] == [
            n for n in range(1, 121) if n != 7
        ]
        assert commits <= -(-120 // group_module.MAX_BATCH)
        alone = commits
        await grouped.run(insert(500))
        assert commits == alone + 1
        assert await names(db) == [f"i{n}" for n in [*range(1, 121), 500] if n != 7]
    finally:
        await db.dispose()
