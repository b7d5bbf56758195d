"""audit log: 64-bit ids on PostgreSQL, indexes for the purge and request-id look-ups

Revision ID: aud1
Revises: use1
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "aud1"
down_revision: str | None = "use1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # every read of account data adds a row: 32-bit ids would run out
        op.alter_column("audit_log", "id", type_=sa.BigInteger(), existing_type=sa.Integer())
        op.execute("ALTER SEQUENCE IF EXISTS audit_log_id_seq AS bigint")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_log_request_id", ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_request_id")
        batch_op.drop_index("ix_audit_log_at")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS audit_log_id_seq AS integer")
        op.alter_column("audit_log", "id", type_=sa.Integer(), existing_type=sa.BigInteger())
