"""dashboard part 2: connect-page branding per app, sandbox/live mode, members' known browsers

Revision ID: dash2
Revises: aud1

``app_templates`` holds an app's data, so on PostgreSQL it joins the tenant tables of ``rls1``
(S14): an app's rows only, or every row in the operator's scope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "dash2"
down_revision: str | None = "aud1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = bankhub.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "app_templates",
        sa.Column("app_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("display_name", sa.String(length=60), nullable=True),
        sa.Column("welcome_text", sa.Text(), nullable=True),
        sa.Column("footer_text", sa.Text(), nullable=True),
        sa.Column("color_primary", sa.String(length=7), nullable=True),
        sa.Column("color_secondary", sa.String(length=7), nullable=True),
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_type", sa.String(length=20), nullable=True),
        sa.Column("logo_hash", sa.String(length=64), nullable=True),
        sa.Column("logo_width", sa.Integer(), nullable=True),
        sa.Column("logo_height", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=260), nullable=False),
        sa.Column("updated_at", UTC(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_app_templates_app_id_apps"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_app_templates")),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=8), server_default="both", nullable=False)
        )
        batch_op.add_column(sa.Column("mode_set_by", sa.String(length=260), nullable=True))
        batch_op.add_column(sa.Column("mode_set_at", UTC(timezone=True), nullable=True))
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("known_devices", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for statement in tenancy.tenant_table_sql("app_templates"):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("known_devices")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("mode_set_at")
        batch_op.drop_column("mode_set_by")
        batch_op.drop_column("mode")
    op.drop_table("app_templates")
