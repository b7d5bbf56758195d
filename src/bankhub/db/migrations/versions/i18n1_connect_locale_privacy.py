"""i18n: the connect token's locale, and each app's privacy link and data notice

Revision ID: i18n1
Revises: sftp1

Two nullable columns on tables that exist already: no row changes, and the tables keep the
row-level security they have (``rls1``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i18n1"
down_revision: str | None = "sftp1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("connect_tokens") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
    with op.batch_alter_table("app_templates") as batch:
        batch.add_column(sa.Column("privacy_url", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("data_notice", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("app_templates") as batch:
        batch.drop_column("data_notice")
        batch.drop_column("privacy_url")
    with op.batch_alter_table("connect_tokens") as batch:
        batch.drop_column("locale")
