"""Events: written in the same transaction as the change that causes them (the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class Event(Base):
    __tablename__ = "events"
    # Ids are cursors: SQLite must never hand out the id of a deleted newest row again.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    login_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    type: Mapped[str] = mapped_column(String(60))
    #: exactly what a webhook carries (the seed's payload shapes)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SystemFlag(Base):
    """Operator switches shared by every process (for example the maintenance switch)."""

    __tablename__ = "system_flags"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
