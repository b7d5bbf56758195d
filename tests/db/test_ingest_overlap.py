"""A large first sync prepares each batch of new rows while the previous one is written.

Categorizing, sealing and encoding a batch is Python on the event loop; writing it is the
driver's (aiosqlite's thread, which lets go of the GIL while SQLite steps each row; PostgreSQL's
server for COPY). The engine hands a batch to the driver and prepares the next one meanwhile, on
both databases. The write of the first batch here waits until the second batch is being
prepared: an engine that waited for each write before preparing the next would never get there.
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bankhub.accounts.models import Transaction
from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.customers import services as customers
from bankhub.db import bulk, tenancy
from bankhub.logins import services as logins
from bankhub.partners import services as partners
from bankhub.sync.engine import INSERT_BATCH, FetchedAccount, FetchResult, SyncEngine
from tests.conftest import Harness

ROWS = 2 * INSERT_BATCH + 17
#: how long the first write waits for the second batch's preparation before the test fails
PATIENCE_SECONDS = 10.0


def records() -> list[TransactionRecord]:
    start = date(2024, 1, 1)
    return [
        TransactionRecord(
            bank_id=f"tx-{n}",
            booking_date=start + timedelta(days=n // 10),
            amount=Decimal(-(n % 900) - 1) / 100,
            currency="EUR",
            description=f"KARTENZAHLUNG LIDL FIL {n % 70} BERLIN {n:06d}",
            merchant="Lidl",
        )
        for n in range(ROWS)
    ]


async def test_the_next_batch_is_prepared_while_the_previous_is_written(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = harness.hub
    prepared = 0
    second_batch_prepared = asyncio.Event()
    writes: list[tuple[str, int]] = []
    finish_rows = SyncEngine._finish_rows
    insert = bulk.insert_encoded_with_ids

    def counting_finish(self: SyncEngine, account: Any, rows: Any, *args: Any) -> None:
        nonlocal prepared
        finish_rows(self, account, rows, *args)
        prepared += len(rows)
        if prepared > INSERT_BATCH:
            second_batch_prepared.set()

    async def waiting_insert(*args: Any, **kwargs: Any) -> list[int]:
        first = not writes
        writes.append(("start", prepared))
        if first:
            await asyncio.wait_for(second_batch_prepared.wait(), PATIENCE_SECONDS)
        ids = await insert(*args, **kwargs)
        writes.append(("end", prepared))
        return ids

    monkeypatch.setattr(SyncEngine, "_finish_rows", counting_finish)
    monkeypatch.setattr(bulk, "insert_encoded_with_ids", waiting_insert)
    account = AccountRecord(
        bank_id="overlap",
        name="Giro",
        type=AccountType.CURRENT,
        currency="EUR",
        balance=Decimal("10.00"),
    )
    with tenancy.everything():
        async with hub.db.transaction() as session:
            issued = await partners.create_app(session, hub.hasher, hub.clock, "overlap")
            customer = await customers.create_customer(session, hub.clock, issued.app, "c")
            login, _ = logins.add_login(
                session,
                hub.hasher,
                hub.clock(),
                app_id=issued.app.id,
                customer_id=customer.id,
                service_id=1,
            )
            await session.flush()
            result = FetchResult([FetchedAccount(account, records())], None, {}, None)
            summary = await hub.engine.apply(session, login, result)
        async with hub.db.transaction() as session:
            stored = await session.scalar(
                select(func.count(Transaction.id)).where(
                    Transaction.account_id == summary.account_ids[0]
                )
            )
    assert summary.inserted == stored == ROWS
    # the first write ended only once the second batch was (being) prepared
    assert writes[0][0] == "start"
    assert writes[0][1] >= INSERT_BATCH
    assert next(n for kind, n in writes if kind == "end") > INSERT_BATCH
