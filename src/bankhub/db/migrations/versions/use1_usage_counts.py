"""usage counts: API calls and connect outcomes per app and UTC hour

Revision ID: use1
Revises: dash1

On PostgreSQL the table joins the tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "use1"
down_revision: str | None = "dash1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_counts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=True),
        sa.Column("app_key", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=16), nullable=False),
        sa.Column("hour", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=32), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_usage_counts_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_counts")),
        sa.UniqueConstraint(
            "app_key",
            "metric",
            "hour",
            "outcome",
            "detail",
            name=op.f("uq_usage_counts_app_key_metric_hour_outcome_detail"),
        ),
    )
    op.create_index(op.f("ix_usage_counts_app_id"), "usage_counts", ["app_id"], unique=False)
    op.create_index(op.f("ix_usage_counts_hour"), "usage_counts", ["hour"], unique=False)
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("usage_counts"):
            op.execute(statement)


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_counts_hour"), table_name="usage_counts")
    op.drop_index(op.f("ix_usage_counts_app_id"), table_name="usage_counts")
    op.drop_table("usage_counts")
