"""Group commit: many small writing units of work in one transaction, a savepoint each.

SQLite has one writer at a time, so when many background syncs finish together their units of
work queue up, and each pays for its own connection checkout, commit and turn on the writer lock
on top of its statements. :class:`GroupCommit` runs the units of work handed over while a batch
is being written in the next batch: one transaction, each unit of work in its own savepoint, so
one that fails (or steps back by raising) rolls back only its own changes and hears of its own
error, while the others commit together. A caller hears of its result only once the batch is
committed; when the commit itself fails, every unit of work of the batch hears of that error.

Each unit of work starts with an empty identity map, as it would in a session of its own: what an
earlier unit of work loaded is never handed to a later one. The events a unit of work recorded
(inserted at commit, ``db.commit_order``) are written before its savepoint ends; a unit of work
that fails leaves none of them behind.

On SQLite a batch's statements run on the event loop (``Database.transaction``'s ``batch``,
``db.inline_sqlite``): a batch is a chain of small statements, and through aiosqlite each was a
hand-off to its thread and back, which is what a refresh at scale waited on.

On PostgreSQL units of work are batched per app (``run``'s ``app_id``): row-level security
names one app per transaction (S14), and the app's feed lock (``db.commit_order``) orders its
commits, so one app's refreshes committed one by one waited on each other's commits. A batch is
one transaction acting for its app, a savepoint per unit of work as on SQLite; the events of the
units that succeeded are written at the end of the batch, under the feed lock taken last, as a
lone unit of work takes it: the batch never waits for a row while holding the lock, so it
cannot close a cycle with another transaction waiting for the lock. A unit of work given without
an app keeps a transaction of its own.

A batch holds the rows of all its units of work until it commits, so it takes them in one fixed
order: a unit of work given the id of the row it locks first (``run``'s ``order``: a refresh's
login, which its claim updates and its apply selects ``FOR UPDATE`` before anything else) runs
in ascending order of that id, whatever the order the units were handed over in. Every writer of
several logins takes their locks in the same order (``lifecycle.erasure``, ``logins.consent``,
``jobs.leases``), so none of them can hold a login the batch waits for while waiting for one the
batch holds: on PostgreSQL that cycle was a deadlock, one side aborted (a whole batch of
refreshes, or the erasure). Ordering, not retrying, because it removes the cycle instead of
paying for it: a batch aborted by a deadlock would have to run every unit of work again, and an
erasure's caller would see it fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import commit_order, tenancy
from bankhub.db.engine import Database

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[T]]

#: SQLite's driver (the stdlib module in its legacy mode) opens no transaction before a
#: SAVEPOINT, so the first savepoint would become the transaction and its release a commit of
#: its own: the batch opens the transaction itself, taking the write lock up front
_BEGIN = text("BEGIN IMMEDIATE")
#: units of work per batch at most: a batch holds the writer lock, and other writers (requests,
#: heartbeats) get their turn between batches
MAX_BATCH = 50


#: a unit of work waiting for a batch: the id of the row it locks first (-1: none), the work
#: and the future its caller waits on
_Unit = tuple[int, Work[Any], asyncio.Future[Any]]


def _first_lock(unit: _Unit) -> int:
    return unit[0]


class GroupCommit:
    """Runs writing units of work in shared transactions (see the module's text)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sqlite = db.dialect == "sqlite"
        #: by app on PostgreSQL; one queue (key None) on SQLite
        self._queues: dict[int | None, list[_Unit]] = {}
        self._tasks: dict[int | None, asyncio.Task[None]] = {}

    async def run(self, work: Work[T], *, app_id: int | None = None, order: int | None = None) -> T:
        """Run ``work`` with a session, in the next batch; its result once committed.

        ``app_id``: the app whose rows ``work`` touches; on PostgreSQL only units of work of
        the same app share a batch, and without one ``work`` has a transaction of its own.
        ``order``: the id of the login ``work`` locks first; the batch runs its units of work
        in ascending order of it (see the module's text), those without one first."""
        if not self._sqlite and app_id is None:
            async with self.db.transaction(write=True) as session:
                return await work(session)
        key = None if self._sqlite else app_id
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(key, []).append((-1 if order is None else order, work, done))
        task = self._tasks.get(key)
        if task is None or task.done():
            self._tasks[key] = asyncio.create_task(self._drain(key))
        return await done

    async def _drain(self, key: int | None) -> None:
        with contextlib.ExitStack() as scope:
            if key is not None:
                scope.enter_context(tenancy.acting_for(key))
            while queue := self._queues.get(key):
                taken, self._queues[key] = queue[:MAX_BATCH], queue[MAX_BATCH:]
                # the rows the units of work lock first, in ascending order (a stable sort:
                # units of work of the same row keep the order they were handed over in); a
                # caller that was cancelled while waiting (shutdown) no longer wants its work
                batch = [(work, done) for _, work, done in sorted(taken, key=_first_lock)]
                batch = [(work, done) for work, done in batch if not done.done()]
                if batch:
                    await self._write(batch)
            self._queues.pop(key, None)

    async def _write(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        settled: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            async with self.db.transaction(write=True, batch=True) as session:
                if self._sqlite:
                    await session.execute(_BEGIN)
                appends: list[commit_order.Appends] = []
                for position, (work, done) in enumerate(batch):
                    if position:
                        # on SQLite the batch's statements run on the event loop: the loop
                        # turns between its units of work (requests, heartbeats, the bank)
                        await asyncio.sleep(0)
                    try:
                        async with session.begin_nested():
                            value = await work(session)
                            if self._sqlite:
                                # its events are written within its own savepoint
                                await commit_order.write_appends(session)
                            else:
                                # its changes reach the database within its savepoint; its
                                # events wait for the end of the batch (see the module's text)
                                await session.flush()
                                appends.append(commit_order.take_appends(session))
                    except Exception as exc:  # noqa: BLE001 - its caller hears of it
                        commit_order.drop_appends(session)
                        settled.append((done, exc, None))
                    else:
                        settled.append((done, None, value))
                    finally:
                        session.expunge_all()
                # the units of work that succeeded: their events, written as the batch commits
                commit_order.put_appends(session, appends)
        except BaseException as exc:
            # The batch did not commit: no unit of work of it took effect.
            for _, done in batch:
                if done.done():
                    continue
                if isinstance(exc, Exception):
                    done.set_exception(exc)
                else:
                    done.cancel()  # the drain itself was cancelled (shutdown)
            if not isinstance(exc, Exception):
                raise
            return
        for done, failure, value in settled:
            if done.done():
                continue
            if failure is not None:
                done.set_exception(failure)
            else:
                done.set_result(value)

    async def finish(self) -> None:
        """Wait for the units of work already handed over to be written (at shutdown)."""
        for task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await task
