"""the bank feed: statement imports and first syncs are runs too

Revision ID: dashfeed1
Revises: dashdebug1

``sync_runs`` recorded refreshes only. The dashboard's Bank Feed lists every run that brought
rows in (a connect's first sync, a refresh, a statement file over the API, the CLI or the SFTP
drop), so a run now says which connector ran, how many rows it found already stored
(``skipped``), the file's name, and, for a file refused before it reached a login, the customer
it was meant for (``login_id`` is then empty; erasing the customer erases the row, as erasing a
login erases its runs). The composite index serves the feed's newest-first pages per app.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dashfeed1"
down_revision: str | None = "dashdebug1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.alter_column("login_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("connector", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("skipped", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("file_name", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("customer_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_sync_runs_customer_id_customers"),
            "customers",
            ["customer_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_sync_runs_customer_id"), ["customer_id"])
        batch_op.create_index("ix_sync_runs_app_feed", ["app_id", "id"])


def downgrade() -> None:
    op.execute("DELETE FROM sync_runs WHERE login_id IS NULL")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_runs_app_feed")
        batch_op.drop_index(batch_op.f("ix_sync_runs_customer_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_sync_runs_customer_id_customers"), type_="foreignkey"
        )
        batch_op.drop_column("customer_id")
        batch_op.drop_column("file_name")
        batch_op.drop_column("skipped")
        batch_op.drop_column("connector")
        batch_op.alter_column("login_id", existing_type=sa.Integer(), nullable=False)
