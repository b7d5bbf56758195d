"""A record of every run that brought rows in: when, by which worker, with what outcome.

A refresh (``manual``: PUT /v2/login/refresh, or ``scheduled``), a connect's first sync
(``connect``, the connect page's statement upload among them) and a statement file imported
over the API (``api``), the command line (``cli``) or the SFTP drop (``sftp``). The dashboard's
Bank Feed (``bankhub.sync.feed``) reads these rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class SyncRun(Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_app_feed", "app_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: empty only for a statement file refused before it reached a login
    login_id: Mapped[int | None] = mapped_column(
        ForeignKey("logins.id", ondelete="CASCADE"), index=True, nullable=True
    )
    #: the customer a refused file was meant for (set only then; erasing them erases the row)
    customer_id: Mapped[str | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True, nullable=True
    )
    #: ``manual``, ``scheduled``, ``connect``, ``api``, ``cli`` or ``sftp`` (see the module)
    kind: Mapped[str] = mapped_column(String(12))
    worker: Mapped[str] = mapped_column(String(64))
    #: the connector that ran (``sandbox``, ``statement``, ``xs2a``…); empty on older rows
    connector: Mapped[str | None] = mapped_column(String(40), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: runs are purged this long after (``BANKHUB_SYNC_RUN_DAYS``, ``sync.feed.purge``)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str] = mapped_column(String(40))
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    #: rows of the answer or file that were stored already (duplicates, not added again)
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: a statement file's name as it was given
    file_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
