"""Cursor ids are never reused on SQLite; an index for the retention purge

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CURSOR_TABLES = ("events", "transaction_changes")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite reuses the rowid of a deleted newest row unless the table is AUTOINCREMENT;
        # a partner's cursor pointing at such an id would skip the row that reused it.
        for table in CURSOR_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
            ):
                pass
    op.create_index("ix_transactions_app_fetched", "transactions", ["app_id", "fetched_at"])


def downgrade() -> None:
    op.drop_index("ix_transactions_app_fetched", table_name="transactions")
    if op.get_bind().dialect.name == "sqlite":
        for table in CURSOR_TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
            ):
                pass
