"""Writing the recorded calls to ``api_requests`` in batches, the query of the dashboard's search
(its paging is the dashboard's), and purging them past their retention
(``BANKHUB_REQUEST_LOG_DAYS``).

A flush takes every call recorded so far and inserts it in one transaction (rows of every app:
the tenant wall is opened for it, S14). A flush that fails gives its rows back for the next one;
rows of an app erased meanwhile are dropped. ``flusher`` runs it every
``BANKHUB_USAGE_FLUSH_SECONDS`` beside the usage counters' flush, and once more at shutdown: a
process killed outright loses its last few seconds of calls, the price of a request path
without writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, and_, insert, select
from sqlalchemy.exc import IntegrityError

from bankhub.db import tenancy
from bankhub.db.batches import loop_lifespan, purge_in_batches, run_flush_loop
from bankhub.db.engine import Database
from bankhub.partners.models import App
from bankhub.requestlog.buffer import RequestLog, Row
from bankhub.requestlog.models import ApiRequest

if TYPE_CHECKING:
    from litestar import Litestar

log = logging.getLogger("bankhub.requestlog")

#: calls are kept this long by default
RETENTION_DAYS = 14
PURGE_BATCH = 5000


def _values(row: Row) -> dict[str, Any]:
    app_id, at, method, route, status, latency, request_id, error_code, key_id, via = row
    return {
        "app_id": app_id,
        "at": at,
        "method": method[:8],
        "route": route,
        "status": status,
        "latency_us": min(latency, 2**31 - 1),
        "request_id": request_id,
        "error_code": error_code[:40] if error_code else None,
        "key_id": key_id,
        "via": via,
    }


async def write(db: Database, rows: Sequence[Row]) -> int:
    """Insert ``rows`` in one transaction; how many were written (an erased app's are not)."""
    if not rows:
        return 0
    with tenancy.everything():  # S14: one flush holds the calls of every app
        try:
            async with db.transaction() as session:
                await session.execute(insert(ApiRequest), [_values(r) for r in rows])
            return len(rows)
        except IntegrityError:
            async with db.transaction() as session:
                wanted = sorted({r[0] for r in rows})
                live = set(
                    (await session.execute(select(App.id).where(App.id.in_(wanted)))).scalars()
                )
                kept = [r for r in rows if r[0] in live]
                if kept:
                    await session.execute(insert(ApiRequest), [_values(r) for r in kept])
            log.info("dropped %d logged calls of erased apps", len(rows) - len(kept))
            return len(kept)


async def flush(db: Database, buffer: RequestLog) -> int:
    """Write what ``buffer`` holds; on failure the rows stay for the next flush."""
    rows = buffer.take()
    try:
        return await write(db, rows)
    except BaseException:
        buffer.give_back(rows)
        raise


async def run_flusher(db: Database, buffer: RequestLog, stop: asyncio.Event, every: float) -> None:
    await run_flush_loop(
        lambda: flush(db, buffer),
        lambda: len(buffer),
        stop,
        every,
        log=log,
        failed="writing the request log failed; its rows are kept for the next try",
        lost="writing the request log at shutdown failed; its rows are lost",
    )


def flusher(
    db: Database, buffer: RequestLog, every: float
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A Litestar lifespan entry: flush while serving, and at shutdown (list it after the
    lifespan that closes the hub)."""
    return loop_lifespan(lambda stop: run_flusher(db, buffer, stop, every))


async def purge(
    db: Database, now: datetime, *, days: int = RETENTION_DAYS, batch: int = PURGE_BATCH
) -> int:
    """Delete calls older than ``days`` before ``now``, in short batches; how many went."""
    old: ColumnElement[bool] = ApiRequest.at < now - timedelta(days=days)
    with tenancy.everything():  # S14: the sweep purges every app's rows
        return await purge_in_batches(db, ApiRequest, ApiRequest.id, old, batch)


# --- the dashboard's page ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Search:
    """What the page's form asks for; every field is optional."""

    request_id: str = ""
    #: an exact status (``404``) or a class (``4xx``)
    status: str = ""
    #: the route template contains this
    route: str = ""
    error_code: str = ""

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.request_id:
            found.append(ApiRequest.request_id == self.request_id)
        status = self.status.lower()
        if len(status) == 3 and status[0] in "2345" and status[1:] == "xx":
            low = int(status[0]) * 100
            found.append(and_(ApiRequest.status >= low, ApiRequest.status < low + 100))
        elif status.isdigit() and len(status) == 3:
            found.append(ApiRequest.status == int(status))
        if self.route:
            found.append(ApiRequest.route.contains(self.route, autoescape=True))
        if self.error_code:
            found.append(ApiRequest.error_code == self.error_code)
        return found


def search(app_id: int, wanted: Search) -> Select[tuple[ApiRequest]]:
    """The app's calls matching ``wanted``, in no order: the caller pages them (the dashboard
    newest first by id, on the ``(app_id, id)`` index)."""
    return select(ApiRequest).where(ApiRequest.app_id == app_id, *wanted.conditions())
