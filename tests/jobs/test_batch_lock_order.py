"""A batch of refreshes and the writers of several logins take the logins' locks in one order.

A batch of one app's refreshes (``db.group``) holds the login of each refresh it has written
until the whole batch commits. Another transaction locking several of the same logins in the
other order (an erasure, the consent sweep, a bulk update) would close a cycle with it, which
PostgreSQL breaks by aborting one side. Both take them in ascending order of id instead.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import tenancy
from bankhub.db.group import GroupCommit, Work
from bankhub.lifecycle import erasure
from bankhub.logins.models import Login
from bankhub.sync.refresh import refresh_login
from tests.api.connect_client import connect
from tests.conftest import Harness

#: every wait of this test is bounded: a deadlock is found by PostgreSQL within its
#: ``deadlock_timeout`` (1 s), a lock waited for without one is released by the test itself
BOUND = 60.0


async def two_logins(h: Harness) -> tuple[int, int, int]:
    """The harness app's id and two logins of it, lower id first."""
    ids = sorted([int((await connect(h, "user_good"))["login_id"]) for _ in range(2)])
    async with h.hub.db.transaction() as session:
        app_id = await session.scalar(select(Login.app_id).where(Login.id == ids[0]))
    assert app_id is not None
    return int(app_id), ids[0], ids[1]


async def someone_waits_for_a_lock(h: Harness) -> None:
    """Until a statement of another session waits for a row lock (polled, bounded)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    for _ in range(int(BOUND / 0.02)):
        async with h.hub.db.transaction() as session:
            if await session.scalar(query):
                return
        await asyncio.sleep(0.02)
    raise AssertionError("the erasure never waited for the batch's lock")


async def batch_meets_erasure(h: Harness, *, scanned_in_heap_order: bool) -> None:
    """A batch handed the higher login's refresh first, its first unit of work waiting while
    it holds its login; meanwhile an erasure of both logins; then the batch goes on. Both must
    finish. ``scanned_in_heap_order``: the erasure's statements read the logins in the order
    of the table's heap, where the lower login's row was rewritten after the higher one's."""
    if h.hub.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no row locks to meet in a cycle")
    app_id, low, high = await two_logins(h)
    if scanned_in_heap_order:
        async with h.hub.db.transaction(write=True) as session:  # its new version goes last
            await session.execute(
                update(Login).where(Login.id == low).values(last_attempt_at=h.clock())
            )
    holding, go_on = asyncio.Event(), asyncio.Event()

    def refresh_of(login_id: int) -> Work[int]:
        """A refresh's apply as the batch runs it: the login locked first, then its changes."""

        async def work(session: AsyncSession) -> int:
            login = await session.get(Login, login_id, with_for_update=True)
            assert login is not None
            login.last_attempt_at = h.clock()
            await session.flush()
            if not holding.is_set():  # the batch's first unit of work waits, holding its lock
                holding.set()
                await asyncio.wait_for(go_on.wait(), BOUND)
            return login_id

        return work

    grouped = GroupCommit(h.hub.db)
    # handed over together, so that they share one batch: the higher login first
    batch = asyncio.gather(
        grouped.run(refresh_of(high), app_id=app_id, order=high),
        grouped.run(refresh_of(low), app_id=app_id, order=low),
        return_exceptions=True,
    )
    await asyncio.wait_for(holding.wait(), BOUND)

    async def erase() -> erasure.Erased:
        with tenancy.acting_for(app_id):
            async with h.hub.db.transaction(write=True) as session:
                if scanned_in_heap_order:
                    # as a large table's plan may: no index, the heap's order
                    await session.execute(text("SET LOCAL enable_indexscan = off"))
                    await session.execute(text("SET LOCAL enable_bitmapscan = off"))
                return await erasure.erase_logins(
                    session, app_id=app_id, login_ids=[high, low], now=h.clock()
                )

    erasing = asyncio.ensure_future(erase())
    await someone_waits_for_a_lock(h)
    go_on.set()
    written = list(await asyncio.wait_for(batch, BOUND))
    erased = await asyncio.wait_for(erasing, BOUND)  # a deadlock aborts one of them
    assert written == [high, low]
    assert erased.logins == 2
    async with h.hub.db.transaction() as session:
        left = await session.scalars(select(Login.id).where(Login.id.in_([low, high])))
        assert list(left) == []


async def test_a_batch_of_refreshes_and_an_erasure_of_the_same_logins_meet_no_deadlock(
    harness: Harness,
) -> None:
    """The batch is handed the higher login's refresh first. It takes the lower one's lock
    first all the same, so the erasure (which locks both in ascending order) waits for it
    holding nothing, and both finish: before, the batch held the higher login while the
    erasure held the lower one, each waiting for the other."""
    await batch_meets_erasure(harness, scanned_in_heap_order=False)


async def test_an_erasure_locks_its_logins_in_order_whatever_order_it_reads_them_in(
    harness: Harness,
) -> None:
    """The erasure's delete reads the logins in the heap's order (the higher first) while the
    batch holds the lower one: it locks both up front in ascending order, so it waits holding
    nothing. Before, its delete took the higher login and waited for the lower one, which the
    batch held while it went on to wait for the higher one."""
    await batch_meets_erasure(harness, scanned_in_heap_order=True)


async def test_a_refresh_hands_its_batch_the_login_it_locks_first(harness: Harness) -> None:
    """The order a batch runs its units of work in is the refreshed login's id, for the claim
    and for the apply."""
    h = harness
    app_id, login_id, _ = await two_logins(h)
    given: list[int | None] = []

    class Recording(GroupCommit):
        async def run(
            self, work: Work[Any], *, app_id: int | None = None, order: int | None = None
        ) -> Any:
            given.append(order)
            return await super().run(work, app_id=app_id, order=order)

    with tenancy.acting_for(app_id):
        outcome = await refresh_login(
            h.hub.engine,
            h.hub.db,
            app_id,
            login_id,
            timedelta(0),
            lease=h.hub.settings.lease,
            owner="lock-order",
            group=Recording(h.hub.db),
        )
    assert outcome.applied
    assert given == [login_id, login_id]


async def test_units_of_work_run_in_the_order_of_the_rows_they_lock_first(
    database_url: str,
) -> None:
    """In a batch: ascending ``order``, the units without one first, ties as handed over."""
    from bankhub.db.engine import Database

    db = Database(database_url)
    ran: list[str] = []

    def unit(name: str) -> Work[str]:
        async def work(_session: AsyncSession) -> str:
            ran.append(name)
            return name

        return work

    try:
        grouped = GroupCommit(db)
        given = [("c", 30), ("a", 10), ("none", None), ("b", 20), ("a2", 10)]
        results = await asyncio.gather(
            *(grouped.run(unit(name), app_id=1, order=order) for name, order in given)
        )
        assert results == [name for name, _ in given]  # each caller hears its own result
        assert ran == ["none", "a", "a2", "b", "c"]
    finally:
        await db.dispose()
