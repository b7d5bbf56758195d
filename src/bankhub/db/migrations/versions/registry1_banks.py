"""imported banks: banks

Revision ID: registry1
Revises: hooks2b

Institutions imported from a registry file (``bankhub banks import``). The catalogue is the
operator's, not an app's: the table has no ``app_id``, so row-level security has nothing to
guard. Its version counter is the ``catalogue_version`` row of ``system_flags``, made by the
first import.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "registry1"
down_revision: str | None = "hooks2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("blz", sa.String(length=20), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("connector", sa.String(length=40), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("logo_url", sa.Text(), nullable=True),
        sa.Column("color_primary", sa.String(length=6), nullable=False),
        sa.Column("color_secondary", sa.String(length=6), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_banks")),
        sa.UniqueConstraint("key", name=op.f("uq_banks_key")),
    )
    with op.batch_alter_table("banks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_banks_bic"), ["bic"], unique=False)
        batch_op.create_index(batch_op.f("ix_banks_name"), ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("banks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_banks_name"))
        batch_op.drop_index(batch_op.f("ix_banks_bic"))
    op.drop_table("banks")
