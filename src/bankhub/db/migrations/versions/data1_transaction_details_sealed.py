"""transactions' details and accounts' bank ids sealed under the data keyring

Revision ID: data1
Revises: dash2

New rows keep ``original_id``, ``description``, ``merchant`` and ``meta`` in one envelope,
``transactions.details_enc``, and an account's bank id in ``accounts.bank_id_enc``; the plain
columns become nullable and stay only for rows stored before. A migration cannot seal those (the
data keys are opened by a key-encryption key it does not hold): ``bankhub keys rewrap`` does, the
runner's sweep does a batch at a time, and a sync seals the rows it reads (docs/security.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "data1"
down_revision: str | None = "dash2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details_enc", sa.Text(), nullable=True))
        batch_op.alter_column("original_id", existing_type=sa.String(length=200), nullable=True)
        batch_op.alter_column("description", existing_type=sa.Text(), nullable=True)
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bank_id_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    # The plain columns cannot be filled again from here (no keys): refuse rather than lose them.
    sealed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM transactions WHERE details_enc IS NOT NULL")
    )
    if sealed.scalar():
        raise RuntimeError("transactions hold sealed details; data1 cannot be downgraded")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("bank_id_enc")
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.alter_column("description", existing_type=sa.Text(), nullable=False)
        batch_op.alter_column("original_id", existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column("details_enc")
