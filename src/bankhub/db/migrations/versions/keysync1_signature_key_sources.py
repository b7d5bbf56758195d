"""signature key sources: URLs that serve an app's public keys, synced by the runner

Revision ID: keysync1
Revises: sig1

On PostgreSQL the new table joins the tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "keysync1"
down_revision: str | None = "sig1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = bankhub.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "signature_key_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=290), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("due_at", when, nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("last_attempt_at", when, nullable=True),
        sa.Column("last_good_at", when, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failing_since", when, nullable=True),
        sa.Column("expired_at", when, nullable=True),
        sa.Column("skipped", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_signature_key_sources_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_key_sources")),
        sa.UniqueConstraint("public_id", name=op.f("uq_signature_key_sources_public_id")),
    )
    op.create_index(
        op.f("ix_signature_key_sources_app_id"), "signature_key_sources", ["app_id"], unique=False
    )
    op.create_index(
        op.f("ix_signature_key_sources_due_at"), "signature_key_sources", ["due_at"], unique=False
    )
    with op.batch_alter_table("signature_keys") as batch:
        batch.add_column(sa.Column("source_id", sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("signature_key_sources"):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("signature_keys") as batch:
        batch.drop_column("source_id")
    op.drop_table("signature_key_sources")
