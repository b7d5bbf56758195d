"""balances only where a source states one, with the day they are stated for

Revision ID: stmts1
Revises: data1

A statement file without a closing balance leaves the account's balance empty (NULL) instead of
a made-up figure, and ``balance_date`` keeps the closing date of the statement that stated the
stored balance, so that an older file never moves it back.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "stmts1"
down_revision: str | None = "data1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.alter_column(
            "balance", existing_type=bankhub.db.types.Money(length=40), nullable=True
        )
        batch_op.add_column(sa.Column("balance_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("balance_date")
    # An account without a stated balance had 0 before there was a way to say "none".
    if op.get_bind().dialect.name == "postgresql":  # every app's rows (forced row security)
        op.execute(sa.text("SELECT set_config('bankhub.scope', 'all', true)"))
    op.execute(sa.text("UPDATE accounts SET balance = '0' WHERE balance IS NULL"))
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.alter_column(
            "balance", existing_type=bankhub.db.types.Money(length=40), nullable=False
        )
