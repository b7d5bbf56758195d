"""sync runs are purged past their retention: an index on when each run finished

Revision ID: runs1
Revises: perf1

The Bank Feed's ``sync_runs`` grew by a row per refresh for ever (four a day per login). The
retention sweep now deletes runs older than ``BANKHUB_SYNC_RUN_DAYS``; the index lets it find
them without reading the whole table on every sweep.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "runs1"
down_revision: str | None = "perf1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_sync_runs_finished_at"), "sync_runs", ["finished_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sync_runs_finished_at"), table_name="sync_runs")
