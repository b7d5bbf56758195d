"""auth version: a revoked OAuth grant drops the cached bearer tokens too

Revision ID: perf1
Revises: dashfeed1

The authentication cache (``bankhub.security.authcache``) now also keeps verified access tokens.
A token ends with its grant (``oauth_token_families.revoked_at``: a revocation, a rotated refresh
token presented again, the dashboard ending a grant), so changes to a grant's columns the check
reads, or its deletion, bump ``auth_version`` (SQLite) and ``NOTIFY bankhub_auth`` (PostgreSQL)
as ``authcache1``'s triggers do for keys and logins. A new grant needs no trigger: a token of it
was never cached.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "perf1"
down_revision: str | None = "dashfeed1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "oauth_token_families"
#: the columns a cached token's check reads
COLUMNS = "revoked_at, app_id, key_id, scope, expires_at"


def _sqlite_triggers() -> list[str]:
    bump = "BEGIN UPDATE auth_version SET version = version + 1 WHERE id = 1; END"
    return [
        f"CREATE TRIGGER auth_version_{TABLE}_update AFTER UPDATE OF {COLUMNS} ON {TABLE} {bump}",
        f"CREATE TRIGGER auth_version_{TABLE}_delete AFTER DELETE ON {TABLE} {bump}",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _sqlite_triggers():
            op.execute(statement)
    else:
        # bankhub_auth_changed() is authcache1's function
        op.execute(
            f"CREATE TRIGGER auth_notify_{TABLE} AFTER UPDATE OF {COLUMNS} OR DELETE OR TRUNCATE"
            f" ON {TABLE} FOR EACH STATEMENT EXECUTE FUNCTION bankhub_auth_changed()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for statement in _sqlite_triggers():
            op.execute("DROP TRIGGER IF EXISTS " + statement.split()[2])
    else:
        op.execute(f"DROP TRIGGER IF EXISTS auth_notify_{TABLE} ON {TABLE}")
