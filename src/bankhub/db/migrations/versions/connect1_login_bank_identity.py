"""the bank identity a login belongs to

Revision ID: connect1
Revises: stmts1
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "connect1"
down_revision: str | None = "stmts1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Logins made before have none: their reconnects are proved by their accounts instead.
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_identity", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("logins", schema=None) as batch_op:
        batch_op.drop_column("bank_identity")
