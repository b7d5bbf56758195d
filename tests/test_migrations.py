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
