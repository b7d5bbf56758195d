"""Hourly usage counts: one row per (app, metric, UTC hour, outcome, detail)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class UsageCount(Base):
    """How many times something happened for an app in one UTC hour.

    ``metric`` ``api``: ``outcome`` is the status class (``2xx``..``5xx``), ``detail`` the route
    group. ``metric`` ``connect``: ``outcome`` is how a connect session ended, ``detail`` ``new``
    or ``reconnect``. Rows are only ever added to (``total`` grows by upserts) and purged.
    """

    __tablename__ = "usage_counts"
    __table_args__ = (UniqueConstraint("app_key", "metric", "hour", "outcome", "detail"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: null for calls no app was authenticated for; erasing an app erases its rows
    app_id: Mapped[int | None] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: the app id, or 0 without one: the upsert's conflict target (nulls never conflict)
    app_key: Mapped[int] = mapped_column(Integer)
    metric: Mapped[str] = mapped_column(String(16))
    #: the start of the UTC hour
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(BigInteger)
