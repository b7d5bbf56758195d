"""webhook bodies name their type; endpoints list their types; endpoints resume after a 410

Revision ID: hooks2a
Revises: ids1

* An endpoint created without a list of event types received every type (``events`` null).
  New endpoints now receive the seed's two (``transactions.new``, ``login.status``) unless they
  ask for others, so each NULL is written out here as the five types that "every type" meant:
  nothing changes for those endpoints.
* Every webhook body carries its type beside the seed's keys (``event_type``); stored events
  get it here, so a replay or the event feed shows an older event the same way.
* ``webhook_endpoints.resumed_after_event_id``: where an endpoint's last re-enabling left off.

Row-level security (S14) hides nothing here: the migration environment works in the operator's
scope.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "hooks2a"
down_revision: str | None = "ids1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: what an endpoint without a list received when this revision was written
EVERY_TYPE = [
    "transactions.new",
    "login.status",
    "sync.failed",
    "consent.expiring",
    "login.deleted",
]
TYPE_FIELD = "event_type"
#: events rewritten per statement
BATCH = 2000

endpoints = sa.table("webhook_endpoints", sa.column("id", sa.String), sa.column("events", sa.JSON))
events = sa.table(
    "events",
    sa.column("id", sa.Integer),
    sa.column("type", sa.String),
    sa.column("payload", sa.JSON),
)


def _rewrite_payloads(change: str) -> None:
    """Add (or remove) the type field of every stored event, a batch at a time in id order."""
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.select(events.c.id, events.c.type, events.c.payload)
            .where(events.c.id > after)
            .order_by(events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1][0]
        changed = []
        for event_id, event_type, payload in rows:
            if not isinstance(payload, dict):
                continue
            if change == "add" and payload.get(TYPE_FIELD) != event_type:
                changed.append({"key": event_id, "body": {**payload, TYPE_FIELD: event_type}})
            elif change == "remove" and TYPE_FIELD in payload:
                body = {k: v for k, v in payload.items() if k != TYPE_FIELD}
                changed.append({"key": event_id, "body": body})
        if changed:
            bind.execute(
                events.update()
                .where(events.c.id == sa.bindparam("key"))
                .values(payload=sa.bindparam("body", type_=sa.JSON)),
                changed,
            )


def upgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("resumed_after_event_id", sa.Integer(), nullable=True))
    # The ORM stored "no list" as JSON null, not SQL NULL: either is "every type".
    every = sa.func.coalesce(sa.cast(endpoints.c.events, sa.Text), "null") == "null"
    op.get_bind().execute(endpoints.update().where(every).values(events=EVERY_TYPE))
    _rewrite_payloads("add")


def downgrade() -> None:
    _rewrite_payloads("remove")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_column("resumed_after_event_id")
