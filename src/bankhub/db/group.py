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

On PostgreSQL (any number of writers, and row-level security that names one app per
transaction, S14) a unit of work keeps a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import commit_order
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


class GroupCommit:
    """Runs writing units of work in shared transactions (see the module's text)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self, work: Work[T]) -> T:
        """Run ``work`` with a session, in the next batch; its result once committed."""
        if self.db.dialect != "sqlite":
            async with self.db.transaction(write=True) as session:
                return await work(session)
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            # a caller that was cancelled while waiting (shutdown) no longer wants its work done
            batch = [(work, done) for work, done in batch if not done.done()]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        settled: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        try:
            async with self.db.transaction(write=True) as session:
                await session.execute(_BEGIN)
                for work, done in batch:
                    try:
                        async with session.begin_nested():
                            value = await work(session)
                            # its events are written within its own savepoint
                            await commit_order.write_appends(session)
                    except Exception as exc:  # noqa: BLE001 - its caller hears of it
                        commit_order.drop_appends(session)
                        settled.append((done, exc, None))
                    else:
                        settled.append((done, None, value))
                    finally:
                        session.expunge_all()
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
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
