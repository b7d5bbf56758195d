"""sftp files: what an app's SFTP inbox holds (the outcome of each dropped file)

Revision ID: sftp1
Revises: keysync1

On PostgreSQL the table joins the tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "sftp1"
down_revision: str | None = "keysync1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sftp_files",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("imported", sa.Boolean(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_sftp_files_app_id_apps"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_sftp_files_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sftp_files")),
        sa.UniqueConstraint(
            "app_id", "customer_id", "name", name=op.f("uq_sftp_files_app_id_customer_id_name")
        ),
    )
    op.create_index(op.f("ix_sftp_files_app_id"), "sftp_files", ["app_id"], unique=False)
    op.create_index(op.f("ix_sftp_files_customer_id"), "sftp_files", ["customer_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("sftp_files"):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("sftp_files")
