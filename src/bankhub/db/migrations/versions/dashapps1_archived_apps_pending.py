"""apps can be archived; a member's session holds one-time secrets and waiting form posts

Revision ID: dashapps1
Revises: dashlists1

``apps.archived_at`` and ``archived_by``: an archived app's keys and tokens are refused. Added
with ``ALTER TABLE … ADD COLUMN`` (batch mode adds a column without rebuilding the table on
SQLite), so the authentication cache's triggers on ``apps`` stay; ``tests/test_migrations.py``
checks they are there at head.

``member_pending`` (``bankhub.dashboard.pending``): not a tenant table, like the sessions its
rows belong to (they go with them); its payload is encrypted under the data keyring.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from bankhub.db.types import UTCDateTime as UTC

revision: str = "dashapps1"
down_revision: str | None = "dashlists1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", UTC(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("archived_by", sa.String(length=260), nullable=True))
    op.create_table(
        "member_pending",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handle", sa.String(length=43), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("payload_enc", sa.Text(), nullable=True),
        sa.Column("created_at", UTC(timezone=True), nullable=False),
        sa.Column("expires_at", UTC(timezone=True), nullable=False),
        sa.Column("used_at", UTC(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["member_sessions.id"],
            name=op.f("fk_member_pending_session_id_member_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_pending")),
        sa.UniqueConstraint("handle", name=op.f("uq_member_pending_handle")),
    )
    op.create_index(
        op.f("ix_member_pending_session_id"), "member_pending", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_member_pending_session_id"), table_name="member_pending")
    op.drop_table("member_pending")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("archived_by")
        batch_op.drop_column("archived_at")
    if op.get_bind().dialect.name == "sqlite":
        # dropping a column rebuilds the table on SQLite, and its triggers (``authcache1``)
        # went with it
        bump = "BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END"
        for name, event in (("insert", "INSERT"), ("update", "UPDATE"), ("delete", "DELETE")):
            op.execute(f"DROP TRIGGER IF EXISTS auth_version_apps_{name}")
            op.execute(f"CREATE TRIGGER auth_version_apps_{name} AFTER {event} ON apps {bump}")
