"""Ids partners keep (logins, accounts, transactions) are never reused on SQLite

Revision ID: ids1
Revises: edge2

SQLite hands the rowid of a deleted newest row to the next insert unless the table is
AUTOINCREMENT. A login, account or transaction id is what a partner stores and later asks for:
after a purge or an erasure removed the newest rows, the same id would name another person's
login or another booking (the change log would report "removed 12" and then "added 12" for a
different transaction). PostgreSQL's sequences never go back, so only SQLite changes.

The rebuild runs with foreign keys off (``migrations/env.py``), so rebuilding ``accounts`` does
not cascade into ``transactions``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "ids1"
down_revision: str | None = "edge2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTNER_ID_TABLES = ("logins", "accounts", "transactions")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in PARTNER_ID_TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
