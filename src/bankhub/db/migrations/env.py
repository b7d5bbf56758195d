"""Alembic environment: runs against the URL handed over by :func:`bankhub.db.migrate.upgrade`."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bankhub.db.engine import make_engine
from bankhub.db.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if connection.dialect.name == "postgresql":
        # S14: the row-level security policies bind the tables' owner too (FORCE); a migration
        # works on every app's rows.
        connection.exec_driver_sql("select set_config('bankhub.scope', 'all', false)")
    if sqlite:
        # A batch migration rebuilds a table: copy, DROP, rename. With foreign keys enforced,
        # SQLite's DROP deletes the rows that reference the table first (ON DELETE CASCADE):
        # rebuilding ``accounts`` would empty ``transactions``. Off while migrating (the pragma
        # is a no-op inside a transaction, so before it begins), checked and back on after.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows that reference nothing: {broken[:5]}")
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")


async def _run_async() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
