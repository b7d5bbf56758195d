"""payments: the connect token with which the account holder authorises a cancellation

Revision ID: xcancel1
Revises: pay1

A bank may cancel a payment only once the account holder authorises it; the connect link for
that is a connect token of its own (the payment's first one was used to authorise it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "xcancel1"
down_revision: str | None = "pay1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_token_id", sa.String(length=36), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_cancel_token_id"), ["cancel_token_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_payments_cancel_token_id"), type_="unique")
        batch_op.drop_column("cancel_token_id")
