"""Payments: single credit transfers and batches, their transfers, their status history, and
each app's switch and daily limits.

What identifies the creditor and what is paid (names, IBANs, account numbers, remittance,
amounts) is financial data: it is kept only sealed (one AES-GCM envelope per row, bound to the
row, as ``accounts.details`` does for transactions). The columns left in clear say what bankhub
needs to run the flow without opening them: statuses, the currency, counts, dates, the bank's
payment id.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import Money, UTCDateTime

SINGLE, BATCH = "single", "batch"


class Payment(Base):
    """One order to the bank: a single credit transfer, or a batch authorised once."""

    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_app_created", "app_id", "created_at"),
        Index("ix_payments_open", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    service_id: Mapped[int] = mapped_column(Integer)
    #: the debtor account the partner named (one of the customer's), None: chosen at the bank
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True
    )
    #: the connect token the user authorises with (its callback is the partner's)
    token_id: Mapped[str] = mapped_column(String(36), unique=True)
    #: the connect token with which the account holder authorises the cancellation the bank
    #: asked for (the latest one: asking again replaces it), None while none was asked
    cancel_token_id: Mapped[str | None] = mapped_column(String(36), unique=True, nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer)
    execution_date: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(30))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: when bankhub sent the order to the bank; set in its own committed transaction before
    #: the call, so a crash leaves "sent, not answered" for the reconciler to ask about
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the bank's id of the payment, recorded in its own transaction as soon as it is known
    bank_payment_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: the total and the debtor's IBAN (when named), sealed
    details_enc: Mapped[str] = mapped_column(Text)
    #: the bank session the payment was sent in (consent and session ids, never credentials),
    #: sealed, so that status polls and reconciliation reach the bank without the user
    connector_state_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PaymentItem(Base):
    """One credit transfer of a payment (a single payment has one)."""

    __tablename__ = "payment_items"
    __table_args__ = (UniqueConstraint("payment_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(30))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: creditor name, IBAN or account, BIC, amount, remittance: one sealed JSON envelope
    details_enc: Mapped[str] = mapped_column(Text)


class PaymentStatusChange(Base):
    """A payment's status history, with the bank's reason."""

    __tablename__ = "payment_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    payment_id: Mapped[str] = mapped_column(
        ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PaymentSettings(Base):
    """An app's payment initiation switch (off until an owner turns it on) and daily limits."""

    __tablename__ = "payment_settings"

    app_id: Mapped[int] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: payments (a batch counts its transfers) per UTC day
    daily_count: Mapped[int] = mapped_column(Integer)
    #: the sum of amounts per UTC day, in each currency
    daily_amount: Mapped[Decimal] = mapped_column(Money())
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
