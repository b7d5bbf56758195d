"""Data keys, wrapped by the key-encryption key; stored answers of idempotent requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
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


class IdempotencyRecord(Base):
    """S40: one ``Idempotency-Key`` of one app, claimed by the first request that sent it.

    ``in_progress`` while the first request runs (held until ``lease_until``), then ``done``
    with the answer sealed in ``response_enc`` (AES-256-GCM under the keyring: bodies can hold a
    secret shown once), or ``erased`` when an erasure or the retention window took the answer
    away. The row goes at ``expires_at``, 24 hours after the first request.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("app_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    #: keyed hash of method, path, query, login-secret and body: what "the same request" means
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: in_progress, done or erased
    state: Mapped[str] = mapped_column(String(12))
    #: random per claim: only the request holding the claim may store or release it
    claim: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the stored status line's headers and body, sealed (``v1.<kid>.…``)
    response_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AuthVersion(Base):
    """SQLite: one row whose ``version`` the triggers of migration ``authcache1`` bump whenever
    an app, an API key, a signature key or a login's credential fields change; each request
    reads it to know whether its process's cache of those rows still holds
    (``bankhub.security.authcache``). PostgreSQL notifies instead and leaves it at 0."""

    __tablename__ = "auth_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
