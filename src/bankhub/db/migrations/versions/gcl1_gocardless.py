"""GoCardless Bank Account Data: gocardless_settings, logins.not_before

Revision ID: gcl1
Revises: jobs21

The installation's access to GoCardless (the operator's secrets and the provider's token pair,
encrypted under the keyring) is the operator's, not an app's: one row, no ``app_id``, nothing
for row-level security to guard. ``logins.not_before`` is the earliest moment the bank (the
provider's per-account daily limit) lets a login be read again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "gcl1"
down_revision: str | None = "jobs21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gocardless_settings",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("secret_id_enc", sa.Text(), nullable=True),
        sa.Column("secret_key_enc", sa.Text(), nullable=True),
        sa.Column("access_enc", sa.Text(), nullable=True),
        sa.Column("access_expires_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("refresh_enc", sa.Text(), nullable=True),
        sa.Column("refresh_expires_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("token_version", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "institutions_due_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gocardless_settings")),
    )
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("not_before", bankhub.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.drop_column("not_before")
    op.drop_table("gocardless_settings")
