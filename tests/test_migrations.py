"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.db.models import Base


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


async def test_master_app_keys_are_narrowed_to_write(database_url: str) -> None:
    """edge2: an app key created with master scope before the rule is narrowed to write, with
    an audit entry; service keys keep theirs, and the database refuses a master app key."""
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from bankhub.audit.models import AuditEntry
    from bankhub.db import tenancy
    from bankhub.partners.models import ApiKey, App

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
                app = App(name="a", client_id="c", created_at=now)
                session.add(app)
                await session.flush()
                session.add_all(
                    [
                        key(app.id, "key_app_master", "app", "master"),
                        key(app.id, "key_app_write", "app", "write"),
                        key(app.id, "key_service_master", "service", "master"),
                    ]
                )
        await asyncio.to_thread(migrate.upgrade, database_url)
        with tenancy.everything():
            async with db.transaction() as session:
                scopes = dict((await session.execute(select(ApiKey.key_id, ApiKey.scope))).all())
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
                ("key_app_master", app.id, "master")
            ]
            with pytest.raises(IntegrityError):
                async with db.transaction() as session:
                    session.add(key(app.id, "key_again", "app", "master"))
    finally:
        await db.dispose()


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
    from bankhub.partners.models import App
    from bankhub.webhooks.models import WebhookEndpoint

    await asyncio.to_thread(migrate.upgrade, database_url, "edge2")
    db = Database(database_url)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    seed = {"login_id": 21000, "timestamp": 1467331200000, "accounts": [{"id": 19316}]}
    seed |= {"new": 1, "referenceId": "hsSU83HnX"}
    names = ("id", "app_id", "url", "events", "secret_enc", "created_at", "updated_at")
    old_endpoints = table("webhook_endpoints", *(col(name) for name in names))
    try:
        async with db.transaction() as session:
            app = App(name="a", client_id="c", created_at=now)
            session.add(app)
            await session.flush()
            rows: list[dict[str, Any]] = [
                {"id": "json-null", "events": "null"},
                {"id": "sql-null", "events": None},
                {"id": "chosen", "events": '["login.status"]'},
            ]
            for row in rows:
                await session.execute(
                    insert(old_endpoints).values(
                        app_id=app.id,
                        url="https://h.example/",
                        secret_enc="x",
                        created_at=now,
                        updated_at=now,
                        **row,
                    )
                )
            session.add(Event(app_id=app.id, type="transactions.new", payload=seed, created_at=now))
            session.add(
                Event(
                    app_id=app.id,
                    type="login.status",
                    payload={"status": "login_success", "login_id": 21000},
                    created_at=now,
                )
            )
        await asyncio.to_thread(migrate.upgrade, database_url)
        async with db.transaction() as session:
            kinds = dict(
                (await session.execute(select(WebhookEndpoint.id, WebhookEndpoint.events))).all()
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
