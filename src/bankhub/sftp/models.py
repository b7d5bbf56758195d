"""What an app's SFTP inbox holds: one row per dropped file, with the outcome of its import.

The file's bytes are never kept: they are held in memory while the upload is open, imported
when it closes, and only the outcome stays (``result``, the JSON written back as
``<file>.result.json``). The row belongs to the customer, so erasing the customer erases it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class DroppedFile(Base):
    __tablename__ = "sftp_files"
    __table_args__ = (UniqueConstraint("app_id", "customer_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    #: the file's name in the customer's folder, as uploaded (NFC)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    #: whether the import succeeded (``result`` is then the API's answer, else its error)
    imported: Mapped[bool] = mapped_column(Boolean)
    #: the ``<file>.result.json`` body, exactly as the client reads it, but for ``secret``
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
