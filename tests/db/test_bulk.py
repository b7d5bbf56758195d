"""Bulk inserts (executemany on SQLite, COPY on PostgreSQL) store exactly what the ORM would."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, event, func, select, text

from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.db import bulk
from bankhub.db.engine import SQLITE_SWITCH_INTERVAL, Database
from bankhub.sync.engine import CHANGE_COLUMNS, TRANSACTION_COLUMNS
from tests.api.connect_client import connect
from tests.conftest import Harness

TRANSACTIONS = cast(Table, Transaction.__table__)
CHANGES = cast(Table, TransactionChange.__table__)
BERLIN = timezone(timedelta(hours=1))


def row(account: Account, n: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "app_id": account.app_id,
        "account_id": account.id,
        "dedupe_key": f"b:bulk-{n}",
        "fingerprint": f"{n:040x}",
        "original_id": f"bulk-{n}",
        # the sealed details: bulk inserts store whatever text the engine made
        "details_enc": f"v1.k1.sealed-{n}-«ü»",
        "date": date(2026, 1, 1) + timedelta(days=n % 30),
        "value_date": None if n % 2 else date(2026, 2, 1),
        "amount": Decimal("-12345678901234.12345678") if n == 0 else Decimal(f"{n}.10"),
        "currency": "EUR",
        "description": f"Zahlung «{n}» — Café 'ü' \\ % _",
        "merchant": None if n % 3 else "Café",
        "category": "shopping",
        "status": "booked",
        "meta": {"mcc": "5411", "n": n, "nested": [1, "ü"]} if n % 2 else None,
        "pending_transaction_id": None,
        # one sync's timestamp, given in another zone: stored as the same instant in UTC
        "fetched_at": datetime(2026, 3, 1, 10, 0, tzinfo=BERLIN),
        "created_at": datetime(2026, 3, 1, 9, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return values


async def an_account(h: Harness) -> Account:
    await connect(h, "user_good")
    async with h.hub.db.transaction() as session:
        account = (await session.execute(select(Account).order_by(Account.id))).scalars().first()
    assert account is not None
    return account


@pytest.mark.parametrize("count", [7, bulk.SMALL + 70])
async def test_rows_come_back_as_the_orm_reads_them_with_their_ids(
    harness: Harness, count: int
) -> None:
    """A few rows go by INSERT ... RETURNING, more by executemany or COPY: the same rows."""
    h = harness
    account = await an_account(h)
    rows = [row(account, n) for n in range(count)]
    async with h.hub.db.transaction() as session:
        ids = await bulk.insert_many_with_ids(
            session,
            TRANSACTIONS,
            rows,
            TRANSACTION_COLUMNS,
            key="dedupe_key",
            scope=("account_id", account.id),
        )
        await bulk.insert_many(
            session,
            CHANGES,
            [
                {
                    "app_id": account.app_id,
                    "account_id": account.id,
                    "transaction_id": ids[r["dedupe_key"]],
                    "kind": "added",
                    "changed_at": r["created_at"],
                }
                for r in rows
            ],
            CHANGE_COLUMNS,
        )
    assert sorted(ids) == sorted(r["dedupe_key"] for r in rows)
    async with h.hub.db.transaction() as session:
        stored = {
            t.id: t
            for t in (
                await session.execute(select(Transaction).where(Transaction.id.in_(ids.values())))
            ).scalars()
        }
        logged = (
            await session.execute(
                select(TransactionChange.transaction_id).where(
                    TransactionChange.transaction_id.in_(ids.values())
                )
            )
        ).scalars()
        assert sorted(logged) == sorted(ids.values())
    for original in rows:
        got = stored[ids[original["dedupe_key"]]]
        for column in TRANSACTION_COLUMNS:
            want = original[column]
            if isinstance(want, datetime):
                want = want.astimezone(UTC)
            assert getattr(got, column) == want, column
    assert stored[ids["b:bulk-0"]].amount == Decimal("-12345678901234.12345678")


async def test_a_naive_timestamp_is_refused_and_nothing_is_stored(harness: Harness) -> None:
    h = harness
    account = await an_account(h)
    async with h.hub.db.transaction() as session:
        before = (await session.execute(select(func.count(Transaction.id)))).scalar_one()
    with pytest.raises(ValueError, match="naive"):
        async with h.hub.db.transaction() as session:
            await bulk.insert_many(
                session,
                TRANSACTIONS,
                [row(account, 1), row(account, 2, fetched_at=datetime(2026, 3, 1))],  # noqa: DTZ001 - the bad input under test
                TRANSACTION_COLUMNS,
            )
    async with h.hub.db.transaction() as session:
        after = (await session.execute(select(func.count(Transaction.id)))).scalar_one()
    assert after == before


async def test_a_duplicate_key_rolls_back_the_whole_insert(harness: Harness) -> None:
    h = harness
    account = await an_account(h)
    async with h.hub.db.transaction() as session:
        before = (await session.execute(select(func.count(Transaction.id)))).scalar_one()
    rows = [row(account, n) for n in range(bulk.SMALL + 10)] + [row(account, 1)]
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        async with h.hub.db.transaction() as session:
            await bulk.insert_many_with_ids(
                session,
                TRANSACTIONS,
                rows,
                TRANSACTION_COLUMNS,
                key="dedupe_key",
                scope=("account_id", account.id),
            )
    async with h.hub.db.transaction() as session:
        after = (await session.execute(select(func.count(Transaction.id)))).scalar_one()
    assert after == before


async def test_nothing_to_insert_sends_nothing(harness: Harness) -> None:
    async with harness.hub.db.transaction() as session:
        assert (
            await bulk.insert_many_with_ids(
                session, TRANSACTIONS, [], TRANSACTION_COLUMNS, key="dedupe_key", scope=("id", 0)
            )
            == {}
        )
        await bulk.insert_many(session, CHANGES, [], CHANGE_COLUMNS)


async def test_the_change_log_is_made_by_the_database_in_the_ids_order(harness: Harness) -> None:
    """``insert_per_id``: one row per id, in the given order, constants converted by type."""
    h = harness
    account = await an_account(h)
    ids = [90_003, 90_001, 90_002, *range(91_000, 91_000 + bulk.SMALL + 5)]
    at = datetime(2026, 3, 1, 10, 0, tzinfo=BERLIN)
    async with h.hub.db.transaction() as session:
        newest = (await session.execute(select(func.max(TransactionChange.id)))).scalar() or 0
        constants = {
            "app_id": account.app_id,
            "account_id": account.id,
            "kind": "added",
            "changed_at": at,
        }
        await bulk.insert_per_id(session, CHANGES, "transaction_id", ids, constants)
        await bulk.insert_per_id(session, CHANGES, "transaction_id", [], constants)
    async with h.hub.db.transaction() as session:
        logged = (
            await session.execute(
                select(TransactionChange)
                .where(TransactionChange.id > newest)
                .order_by(TransactionChange.id)
            )
        ).scalars()
        rows = list(logged)
    assert [r.transaction_id for r in rows] == ids
    assert {(r.app_id, r.account_id, r.kind) for r in rows} == {
        (account.app_id, account.id, "added")
    }
    assert {r.changed_at for r in rows} == {at.astimezone(UTC)}
    assert all(r.changed_at.tzinfo is not None for r in rows)


async def test_encoded_rows_get_their_ids_in_order_without_being_read_back(
    harness: Harness,
) -> None:
    """The ids of a batch come back in the rows' order and name the rows stored under them, also
    when the newest row was deleted before (SQLite's ``AUTOINCREMENT`` never hands its id out
    again); on SQLite they are counted from the table's sequence, not read back by key."""
    h = harness
    account = await an_account(h)
    async with h.hub.db.transaction() as session:
        doomed = await bulk.insert_many_with_ids(
            session, TRANSACTIONS, [row(account, 999)], TRANSACTION_COLUMNS,
            key="dedupe_key", scope=("account_id", account.id),
        )  # fmt: skip
        await session.execute(TRANSACTIONS.delete().where(Transaction.id == doomed["b:bulk-999"]))
    rows = [row(account, n) for n in range(120)]
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        sent.append(sql)

    engine = h.hub.db.engine.sync_engine
    async with h.hub.db.transaction() as session:
        dialect = (await session.connection()).dialect
        values = bulk.encoder(TRANSACTIONS, TRANSACTION_COLUMNS, dialect)(rows)
        event.listen(engine, "before_cursor_execute", note)
        try:
            ids = await bulk.insert_encoded_with_ids(
                session, TRANSACTIONS, TRANSACTION_COLUMNS, values,
                [r["dedupe_key"] for r in rows], key="dedupe_key",
                scope=("account_id", account.id),
            )  # fmt: skip
        finally:
            event.remove(engine, "before_cursor_execute", note)
    assert len(set(ids)) == len(rows)
    assert min(ids) > doomed["b:bulk-999"]
    async with h.hub.db.transaction() as session:
        stored = dict(
            (
                await session.execute(
                    select(Transaction.id, Transaction.dedupe_key).where(Transaction.id.in_(ids))
                )
            )
            .tuples()
            .all()
        )
    assert [stored[i] for i in ids] == [r["dedupe_key"] for r in rows]
    if dialect.name == "sqlite":
        assert not [sql for sql in sent if "dedupe_key" in sql and sql.startswith("SELECT")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_one_step_on_sqlite_stores_exactly_what_executemany_stores(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-step insert (multi-row statements, each run in one step) stores each value with
    the same SQLite type and bytes as ``executemany`` — text with quotes, backslashes, a NUL,
    non-ASCII and emoji, NULLs, integers, dates, timestamps, the largest amount — and keeps the
    rows' order for their counted ids across several statements."""
    h = harness
    account = await an_account(h)
    monkeypatch.setattr(bulk, "STEP_ROWS", 40)  # several statements for one call
    odd = ["plain", "quote ' and \" here", "back\\slash \\u0000 written out", "ü « » 🦀 \u2028"]

    def rows(tag: str, n: int, nul: bool) -> list[dict[str, Any]]:
        made = [
            row(account, i, dedupe_key=f"b:{tag}-{i}", details_enc=f"{odd[i % 4]} {i}")
            for i in range(n)
        ]
        if nul:
            made[-1]["details_enc"] = "before\x00after"
        return made

    stored: dict[str, list[tuple[Any, ...]]] = {}
    for one_step in (False, True):
        for nul in (False, True):
            tag = f"{one_step}-{nul}"
            batch = rows(tag, 101, nul)
            async with h.hub.db.transaction() as session:
                dialect = (await session.connection()).dialect
                values = bulk.encoder(TRANSACTIONS, TRANSACTION_COLUMNS, dialect)(batch)
                ids = await bulk.insert_encoded_with_ids(
                    session, TRANSACTIONS, TRANSACTION_COLUMNS, values,
                    [r["dedupe_key"] for r in batch], key="dedupe_key",
                    scope=("account_id", account.id), one_step=one_step,
                )  # fmt: skip
            columns = [c for c in TRANSACTION_COLUMNS if c != "dedupe_key"]
            picked = ", ".join(f"typeof({c}), hex(CAST({c} AS BLOB))" for c in columns)
            async with h.hub.db.transaction() as session:
                sql = f"SELECT id, dedupe_key, {picked} FROM transactions"  # noqa: S608 - our own columns
                mine = text(f"{sql} WHERE dedupe_key LIKE :tag ORDER BY id")
                found = await session.execute(mine.bindparams(tag=f"b:{tag}-%"))
                got = [tuple(r) for r in found]
            assert [r[0] for r in got] == ids
            assert [r[1] for r in got] == [r["dedupe_key"] for r in batch]
            stored[tag] = [r[2:] for r in got]
    assert stored["True-False"] == stored["False-False"]
    assert stored["True-True"] == stored["False-True"]
    details_hex = 2 * columns.index("details_enc") + 1
    assert bytes.fromhex(stored["True-True"][-1][details_hex]).decode() == "before\x00after"


async def test_sqlite_shortens_the_switch_interval_and_postgresql_leaves_it(
    tmp_path: Path,
) -> None:
    """A process that writes SQLite through aiosqlite's threads gets the GIL switched every
    millisecond (the one-step batch writes beside the next batch's preparing, db/engine.py);
    a PostgreSQL process keeps Python's default, and a shorter interval set before is kept."""
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        postgres = Database("postgresql+asyncpg://bankhub@127.0.0.1:1/bankhub")
        await postgres.dispose()
        assert sys.getswitchinterval() == pytest.approx(0.005)
        sqlite = Database(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
        await sqlite.dispose()
        assert sys.getswitchinterval() == pytest.approx(SQLITE_SWITCH_INTERVAL)
        sys.setswitchinterval(0.0002)
        again = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
        await again.dispose()
        assert sys.getswitchinterval() == pytest.approx(0.0002)
    finally:
        sys.setswitchinterval(before)
