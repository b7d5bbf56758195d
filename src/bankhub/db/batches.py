"""Work on tables that grow by the minute: purging old rows in short batches, and a flush loop
that writes an in-memory buffer every few seconds.

The usage counters and the API request log both keep their writes off the request path and
their tables bounded by age; the two loops below are shared so that they fail, retry and stop
the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import InstrumentedAttribute

from bankhub.db.engine import Database

if TYPE_CHECKING:
    from litestar import Litestar


async def purge_in_batches(
    db: Database,
    model: Any,
    id_column: InstrumentedAttribute[int],
    old: ColumnElement[bool],
    batch: int,
) -> int:
    """Delete the rows of ``model`` matching ``old``, ``batch`` ids per transaction, oldest ids
    first; how many went. Short transactions keep locks brief, and several runners may purge at
    once: a row another one deleted first is simply not counted twice."""
    removed = 0
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(id_column).where(old).order_by(id_column).limit(batch)
                    )
                ).scalars()
            )
            if not ids:
                return removed
            gone = await session.execute(
                delete(model)
                .where(id_column.in_(ids), old)
                .returning(id_column)
                .execution_options(synchronize_session=False)
            )
            removed += len(gone.all())
        if len(ids) < batch:
            return removed


async def run_flush_loop(
    flush: Callable[[], Awaitable[object]],
    pending: Callable[[], int],
    stop: asyncio.Event,
    every: float,
    *,
    log: logging.Logger,
    failed: str,
    lost: str,
) -> None:
    """Call ``flush`` every ``every`` seconds until ``stop``, then once more if ``pending()``
    says something arrived in between. A failed flush is logged (``failed``; at shutdown
    ``lost``) and the loop goes on: ``flush`` keeps what it could not write."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)
        try:
            await flush()
        except Exception:
            log.exception(failed)
    if pending():
        try:
            await flush()
        except Exception:
            log.exception(lost)


def loop_lifespan(
    run: Callable[[asyncio.Event], Awaitable[None]],
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan entry running ``run(stop)`` while serving; at shutdown ``stop`` is set
    and the entry waits for ``run`` to finish."""

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.ensure_future(run(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    return lifespan
