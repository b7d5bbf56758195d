"""row-level security on the tenant tables (PostgreSQL only)

Revision ID: rls1
Revises: imp1

S14, a second wall behind the application's own ``app_id`` filters (S13). Every table holding an
app's data shows and accepts only the rows of the app the transaction names in
``bankhub.app_id``, or every row when ``bankhub.scope`` is ``all`` (the runner and the CLI);
``bankhub.db.tenancy`` sets both per transaction. ``FORCE`` makes the policies bind the tables'
owner too, so only a superuser or a ``BYPASSRLS`` role gets past them. docs/security.md (S14)
explains each policy; ``bankhub db create-app-role`` grants the runtime role its rights.

SQLite has no row-level security: there this migration does nothing.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rls1"
down_revision: str | None = "imp1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the app the transaction acts for (NULL when none is chosen)
APP = "nullif(current_setting('bankhub.app_id', true), '')::bigint"
#: the runner's and operator's scope over every app
EVERY_APP = "coalesce(current_setting('bankhub.scope', true), '') = 'all'"

#: tables with an ``app_id`` column: an app's rows only
TENANT_TABLES = (
    "customers",
    "logins",
    "accounts",
    "transactions",
    "transaction_changes",
    "events",
    "sync_runs",
    "connect_tokens",
    "webhook_endpoints",
    "webhook_deliveries",
    "webhook_attempts",
    "api_keys",
    "oauth_token_families",
    "audit_log",
)
#: tables an unauthenticated request must read to find out who is calling: the credential
#: names the app. Readable (never writable) while no app is chosen; once one is, only its rows.
LOOKUP_TABLES = ("apps", "api_keys", "oauth_token_families", "connect_tokens")


def _policy(
    name: str, table: str, using: str | None, check: str | None = None, cmd: str = "ALL"
) -> None:
    sql = f"CREATE POLICY {name} ON {table} AS PERMISSIVE FOR {cmd}"
    if using is not None:
        sql += f" USING ({using})"
    if check is not None:
        sql += f" WITH CHECK ({check})"
    op.execute(sql)


def _protect(table: str) -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        _protect(table)
        rule = f"app_id = {APP} OR {EVERY_APP}"
        _policy("tenant_rows", table, rule, rule)

    # The app itself: its own row, like any tenant row.
    _protect("apps")
    rule = f"id = {APP} OR {EVERY_APP}"
    _policy("tenant_rows", "apps", rule, rule)

    # Refresh tokens have no app_id: they belong to the app of their grant (token family).
    _protect("oauth_refresh_tokens")
    # constants of this module only; nothing from outside reaches the SQL
    rule = (
        "EXISTS (SELECT 1 FROM oauth_token_families f WHERE f.id = family_id "  # noqa: S608  # nosec B608
        f"AND (f.app_id = {APP} OR {EVERY_APP}))"
    )
    _policy("tenant_rows", "oauth_refresh_tokens", rule, rule)

    for table in LOOKUP_TABLES:
        _policy("credential_lookup", table, f"{APP} IS NULL", cmd="SELECT")

    # Entries about no app (an address blocked before anyone authenticated) may be written by
    # anyone; they are read back only with the operator's scope.
    _policy("unowned_entries", "audit_log", None, "app_id IS NULL", cmd="INSERT")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP POLICY IF EXISTS unowned_entries ON audit_log")
    for table in (*TENANT_TABLES, "apps", "oauth_refresh_tokens"):
        op.execute(f"DROP POLICY IF EXISTS tenant_rows ON {table}")
        op.execute(f"DROP POLICY IF EXISTS credential_lookup ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
