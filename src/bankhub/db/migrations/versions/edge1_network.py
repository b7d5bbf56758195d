"""edge protections: IP allow-list and frame origins per app, blocked addresses

Revision ID: edge1
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "edge1"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ip_allowlist", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("frame_origins", sa.JSON(), nullable=True))
    op.create_table(
        "blocked_addresses",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("blocked_until", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_blocked_addresses")),
    )


def downgrade() -> None:
    op.drop_table("blocked_addresses")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("frame_origins")
        batch_op.drop_column("ip_allowlist")
