"""payments: single credit transfers and batches, their transfers, status history, settings

Revision ID: pay1
Revises: logos1

Creditor details and amounts are sealed (``details_enc``); on PostgreSQL every table joins the
tenant tables of ``rls1`` (S14).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bankhub.db.types
from bankhub.db import tenancy

revision: str = "pay1"
down_revision: str | None = "logos1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("payments", "payment_items", "payment_status_changes", "payment_settings")


def _app_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["app_id"], ["apps.id"], name=op.f(f"fk_{table}_app_id_apps"), ondelete="CASCADE"
    )


def upgrade() -> None:
    when = bankhub.db.types.UTCDateTime(timezone=True)
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("token_id", sa.String(length=36), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("execution_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("sent_at", when, nullable=True),
        sa.Column("bank_payment_id", sa.String(length=100), nullable=True),
        sa.Column("details_enc", sa.Text(), nullable=False),
        sa.Column("connector_state_enc", sa.Text(), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        _app_fk("payments"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_payments_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_payments_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("token_id", name=op.f("uq_payments_token_id")),
    )
    op.create_index(op.f("ix_payments_app_id"), "payments", ["app_id"], unique=False)
    op.create_index(op.f("ix_payments_customer_id"), "payments", ["customer_id"], unique=False)
    op.create_index("ix_payments_app_created", "payments", ["app_id", "created_at"], unique=False)
    op.create_index("ix_payments_open", "payments", ["status", "updated_at"], unique=False)

    op.create_table(
        "payment_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("details_enc", sa.Text(), nullable=False),
        _app_fk("payment_items"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_items_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_items")),
        sa.UniqueConstraint(
            "payment_id", "position", name=op.f("uq_payment_items_payment_id_position")
        ),
    )
    op.create_index(op.f("ix_payment_items_app_id"), "payment_items", ["app_id"], unique=False)

    op.create_table(
        "payment_status_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", when, nullable=False),
        _app_fk("payment_status_changes"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_status_changes_payment_id_payments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_status_changes")),
    )
    op.create_index(op.f("ix_payment_status_changes_app_id"), "payment_status_changes", ["app_id"])
    op.create_index(
        op.f("ix_payment_status_changes_payment_id"), "payment_status_changes", ["payment_id"]
    )

    op.create_table(
        "payment_settings",
        sa.Column("app_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("daily_count", sa.Integer(), nullable=False),
        sa.Column("daily_amount", bankhub.db.types.Money(), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("set_at", when, nullable=False),
        _app_fk("payment_settings"),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_payment_settings")),
    )
    if op.get_bind().dialect.name == "postgresql":  # S14: an app's rows only
        for table in TABLES:
            for statement in tenancy.tenant_table_sql(table):
                op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
