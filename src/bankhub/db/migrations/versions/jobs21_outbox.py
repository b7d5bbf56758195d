"""the outbox: one-off work a change causes, sent by the runner after commit

Revision ID: jobs21
Revises: registry1

Mails to the team (sign-in alerts, consent notices) are queued here in the unit of work of the
change that causes them and sent by the runner, leased like webhook deliveries
(``bankhub.jobs.outbox``). The rows are not tenant data: they go to dashboard members, who serve
every app, and a consent summary spans apps; like ``members`` and ``smtp_settings`` the table has
no ``app_id``, so row-level security has nothing to guard here. The runtime role gets its rights
through the default privileges ``bankhub db create-app-role`` set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "jobs21"
down_revision: str | None = "registry1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
    op.drop_table("outbox")
