"""Data keys, wrapped by the key-encryption key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class DataKey(Base):
    __tablename__ = "data_keys"

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: the AES-256 key, wrapped (AES-256-GCM) by the KEK named in ``kek_id``
    wrapped_key: Mapped[str] = mapped_column(Text)
    kek_id: Mapped[str] = mapped_column(String(64))
    #: primary (writes), active (reads), retired (no longer loaded)
    state: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
