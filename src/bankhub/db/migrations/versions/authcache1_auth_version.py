"""auth version: what tells every process its cache of credentials changed

Revision ID: authcache1
Revises: i18n1

Triggers on ``apps``, ``api_keys``, ``signature_keys`` and the credential fields of ``logins``
(``bankhub.security.authcache``) bump the one row of ``auth_version``, which each request reads
before it trusts its process's cache; on PostgreSQL they also ``NOTIFY bankhub_auth``
(delivered when the change commits), which each process listens to. Triggers, not the
services, so that every writer is seen: the API, the dashboard, the CLI, a later migration.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "authcache1"
down_revision: str | None = "i18n1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the columns of ``logins`` a cached login holds (a refresh changes the others all the time)
LOGIN_COLUMNS = "active, secret_hash, app_id, customer_id"
TABLES = ("apps", "api_keys", "signature_keys", "logins")


def _sqlite_triggers() -> list[str]:
    bump = "BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END"
    statements = []
    for table in TABLES:
        events = {"insert": "INSERT", "update": "UPDATE", "delete": "DELETE"}
        if table == "logins":
            # a new login is found by a look-up that was never cached (unknown is not kept)
            events = {"update": f"UPDATE OF {LOGIN_COLUMNS}", "delete": "DELETE"}
        for name, event in events.items():
            statements.append(
                f"CREATE TRIGGER auth_version_{table}_{name} AFTER {event} ON {table} {bump}"
            )
    return statements


def _postgresql_triggers() -> list[str]:
    statements = [
        "CREATE OR REPLACE FUNCTION bankhub_auth_changed() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; "
        "PERFORM pg_notify('bankhub_auth', ''); RETURN NULL; END $$"
    ]
    for table in TABLES:
        events = "INSERT OR UPDATE OR DELETE OR TRUNCATE"
        if table == "logins":
            events = f"UPDATE OF {LOGIN_COLUMNS} OR DELETE OR TRUNCATE"
        statements.append(
            f"CREATE TRIGGER auth_notify_{table} AFTER {events} ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION bankhub_auth_changed()"
        )
    return statements


def upgrade() -> None:
    op.create_table(
        "auth_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_version")),
    )
    op.execute("INSERT INTO auth_version (id, version) VALUES (1, 0)")
    dialect = op.get_bind().dialect.name
    for statement in _sqlite_triggers() if dialect == "sqlite" else _postgresql_triggers():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _sqlite_triggers():
            op.execute("DROP TRIGGER IF EXISTS " + statement.split()[2])
    else:
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS auth_notify_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS bankhub_auth_changed()")
    op.drop_table("auth_version")
