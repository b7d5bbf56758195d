"""Accounts and transactions, with the keys that keep their ids stable and their rows unique."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import Money, UTCDateTime


class Account(Base):
    __tablename__ = "accounts"
    # Partners keep these ids: SQLite must never hand a deleted newest row's id to another.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    login_id: Mapped[int] = mapped_column(ForeignKey("logins.id", ondelete="CASCADE"), index=True)
    #: the bank's current id for the account (``original_id`` in the API); banks may re-mint it.
    #: Sealed in ``bank_id_enc`` (statement files make it from the IBAN); this plain column only
    #: holds it in rows stored before that, until ``bankhub keys rewrap`` seals them.
    bank_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    bank_id_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: keyed hash of IBAN/number + currency: finds the account again when the bank re-mints ids
    match_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(30))
    currency: Mapped[str] = mapped_column(String(3))
    #: None when no source ever stated a balance (a statement file without one)
    balance: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    available_balance: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    #: the day the stored balance is stated for (a statement's closing date), when known
    balance_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    number_masked: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: what identifies a person, encrypted under the keyring (S19): IBAN, number, holder
    iban_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    number_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    holder_name_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Transaction(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint("account_id", "dedupe_key"),
        Index("ix_transactions_account_date", "account_id", "date", "id"),
        Index("ix_transactions_app_fetched", "app_id", "fetched_at"),
        # Partners keep these ids: SQLite must never hand a deleted newest row's id to another.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: ``b:<keyed hash of the bank id>`` when the bank gives one, ``f:<fingerprint>`` otherwise
    dedupe_key: Mapped[str] = mapped_column(String(220))
    #: keyed hash of the content (date, amount, currency, description, occurrence): survives
    #: re-minting
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    #: original_id, description, merchant and meta, sealed together (``accounts.details``); the
    #: plain columns below hold them only in rows stored before, until they are sealed
    details_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    original_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    date: Mapped[dt.date] = mapped_column(Date)
    value_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    merchant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    category: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    #: for a booked item: the pending item it replaced (that one was removed when it booked)
    pending_transaction_id: Mapped[int | None] = mapped_column(nullable=True)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
