"""The audit writer: group commit of audit entries, owned by the hub (one per process).

Requests that read account data must not answer before their audit entry is durable (S42), yet
a transaction per read would double the cost of the hottest path. So a handler hands its entry
to the writer and awaits it; the writer's single task inserts everything queued in one
transaction (one multi-row insert) as soon as it is free, then releases every waiting request
at once. One read alone is written at once (after one turn of the event loop, so that reads
finishing together share it); many concurrent reads share a commit. The writer keeps a
connection of its own, so it never queues behind requests for one from the pool.

* Back-pressure: at most ``max_pending`` entries wait; a request beyond that waits for room.
* Failure: when the insert fails, every request waiting on that batch gets
  :class:`AuditUnavailable` (the app answers a generic 500), so no data leaves unaudited.
* Coalescing: events that an attacker can repeat at will (failed authentications) and chatty
  ones (token introspection) are counted in memory per key and minute, and written as one entry
  with a count when the minute is over (at most ``tick_seconds`` later), or on :meth:`flush`
  and :meth:`close`. Such entries have no waiting request; a failed write keeps them for the
  next attempt.
* Shutdown: :meth:`close` writes everything still queued or counted.

The task starts on first use in the running event loop, so a hub built before the loop (the
granian factory) or never serving (the CLI) costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from bankhub.audit.models import AuditEntry
from bankhub.clock import Clock
from bankhub.db import tenancy
from bankhub.db.engine import Database
from bankhub.partners.models import App

log = logging.getLogger("bankhub.audit")

MAX_PENDING = 10_000
#: distinct coalescing keys kept in memory before they are written early
MAX_COALESCED = 10_000
#: how many distinct values a coalesced entry lists (e.g. client ids presented)
MAX_SAMPLES = 5
BUCKET = timedelta(minutes=1)
AUDIT_LOG: Table = AuditEntry.__table__  # type: ignore[assignment]
#: the columns a batch writes (the id comes from the sequence)
_COLUMNS = [c.name for c in AUDIT_LOG.columns if not c.primary_key]
#: PostgreSQL: a batch as one statement of one shape whatever its size, each column sent as an
#: array and unnested server side. A row per statement (executemany) cost the server about a
#: millisecond per audited read in the read benchmark, more than the read itself.
_INSERT_UNNESTED = insert(AUDIT_LOG).from_select(
    _COLUMNS,
    select(
        *(func.unnest(bindparam(name, type_=ARRAY(AUDIT_LOG.c[name].type))) for name in _COLUMNS)
    ),
)


class AuditUnavailable(RuntimeError):
    """The audit entry of a request could not be stored; the request must not answer."""


@dataclass(slots=True)
class _Pending:
    row: dict[str, Any] | None
    done: asyncio.Future[None] | None
    #: resolve ``app_id`` from this client id when writing (coalesced entries)
    client_id: str | None = None


@dataclass(slots=True)
class _Counted:
    """A coalesced entry: one key, one minute, a count."""

    row: dict[str, Any]
    bucket: datetime
    client_id: str | None
    count: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[str]] = field(default_factory=dict)
    last_at: datetime | None = None

    def entry(self) -> _Pending:
        detail = dict(self.row["detail"])
        detail["count"] = self.count
        detail.update(self.counters)
        detail.update(self.samples)
        detail["last_at"] = self.last_at.isoformat() if self.last_at else None
        return _Pending({**self.row, "detail": detail}, None, self.client_id)


class AuditWriter:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        max_pending: int = MAX_PENDING,
        tick_seconds: float = 10.0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.max_pending = max_pending
        self.tick_seconds = tick_seconds
        self._queue: list[_Pending] = []
        #: coalesced entries whose write failed, tried again with the next batch
        self._retry: list[_Pending] = []
        self._counted: dict[Hashable, _Counted] = {}
        #: the minute of the last look for coalesced entries whose minute is over
        self._looked: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._closing = False
        self._connection: AsyncConnection | None = None

    # --- handing entries over ---------------------------------------------------------------------

    async def write(self, row: dict[str, Any]) -> None:
        """Queue one entry and return once it is committed; :class:`AuditUnavailable` if not."""
        self._start()
        while len(self._queue) >= self.max_pending:
            self._room.clear()
            await self._room.wait()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(row, done))
        self._wake.set()
        await done

    def count(
        self,
        key: Hashable,
        row: dict[str, Any],
        *,
        counter: str | None = None,
        samples: dict[str, str] | None = None,
        client_id: str | None = None,
    ) -> None:
        """Count one occurrence of a coalesced event (no waiting; written within a minute).

        ``row`` is the entry as of the first occurrence; later ones add to ``count`` (and to
        ``counter``), and up to :data:`MAX_SAMPLES` distinct values of each of ``samples``.
        ``client_id``: the entry's app, resolved from it when written.
        """
        now = self.clock()
        bucket = now.replace(second=0, microsecond=0)
        slot = (key, bucket)
        counted = self._counted.get(slot)
        if counted is None:
            if len(self._counted) >= MAX_COALESCED:
                self._release(everything=True)
            counted = self._counted[slot] = _Counted(row, bucket, client_id)
        counted.count += 1
        counted.last_at = now
        if counter is not None:
            counted.counters[counter] = counted.counters.get(counter, 0) + 1
        for name, value in (samples or {}).items():
            seen = counted.samples.setdefault(name, [])
            if value not in seen and len(seen) < MAX_SAMPLES:
                seen.append(value)
        if bucket != self._looked:  # once a minute here, not once a failure
            self._looked = bucket
            self._release()
        with contextlib.suppress(RuntimeError):  # no running loop: the next write or flush
            self._start()

    async def flush(self) -> None:
        """Write everything queued and counted so far, and return once it is committed."""
        self._start()
        self._release(everything=True)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(None, done))
        self._wake.set()
        await done

    async def close(self) -> None:
        """Write everything still queued or counted, then stop the task."""
        self._release(everything=True)
        if not (self._queue or self._retry) and self._task is None:
            return
        self._start()
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            await task
        self._task = None
        self._closing = False
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    # --- the writer task --------------------------------------------------------------------------

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        if self._loop is not loop:
            # A new event loop (tests, or a CLI run after another): fresh primitives.
            self._wake, self._room = asyncio.Event(), asyncio.Event()
            self._loop = loop
        self._task = loop.create_task(self._run(), name="bankhub-audit-writer")

    def _release(self, *, everything: bool = False) -> None:
        """Move coalesced entries whose minute is over (or all of them) to the queue."""
        if not self._counted:
            return
        now = self.clock()
        for slot, counted in list(self._counted.items()):
            if everything or counted.bucket + BUCKET <= now:
                del self._counted[slot]
                self._queue.append(counted.entry())
                self._wake.set()

    async def _run(self) -> None:
        while True:
            self._release(everything=self._closing)
            if not self._queue:
                if self._closing:
                    if not self._retry:
                        return
                else:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
                        continue
                    except TimeoutError:
                        if not self._retry:
                            continue
            # One turn of the loop first: handlers whose reads just finished join this batch.
            await asyncio.sleep(0)
            batch, self._queue, self._retry = self._retry + self._queue, [], []
            self._room.set()
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        rows = [p for p in batch if p.row is not None]
        try:
            if rows:
                await self._insert(rows)
        except Exception as exc:  # each waiting request fails instead
            log.error("could not store %d audit entries", len(rows), exc_info=exc)
            failure = AuditUnavailable("the audit log could not be written")
            for pending in batch:
                if pending.done is None:
                    if pending.row is not None:
                        self._keep_for_retry(pending)
                elif not pending.done.done():
                    pending.done.set_exception(failure)
            if self._closing:
                self._retry = []  # shutting down: logged above, nothing left to try with
            return
        for pending in batch:
            if pending.done is not None and not pending.done.done():
                pending.done.set_result(None)

    def _keep_for_retry(self, pending: _Pending) -> None:
        if len(self._retry) < self.max_pending:
            self._retry.append(pending)
        else:
            log.error("audit entry dropped after a failed write: %s", pending.row)

    async def _insert(self, batch: list[_Pending]) -> None:
        """One transaction, one multi-row insert, on the writer's own connection (never
        waiting behind requests for one from the pool)."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = await self.db.engine.connect()
        try:
            async with connection.begin():
                await tenancy.span_every_app(connection)  # S14: entries of every app
                rows = await self._rows(connection, batch)
                if connection.dialect.name == "postgresql":
                    columns = {name: [row[name] for row in rows] for name in _COLUMNS}
                    await connection.execute(_INSERT_UNNESTED, columns)
                else:
                    await connection.execute(insert(AUDIT_LOG), rows)
        except BaseException:
            self._connection = None  # possibly broken: the next batch opens another
            with contextlib.suppress(Exception):
                await connection.close()
            raise

    async def _rows(self, connection: AsyncConnection, batch: list[_Pending]) -> list[Any]:
        """The batch's rows, with the app of coalesced entries resolved from its client id."""
        wanted = {p.client_id for p in batch if p.client_id and p.row and not p.row["app_id"]}
        apps: dict[str, int] = {}
        if wanted:
            found = await connection.execute(
                select(App.client_id, App.id).where(App.client_id.in_(wanted))
            )
            apps = {client_id: app_id for client_id, app_id in found.tuples()}
        rows = []
        for pending in batch:
            row = pending.row
            if row is None:
                continue
            if not row["app_id"] and pending.client_id in apps:
                row = {**row, "app_id": apps[pending.client_id]}
            rows.append(row)
        return rows
