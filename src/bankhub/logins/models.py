"""Logins (one bank login of a customer), and the single-use connect tokens that create them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class ConnectToken(Base):
    __tablename__ = "connect_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(Integer)
    callback_url: Mapped[str] = mapped_column(Text)
    #: set for reconnect tokens: the login the connect renews in place
    login_id: Mapped[int | None] = mapped_column(
        ForeignKey("logins.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the connect page's language the partner chose (``bankhub.i18n.SUPPORTED``); else the
    #: browser's, else the bank's country's
    locale: Mapped[str | None] = mapped_column(String(8), nullable=True)


class Login(Base):
    __tablename__ = "logins"
    # Partners keep these ids: SQLite must never hand a deleted newest row's id to another.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    service_id: Mapped[int] = mapped_column(Integer)
    #: keyed hash of the login-secret, which is shown once in the callback
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: the connector's opaque state (session and consent references; never credentials)
    #: before encryption at rest; kept empty now, read only for rows not yet rewrapped
    connector_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the connector's state (consent ids, session tokens), AES-256-GCM under the keyring
    connector_state_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    consent_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    consent_granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: what the user agreed to share: accounts, balances, transactions, holder_info
    consent_scopes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    consent_history_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: keyed hash of who the bank says the user is (the connector's identity key); a reconnect
    #: must show the same one, so that another person's bank login never renews this one
    bank_identity: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: AES-GCM envelope of the credentials, only when the app opted in to the vault
    vault_credentials_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_refresh_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: when the scheduler should refresh this login next (``None``: never unattended)
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    #: the earliest moment the bank lets this login be read again: its retry time after it
    #: refused more requests (``Retry-After``), or a provider's daily limit; no refresh before it
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: a sync holds the login until ``sync_lease_until``; no second sync starts meanwhile
    sync_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sync_lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: unattended refreshes done on ``unattended_day`` (UTC), against the connector's quota
    unattended_day: Mapped[date | None] = mapped_column(Date, nullable=True)
    unattended_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: the nearest consent-expiry notice already sent, in days (7, then 1); 0 when none yet
    consent_notice_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: messages the provider attached to the last read, for the user (plain text)
    notices: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
