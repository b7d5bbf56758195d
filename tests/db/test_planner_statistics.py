"""After a large first sync the page query reads the account's index backwards, without a sort.

Right after a bulk ingest, before autovacuum's next round, PostgreSQL's planner believes the
transactions table small and plans a newest-first page as a bitmap scan of every row of the
account plus a sort. The sync engine notes the growth and the unit of work ANALYZEs the table
once it commits (``bankhub.db.engine.note_growth``). The statement explained is the one bankhub
sent for ``GET /v2/transaction``, captured from the engine as it ran.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import create_async_engine

from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord
from bankhub.customers import services as customers
from bankhub.db import engine as db_engine
from bankhub.db import tenancy
from bankhub.logins import services as logins
from bankhub.partners import services as partners
from bankhub.sync.engine import FetchedAccount, FetchResult
from tests.conftest import Harness
from tests.support.postgres import PostgresRoles

#: rows of the one account: a large first sync (a business account's years of history)
ROWS = 40_000


async def _ingest(h: Harness) -> tuple[dict[str, str], str, int, int]:
    """An app, a login and its account of ``ROWS`` transactions, through the engine's apply;
    the app's credentials, the login-secret, the app id and the account id."""
    hub = h.hub
    start = date(2020, 1, 1)
    records = [
        TransactionRecord(
            bank_id=f"tx-{n}",
            booking_date=start + timedelta(days=n // 20),
            amount=Decimal(-(n % 5000) - 1) / 100,
            currency="EUR",
            description=f"CARD PAYMENT MERCHANT {n % 500} BERLIN REF {n:08d}",
            merchant=f"MERCHANT {n % 500}",
        )
        for n in range(ROWS)
    ]
    account = AccountRecord(
        bank_id="big-account",
        name="Business",
        type=AccountType.CURRENT,
        currency="EUR",
        balance=Decimal("1000.00"),
    )
    with tenancy.everything():
        async with hub.db.transaction() as session:
            issued = await partners.create_app(session, hub.hasher, hub.clock, "big")
            app = issued.app
            customer = await customers.create_customer(session, hub.clock, app, "big")
            login, secret = logins.add_login(
                session,
                hub.hasher,
                hub.clock(),
                app_id=app.id,
                customer_id=customer.id,
                service_id=1,
            )
            await session.flush()
            result = FetchResult([FetchedAccount(account, records)], None, {}, None)
            summary = await hub.engine.apply(session, login, result)
            assert summary.inserted == ROWS
            account_id = summary.account_ids[0]
    return issued.as_dict(), secret, app.id, account_id


async def _page_statement(
    h: Harness, creds: dict[str, str], secret: str, account_id: int
) -> tuple[str, Any]:
    """The statement bankhub sends for a 100-row page, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM transactions" in statement and "ORDER BY" in statement:
            sent.append((statement, parameters))

    # the read routes read through the read-only engine where the database has one (SQLite)
    engine = (h.hub.db.read_engine or h.hub.db.engine).sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        headers = {
            "client-id": creds["client_id"],
            "service-secret": creds["service_secret"],
            "login-secret": secret,
        }
        answer = await h.client.get(
            "/v2/transaction", params={"account_id": account_id, "per_page": 100}, headers=headers
        )
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 100
    assert len(sent) == 1, sent
    return sent[0]


async def _plan(h: Harness, app_id: int, statement: str, parameters: Any) -> str:
    explain = "EXPLAIN " if h.hub.db.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    with tenancy.acting_for(app_id):
        async with h.hub.db.transaction() as session:
            connection = await session.connection()
            rows = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


async def _explained(h: Harness) -> str:
    creds, secret, app_id, account_id = await _ingest(h)
    statement, parameters = await _page_statement(h, creds, secret, account_id)
    return await _plan(h, app_id, statement, parameters)


@pytest.mark.postgres
async def test_postgres_page_reads_the_index_backwards_after_a_large_first_sync(
    app_role_harness: Harness, postgres_roles: PostgresRoles
) -> None:
    """As deployed: the runtime role under row-level security, the owner as the maintenance
    role; autovacuum kept off the table, as it is until its next round."""
    owner = create_async_engine(postgres_roles.owner_url)
    try:
        async with owner.begin() as connection:
            await connection.execute(
                text("ALTER TABLE transactions SET (autovacuum_enabled = false)")
            )
    finally:
        await owner.dispose()
    plan = await _explained(app_role_harness)
    assert "Index Scan Backward" in plan, plan
    assert "ix_transactions_account_date" in plan, plan
    assert "Sort" not in plan, plan
    assert "Bitmap" not in plan, plan
    # analyzed now (40,000 rows believed): 1,000 more rows are under the fraction, 5,000 not
    db = app_role_harness.hub.db
    assert await db.refresh_statistics({"transactions": 1_000}) == []
    assert await db.refresh_statistics({"transactions": 5_000}) == ["transactions"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_page_reads_the_index_without_a_sort_after_a_large_first_sync(
    harness: Harness,
) -> None:
    """SQLite has no such trap: bankhub never writes ``sqlite_stat1``, and without it the
    planner takes the index whose columns match the account filter and the order."""
    plan = await _explained(harness)
    assert "ix_transactions_account_date" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


async def test_small_syncs_do_not_analyze(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh's few rows note nothing, so no unit of work pays for statistics."""
    called: list[dict[str, int]] = []

    async def refresh(self: db_engine.Database, grown: dict[str, int]) -> list[str]:
        called.append(grown)
        return []

    monkeypatch.setattr(db_engine.Database, "refresh_statistics", refresh)
    hub = harness.hub
    with tenancy.everything():
        async with hub.db.transaction() as session:
            app = (await partners.create_app(session, hub.hasher, hub.clock, "small")).app
            customer = await customers.create_customer(session, hub.clock, app, "small")
            login, _ = logins.add_login(
                session,
                hub.hasher,
                hub.clock(),
                app_id=app.id,
                customer_id=customer.id,
                service_id=1,
            )
            await session.flush()
            records = [
                TransactionRecord(
                    bank_id=f"s-{n}",
                    booking_date=date(2026, 1, 1),
                    amount=Decimal("-1.00"),
                    currency="EUR",
                    description=f"SMALL {n}",
                )
                for n in range(db_engine.ANALYZE_MIN_ROWS - 1)
            ]
            account = AccountRecord(
                bank_id="small", name="S", type=AccountType.CURRENT, currency="EUR", balance=None
            )
            result = FetchResult([FetchedAccount(account, records)], None, {}, None)
            await hub.engine.apply(session, login, result)
    assert called == []
