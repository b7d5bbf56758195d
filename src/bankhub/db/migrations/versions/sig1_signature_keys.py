"""signature keys: the public keys an app signs its API requests with (RFC 9421)

Revision ID: sig1
Revises: xcancel1

On PostgreSQL the table joins the tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "sig1"
down_revision: str | None = "xcancel1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = bankhub.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "signature_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=False),
        sa.Column("created_at", when, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", when, nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_signature_keys_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_keys")),
        sa.UniqueConstraint("public_id", name=op.f("uq_signature_keys_public_id")),
    )
    op.create_index(op.f("ix_signature_keys_app_id"), "signature_keys", ["app_id"], unique=False)
    op.create_index(
        "ix_signature_keys_app_active", "signature_keys", ["app_id", "revoked_at"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("signature_keys"):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("signature_keys")
