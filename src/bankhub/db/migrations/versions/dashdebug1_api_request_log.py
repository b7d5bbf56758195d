"""the apps' API request log: one row per partner API call, kept for a set number of days

Revision ID: dashdebug1
Revises: dashapps1

On PostgreSQL the new table joins the tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "dashdebug1"
down_revision: str | None = "dashapps1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("latency_us", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("error_code", sa.String(length=40), nullable=True),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_api_requests_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_requests")),
    )
    op.create_index("ix_api_requests_app_id_id", "api_requests", ["app_id", "id"], unique=False)
    op.create_index(
        "ix_api_requests_app_id_request_id", "api_requests", ["app_id", "request_id"], unique=False
    )
    op.create_index(op.f("ix_api_requests_at"), "api_requests", ["at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("api_requests"):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("api_requests")
