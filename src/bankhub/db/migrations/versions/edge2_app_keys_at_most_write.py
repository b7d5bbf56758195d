"""app keys hold write scope at most: existing master app keys narrowed, then a check constraint

Revision ID: edge2
Revises: connect1

An ``app`` key lives in a mobile app or a web page, where anyone can read it, so it never
manages keys or the app's settings. Until now ``POST /v2/keys`` (and the CLI and the dashboard)
let one be created with ``master`` scope: each such key is narrowed to ``write``, with an audit
entry (``key.scope_narrowed``) for its app, and the database refuses the combination from now
on. Row-level security (S14) does not hide rows here: the migration environment works in the
operator's scope.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import bankhub.db.types

revision: str = "edge2"
down_revision: str | None = "connect1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "ck_api_keys_app_key_scope"
CHECK = "kind <> 'app' OR scope <> 'master'"


def upgrade() -> None:
    keys = sa.table(
        "api_keys",
        sa.column("app_id", sa.Integer),
        sa.column("key_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("scope", sa.String),
    )
    audit_log = sa.table(
        "audit_log",
        sa.column("app_id", sa.Integer),
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("target_type", sa.String),
        sa.column("target_id", sa.String),
        sa.column("detail", sa.JSON),
        sa.column("request_id", sa.String),
        sa.column("at", bankhub.db.types.UTCDateTime(timezone=True)),
    )
    wide = sa.and_(keys.c.kind == "app", keys.c.scope == "master")
    bind = op.get_bind()
    narrowed = bind.execute(sa.select(keys.c.app_id, keys.c.key_id).where(wide)).all()
    if narrowed:
        bind.execute(sa.update(keys).where(wide).values(scope="write"))
        now = datetime.now(UTC)
        op.bulk_insert(
            audit_log,
            [
                {
                    "app_id": app_id,
                    "actor": "system:migration",
                    "action": "key.scope_narrowed",
                    "target_type": "api_key",
                    "target_id": key_id,
                    "detail": {"old_scope": "master", "new_scope": "write", "kind": "app"},
                    "request_id": None,
                    "at": now,
                }
                for app_id, key_id in narrowed
            ],
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f(CONSTRAINT), CHECK)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(CONSTRAINT), type_="check")
