"""What writing the feeds in commit order costs the write path (docs/webhooks.md).

    .venv/bin/python -m bench.feed_order [UNITS_PER_WRITER] [SYNC_ROWS ...]

On a throwaway PostgreSQL server (and SQLite, for context), with the superuser as bankhub:

* commits: 8 writers at once, each committing UNITS_PER_WRITER (default 200) short units of
  work that record one event after a few other statements. Three ways: every writer on one
  app, events written the way bankhub writes them (at commit, under the app's feed lock); the
  same without the lock, the way events were written before (inserted at once, ids in insert
  order): the baseline; and each writer on an app of its own (the lock never shared). Units of
  work per second, and the median and 99th percentile of one unit of work's time.
* a first sync of SYNC_ROWS (default 10,000 and 50,000) new transactions: how long the whole
  unit of work took, and how long of it the app's feed lock was held (from taking it to the
  end of the commit), during which the app's other event-recording commits wait. (Its
  change-log rows are written earlier, under the account's row lock the sync holds anyway.)
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.clock import utcnow
from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.db import commit_order
from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bankhub.security.secrets import SecretHasher
from bankhub.sync.engine import FetchedAccount, FetchResult
from bench._fixture import new_app, new_logins
from bench._ingest_data import SERVICE_ID, catalogue
from bench.harness import percentile
from bench.ingest import SECRET, Databases, migrated, settings_for

WRITERS = 8
#: statements a unit of work runs before it records its event (its "work")
WORK = 3


async def record_at_once(session: AsyncSession, app_id: int) -> None:
    """The baseline: the event inserted when it is recorded, as before the feed lock."""
    event = Event(
        app_id=app_id,
        login_id=None,
        type=events.LOGIN_STATUS,
        payload=events.login_status_payload(1, "success"),
        created_at=utcnow(),
    )
    session.add(event)
    await session.flush()
    await events.fan_out(session, event, utcnow())


async def record_in_order(session: AsyncSession, app_id: int) -> None:
    await events.record(
        session,
        app_id=app_id,
        type=events.LOGIN_STATUS,
        payload=events.login_status_payload(1, "success"),
        now=utcnow(),
    )


async def apps(hub: Hub, count: int) -> list[int]:
    hasher = SecretHasher(SECRET.encode())
    made = []
    async with hub.db.transaction() as session:
        for n in range(count):
            app, _ = await new_app(session, hasher, utcnow, f"feed bench {n}")
            made.append(app.id)
    return made


async def commits(hub: Hub, app_ids: list[int], units: int, *, ordered: bool) -> str:
    record = record_in_order if ordered else record_at_once
    times: list[float] = []

    async def writer(app_id: int) -> None:
        for _ in range(units):
            started = time.perf_counter()
            async with hub.db.transaction() as session:
                for _ in range(WORK):
                    await session.execute(text("SELECT 1"))
                await record(session, app_id)
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer(app_ids[n % len(app_ids)]) for n in range(WRITERS)))
    elapsed = time.perf_counter() - started
    return (
        f"{WRITERS * units / elapsed:,.0f} units/s, median {statistics.median(times) * 1e3:.2f}"
        f" ms, p99 {percentile(times, 99) * 1e3:.2f} ms"
    )


async def first_sync(hub: Hub, rows: int) -> str:
    hasher = SecretHasher(SECRET.encode())
    async with hub.db.transaction() as session:
        app, _ = await new_app(session, hasher, utcnow, f"sync bench {rows}")
        ((login, _),) = await new_logins(session, hasher, utcnow, app, SERVICE_ID, ["s"])
        login_id = login.id
    start = date(2024, 1, 1)
    records = [
        TransactionRecord(
            bank_id=f"t{n}",
            booking_date=start + timedelta(days=n * 700 // rows),
            amount=Decimal(-(n % 9973) - 1) / 100,
            currency="EUR",
            description=f"CARD PAYMENT MERCHANT {n % 500} REF {n:08d}",
        )
        for n in range(rows)
    ]
    account = AccountRecord("acc", "Everyday", AccountType.CURRENT, "EUR", Decimal("1.00"))
    result = FetchResult([FetchedAccount(account, records)], None, {}, None)
    started = time.perf_counter()
    async with hub.db.transaction() as session:
        login = await session.get(Login, login_id)
        assert login is not None  # noqa: S101
        await hub.engine.apply(session, login, result)
        # what Database.transaction would do next, timed: from here to the end of the commit
        # the app's feed lock is held
        await session.flush()
        locked = time.perf_counter()
        await commit_order.write_appends(session)
    done = time.perf_counter()
    # SQLite takes no feed lock (one writer at a time): there it is the commit's own time
    held = "feed lock held" if hub.db.dialect == "postgresql" else "events and commit"
    return (
        f"{rows:,} rows: unit of work {done - started:.2f} s, {held} {(done - locked) * 1e3:.0f} ms"
    )


async def measure(dbs: Databases, kind: str, work: Path, units: int, sizes: list[int]) -> None:
    url = await migrated(dbs, kind)
    try:
        hub = Hub.build(settings_for(url, work), catalogue=catalogue(work))
        await hub.ready()
        try:
            made = await apps(hub, WRITERS)
            for label, app_ids, ordered in (
                ("one app, inserted at once (before)", made[:1], False),
                ("one app, in commit order", made[:1], True),
                (f"{WRITERS} apps, in commit order", made, True),
            ):
                print(f"{kind}: {label}: {await commits(hub, app_ids, units, ordered=ordered)}")
            for rows in sizes:
                print(f"{kind}: first sync of {await first_sync(hub, rows)}", flush=True)
        finally:
            await hub.close()
    finally:
        await dbs.drop(url)


async def main(units: int, sizes: list[int]) -> None:
    from tests.support.postgres import PostgresServer

    with tempfile.TemporaryDirectory(prefix="bankhub-feed-") as tmp, PostgresServer() as pg:
        work = Path(tmp)
        dbs = Databases(work, pg.url)
        for kind in ("postgresql", "sqlite"):
            await measure(dbs, kind, work, units, sizes)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(arguments[0] if arguments else 200, arguments[1:] or [10_000, 50_000]))
