"""apps: the app's own categorization rules

Revision ID: csvcat1
Revises: gcl1

A JSON list of ``{"category", "keyword", "sign"}`` on the app's row (``PUT
/v2/app/category-rules``); null for an app that has none. The apps table already sits behind
the credential-lookup policy of ``rls1``, so nothing new is guarded here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "csvcat1"
down_revision: str | None = "gcl1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("category_rules", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("category_rules")
