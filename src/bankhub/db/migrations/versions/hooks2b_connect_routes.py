"""where each connect session lives: connect_routes

Revision ID: hooks2b
Revises: hooks2a

A connect session stays in the memory of the API process that opened it; this table lets any
other process find that one (keyed hashes of the session's cookie and redirect state, the
owner's id and internal URL; no credential). It holds no app's data of its own (no ``app_id``:
it is read before anyone is authenticated, like a lookup), so row-level security has nothing
to guard here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "hooks2b"
down_revision: str | None = "hooks2a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "connect_routes",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("token_id", sa.String(length=36), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("owner_url", sa.Text(), nullable=True),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("session_hash", name=op.f("pk_connect_routes")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_connect_routes_state_hash")),
    )
    with op.batch_alter_table("connect_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_connect_routes_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("connect_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connect_routes_expires_at"))
    op.drop_table("connect_routes")
