"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.db.models import Base
from bankhub.security import authcache


async def test_migrations_match_the_models(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await db.dispose()


async def test_upgrading_twice_is_harmless(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    await asyncio.to_thread(migrate.upgrade, database_url)

    def revision(connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(connection).get_current_heads())

    db = Database(database_url)
    try:
        async with db.engine.connect() as connection:
            assert await connection.run_sync(revision) == migrate.current_heads()
    finally:
        await db.dispose()
    assert len(migrate.current_heads()) == 1  # one line of history, no forks


async def test_at_head_the_authentication_caches_triggers_exist(database_url: str) -> None:
    """A later SQLite batch migration rebuilds its table and drops the table's triggers; the
    authentication cache would then switch itself off at start-up (read through, slower, and
    silent but for a warning). A migration that rebuilds ``apps``, ``api_keys``,
    ``signature_keys``, ``logins`` or ``oauth_token_families`` must create their ``authcache1``
    (``perf1``) triggers again."""
    await asyncio.to_thread(migrate.upgrade, database_url)
    db = Database(database_url)
    try:
        assert await authcache.AuthCache().verify(db.engine)
    finally:
        await db.dispose()


async def test_cursor_ids_are_never_reused(database_url: str) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import delete, select

    from bankhub.events.models import Event
    from bankhub.partners.models import App

    await asyncio.to_thread(migrate.upgrade, database_url)
    db = Database(database_url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    try:
        async with db.transaction() as session:
            app = App(
                name="a",
                client_id="c",
                created_at=now,
            )
            session.add(app)
            await session.flush()
            for n in range(2):
                session.add(Event(app_id=app.id, type="t", payload={"n": n}, created_at=now))
        async with db.transaction() as session:
            newest = max((await session.execute(select(Event.id))).scalars())
            await session.execute(delete(Event).where(Event.id == newest))
            session.add(Event(app_id=app.id, type="t", payload={"n": 2}, created_at=now))
        async with db.transaction() as session:
            after = max((await session.execute(select(Event.id))).scalars())
        assert after > newest  # a cursor at the deleted id still sees the new event
    finally:
        await db.dispose()


async def old_app(session: Any, now: Any) -> int:
    """An app row as an older schema holds it: only the columns named here and those with a
    default in the model (a newer model's other columns do not exist yet at that revision)."""
    from sqlalchemy import insert

    from bankhub.partners.models import App

    made = await session.execute(
        insert(App).values(name="a", client_id="c", created_at=now).returning(App.id)
    )
    return int(made.scalar_one())


async def test_master_app_keys_are_narrowed_to_write(database_url: str) -> None:
    """edge2: an app key created with master scope before the rule is narrowed to write, with
    an audit entry; service keys keep theirs, and the database refuses a master app key."""
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from bankhub.audit.models import AuditEntry
    from bankhub.db import tenancy
    from bankhub.partners.models import ApiKey

    await asyncio.to_thread(migrate.upgrade, database_url, "connect1")
    db = Database(database_url)
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def key(app_id: int, key_id: str, kind: str, scope: str) -> ApiKey:
        return ApiKey(
            app_id=app_id,
            key_id=key_id,
            secret_hash=key_id.ljust(64, "0"),
            kind=kind,
            scope=scope,
            name=key_id,
            created_at=now,
        )

    try:
        with tenancy.everything():
            async with db.transaction() as session:
                app_id = await old_app(session, now)
                session.add_all(
                    [
                        key(app_id, "key_app_master", "app", "master"),
                        key(app_id, "key_app_write", "app", "write"),
                        key(app_id, "key_service_master", "service", "master"),
                    ]
                )
        await asyncio.to_thread(migrate.upgrade, database_url)
        with tenancy.everything():
            async with db.transaction() as session:
                scopes = dict(
                    (await session.execute(select(ApiKey.key_id, ApiKey.scope))).tuples().all()
                )
                entries = (
                    await session.execute(
                        select(AuditEntry.target_id, AuditEntry.app_id, AuditEntry.detail).where(
                            AuditEntry.action == "key.scope_narrowed"
                        )
                    )
                ).all()
            assert scopes == {
                "key_app_master": "write",
                "key_app_write": "write",
                "key_service_master": "master",
            }
            assert [(e[0], e[1], e[2]["old_scope"]) for e in entries] == [
                ("key_app_master", app_id, "master")
            ]
            with pytest.raises(IntegrityError):
                async with db.transaction() as session:
                    session.add(key(app_id, "key_again", "app", "master"))
    finally:
        await db.dispose()


_made = itertools.count()


def _fill(connection: sqlite3.Connection, table: str, given: dict[str, object]) -> None:
    """Insert one row, ``given`` plus a plain (unique) value for every other required column.
    Table and column names come from the schema itself, never from input."""
    values = dict(given)
    serial = next(_made)
    for _cid, name, kind, notnull, default, pk in connection.execute(f"PRAGMA table_info({table})"):
        if name in values or not notnull or default is not None or pk:
            continue
        kind = kind.upper()
        if "INT" in kind or "BOOL" in kind:
            values[name] = 0
        elif "DATE" in kind or "TIME" in kind:
            values[name] = "2026-11-20 09:00:00"
        elif "JSON" in kind:
            values[name] = "{}"
        else:
            values[name] = f"{table}-{name}-{serial}"
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - schema names
    connection.execute(insert, list(values.values()))


def _counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " AND name != 'alembic_version'"
            )
        ]
        count = "SELECT count(*) FROM {}"  # schema names only
        return {t: connection.execute(count.format(t)).fetchone()[0] for t in tables}


@pytest.mark.parametrize("start", ["0006", "dash2"])
def test_upgrading_an_existing_sqlite_database_keeps_every_row(tmp_path: Path, start: str) -> None:
    """A migration that rebuilds a table (SQLite's batch mode: copy, drop, rename) must not
    cascade the drop into the rows that reference it: rebuilding ``accounts`` once emptied
    ``transactions``. Rows in every kind of table, from an older revision up to the newest."""
    path = tmp_path / "bankhub.sqlite3"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}", start)
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA foreign_keys=ON")
        _fill(connection, "apps", {"id": 1, "client_id": "client"})
        _fill(connection, "customers", {"id": "customer", "app_id": 1})
        _fill(connection, "logins", {"id": 1, "app_id": 1, "customer_id": "customer"})
        _fill(connection, "accounts", {"id": 1, "app_id": 1, "login_id": 1, "balance": "1.00"})
        for n in range(3):
            _fill(
                connection,
                "transactions",
                {"id": n + 1, "app_id": 1, "account_id": 1, "dedupe_key": f"k{n}", "amount": "1"},
            )
            _fill(
                connection,
                "transaction_changes",
                {"app_id": 1, "account_id": 1, "transaction_id": n + 1, "kind": "added"},
            )
        _fill(connection, "events", {"id": 1, "app_id": 1, "login_id": 1})
        _fill(connection, "webhook_endpoints", {"id": "endpoint", "app_id": 1})
        _fill(
            connection,
            "webhook_deliveries",
            {"id": 1, "app_id": 1, "event_id": 1, "endpoint_id": "endpoint"},
        )
        _fill(connection, "api_keys", {"app_id": 1, "key_id": "key", "kind": "service"})
        connection.commit()
    before = _counts(path)
    assert all(before[t] for t in ("transactions", "webhook_deliveries", "api_keys"))
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    after = _counts(path)
    assert {t: after[t] for t in before} == before
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []


