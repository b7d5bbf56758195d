"""Writing the in-memory counts to ``usage_counts``, and purging old rows.

A flush takes everything counted so far and adds it to the table in one transaction, as
``INSERT .. ON CONFLICT DO UPDATE SET total = total + excluded.total`` (SQLite and PostgreSQL), so
any number of processes flush into the same rows without reading them first. Rows go out sorted
by their key, so two processes flushing at once lock rows in the same order. A flush that fails
gives its counts back for the next one; counts of an app erased meanwhile are dropped.

``flusher(db, counters, every)`` is a Litestar lifespan context: it flushes every ``every``
seconds (``BANKHUB_USAGE_FLUSH_SECONDS``) while the server runs and once more at shutdown.
Counts of the last few seconds before a crash (or a SIGKILL) are lost; that is the price of
keeping the request path free of writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ColumnElement, Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import tenancy
from bankhub.db.batches import loop_lifespan, purge_in_batches, run_flush_loop
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.usage.counters import Counters, Key
from bankhub.usage.models import UsageCount

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger("bankhub.usage")

#: usage rows are kept this long by default (``BANKHUB_USAGE_RETENTION_DAYS``)
RETENTION_DAYS = 400
#: rows deleted per transaction by the purge
PURGE_BATCH = 5000
_CONFLICT = ("app_key", "metric", "hour", "outcome", "detail")


def _upsert(dialect: str) -> Insert:
    table = cast(Table, UsageCount.__table__)
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=_CONFLICT, set_={"total": table.c.total + pg.excluded.total}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=_CONFLICT, set_={"total": table.c.total + lite.excluded.total}
    )


def _row(key: Key, total: int) -> dict[str, Any]:
    hour, app_id, metric, outcome, detail = key
    return {
        "app_id": app_id,
        "app_key": app_id or 0,
        "metric": metric,
        "hour": datetime.fromtimestamp(hour * 3600, UTC),
        "outcome": outcome,
        "detail": detail,
        "total": total,
    }


def _sort_key(item: tuple[Key, int]) -> tuple[int, str, int, str, str]:
    hour, app_id, metric, outcome, detail = item[0]
    return (app_id or 0, metric, hour, outcome, detail)


async def write(db: Database, counts: dict[Key, int]) -> int:
    """Add ``counts`` to the table in one transaction; how many rows were written.

    Counts of apps that no longer exist are dropped (their rows would be erased anyway).
    """
    if not counts:
        return 0
    with tenancy.everything():  # S14: one flush holds the counts of every app
        return await _write(db, counts)


async def _write(db: Database, counts: dict[Key, int]) -> int:
    items = sorted(counts.items(), key=_sort_key)
    statement = _upsert(db.dialect)
    try:
        async with db.transaction() as session:
            await session.execute(statement, [_row(k, n) for k, n in items])
        return len(items)
    except IntegrityError:
        # An app was erased since these calls were counted: keep the rest.
        async with db.transaction() as session:
            live = await _live_apps(session, {k[1] for k, _ in items if k[1] is not None})
            kept = [(k, n) for k, n in items if k[1] is None or k[1] in live]
            if kept:
                await session.execute(statement, [_row(k, n) for k, n in kept])
        dropped = len(items) - len(kept)
        if dropped:
            log.info("dropped %d usage counts of erased apps", dropped)
        return len(kept)


async def _live_apps(session: AsyncSession, app_ids: set[int]) -> set[int]:
    if not app_ids:
        return set()
    found = await session.execute(select(App.id).where(App.id.in_(sorted(app_ids))))
    return set(found.scalars())


async def flush(db: Database, counters: Counters) -> int:
    """Write what ``counters`` holds; on failure the counts stay for the next flush."""
    counts = counters.take()
    try:
        return await write(db, counts)
    except BaseException:
        counters.give_back(counts)
        raise


async def purge(
    db: Database, now: datetime, *, days: int = RETENTION_DAYS, batch: int = PURGE_BATCH
) -> int:
    """Delete usage rows whose hour is older than ``days`` before ``now``; how many went.

    In short batches like the rest of the retention purge; safe in several runners at once.
    """
    old: ColumnElement[bool] = UsageCount.hour < now - timedelta(days=days)
    return await purge_in_batches(db, UsageCount, UsageCount.id, old, batch)


async def run_flusher(db: Database, counters: Counters, stop: asyncio.Event, every: float) -> None:
    """Flush every ``every`` seconds until ``stop``, then once more."""
    # ``stop`` set: the loop's last flush already ran after it; nothing is left unless a request
    # finished in between, so the loop flushes once more when ``counters`` is not empty.
    await run_flush_loop(
        lambda: flush(db, counters),
        lambda: len(counters),
        stop,
        every,
        log=log,
        failed="writing usage counts failed; they are kept for the next try",
        lost="writing usage counts at shutdown failed; they are lost",
    )


def flusher(
    db: Database, counters: Counters, every: float
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan entry: flush while serving, and at shutdown (before the hub closes,
    so list it after the lifespan that closes the hub)."""
    return loop_lifespan(lambda stop: run_flusher(db, counters, stop, every))
