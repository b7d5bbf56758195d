"""logins.bank_retry_at: the time a bank that refused more requests (HTTP 429, ACCESS_EXCEEDED)
asked not to be called before

Revision ID: sca1
Revises: jobs21

Neither the scheduler nor a partner's manual refresh calls the bank again before it; the seed's
``next_refresh_possible_at`` says it. A column of an existing tenant table: the table's
row-level security policy already covers it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "sca1"
down_revision: str | None = "jobs21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bank_retry_at", bankhub.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.drop_column("bank_retry_at")
