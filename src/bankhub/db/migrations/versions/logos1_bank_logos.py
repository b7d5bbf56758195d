"""imported banks' logos: bank_logos

Revision ID: logos1
Revises: csvcat1

Each imported bank's logo as bankhub serves it from its own origin (``bankhub.banks.logos``):
the PNG it re-encoded, its hash, when it was fetched and why the last fetch was refused. Banks
are the operator's catalogue, read by every app, not an app's rows: like ``banks`` the table has
no ``app_id`` and nothing for row-level security to guard.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "logos1"
down_revision: str | None = "csvcat1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_logos",
        sa.Column("bank_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("fetched_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checked_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["bank_id"],
            ["banks.id"],
            name=op.f("fk_bank_logos_bank_id_banks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bank_id", name=op.f("pk_bank_logos")),
    )


def downgrade() -> None:
    op.drop_table("bank_logos")
