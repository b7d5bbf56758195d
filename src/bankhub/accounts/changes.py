"""The change log behind ``/v2/transaction/sync``: what was added, modified or removed, in order."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime

ADDED = "added"
MODIFIED = "modified"
REMOVED = "removed"


class TransactionChange(Base):
    __tablename__ = "transaction_changes"
    # Ids are cursors: SQLite must never hand out the id of a deleted newest row again.
    __table_args__ = (
        Index("ix_transaction_changes_account_seq", "account_id", "id"),
        {"sqlite_autoincrement": True},
    )

    #: the sequence a cursor points into
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: no foreign key: a removed transaction's row is gone, its id is what the partner needs
    transaction_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
