"""idempotency keys: the first answer to each app's Idempotency-Key, sealed, for 24 hours

Revision ID: idem1
Revises: rls1

On PostgreSQL the table joins the tenant tables of ``rls1`` (S14): an app's rows only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "idem1"
down_revision: str | None = "rls1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("lease_until", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_enc", sa.Text(), nullable=True),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_idempotency_keys_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_keys")),
        sa.UniqueConstraint("app_id", "key", name=op.f("uq_idempotency_keys_app_id_key")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        for statement in tenancy.tenant_table_sql("idempotency_keys"):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_expires_at"))
    op.drop_table("idempotency_keys")