def test_ids_partners_keep_are_never_reused_on_sqlite(tmp_path: Path) -> None:
    """A login, account or transaction id names one thing for good: after the newest row is
    deleted (a purge, an erasure), the next row gets a new id, not the deleted one's."""
    path = tmp_path / "bankhub.sqlite3"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        _fill(connection, "apps", {"id": 1, "client_id": "client"})
        _fill(connection, "customers", {"id": "customer", "app_id": 1})
        rows = {
            "logins": {"app_id": 1, "customer_id": "customer"},
            "accounts": {"app_id": 1, "login_id": 1, "balance": "1.00"},
            "transactions": {"app_id": 1, "account_id": 1, "amount": "1"},
        }
        newest_of, delete = "SELECT max(id) FROM {}", "DELETE FROM {} WHERE id = ?"  # schema names
        for table, given in rows.items():
            for _ in range(2):
                _fill(connection, table, given)
            newest = connection.execute(newest_of.format(table)).fetchone()[0]
            connection.execute(delete.format(table), (newest,))
            _fill(connection, table, given)
            assert connection.execute(newest_of.format(table)).fetchone()[0] > newest, table


async def test_endpoints_keep_every_type_and_stored_bodies_name_their_type(
    database_url: str,
) -> None:
    """hooks2a: an endpoint that received every type (no list, stored as JSON null or SQL NULL)
    gets the five types written out, so nothing changes for it; one with its own list keeps it.
    Every stored event body gains ``event_type`` after the seed's keys, in their order."""
    from datetime import UTC, datetime

    from sqlalchemy import column as col
    from sqlalchemy import insert, select, table

    from bankhub.events.models import Event
    from bankhub.webhooks.models import WebhookEndpoint

    await asyncio.to_thread(migrate.upgrade, database_url, "ids1")
    db = Database(database_url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    seed = {"login_id": 21000, "timestamp": 1467331200000, "accounts": [{"id": 19316}]}
    seed |= {"new": 1, "referenceId": "hsSU83HnX"}
    names = ("id", "app_id", "url", "events", "secret_enc", "created_at", "updated_at")
    old_endpoints = table("webhook_endpoints", *(col(name) for name in names))
    try:
        async with db.transaction() as session:
            app_id = await old_app(session, now)
            rows: list[dict[str, Any]] = [
                {"id": "json-null", "events": "null"},
                {"id": "sql-null", "events": None},
                {"id": "chosen", "events": '["login.status"]'},
            ]
            for row in rows:
                await session.execute(
                    insert(old_endpoints).values(
                        app_id=app_id,
                        url="https://h.example/",
                        secret_enc="x",
                        created_at=now,
                        updated_at=now,
                        **row,
                    )
                )
            session.add(Event(app_id=app_id, type="transactions.new", payload=seed, created_at=now))
            session.add(
                Event(
                    app_id=app_id,
                    type="login.status",
                    payload={"status": "login_success", "login_id": 21000},
                    created_at=now,
                )
            )
        await asyncio.to_thread(migrate.upgrade, database_url)
        async with db.transaction() as session:
            kinds = dict(
                (await session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events)))
                .tuples()
                .all()
            )
            bodies = list(
                (await session.execute(select(Event.payload).order_by(Event.id))).scalars()
            )
        every = ["transactions.new", "login.status", "sync.failed"]
        every += ["consent.expiring", "login.deleted"]
        assert kinds == {"json-null": every, "sql-null": every, "chosen": ["login.status"]}
        assert list(bodies[0]) == [*seed, "event_type"]
        assert bodies[0] == {**seed, "event_type": "transactions.new"}
        assert bodies[1] == {
            "status": "login_success",
            "login_id": 21000,
            "event_type": "login.status",
        }
    finally:
        await db.dispose()
