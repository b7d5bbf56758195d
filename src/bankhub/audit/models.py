"""Audit entries: authentication events, data reads and every erasure, export or setting change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime

#: 64-bit ids on PostgreSQL: every read of account data adds a row; SQLite's INTEGER is 64-bit
AUDIT_ID = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_app_at", "app_id", "at"),
        # the retention purge and ``--since``
        Index("ix_audit_log_at", "at"),
        # ``bankhub audit --request-id``
        Index("ix_audit_log_request_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(AUDIT_ID, primary_key=True, autoincrement=True)
    #: no foreign key on purpose: the record of an erasure outlives what was erased
    app_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: who acted: ``app:<client-id>``, ``operator``, ``system:<job>``, or a named person
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
