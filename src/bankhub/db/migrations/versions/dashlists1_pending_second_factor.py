"""dashboard lists and team: a member's new authenticator seed while it awaits its first code

Revision ID: dashlists1
Revises: authcache1

A member who lost their authenticator signs in with a recovery code and sets up a new one. The
new seed waits in ``members.totp_pending_enc`` until a code from the new app confirms it; until
then the old seed keeps working, so an abandoned reset leaves sign-in as it was.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "dashlists1"
down_revision: str | None = "authcache1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("totp_pending_enc", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("totp_pending_enc")
