"""The imported banks: the operator's catalogue, not any app's data (no ``app_id``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime

#: the version counter every process compares with what it loaded (``bankhub.banks.live``)
VERSION_FLAG = "catalogue_version"


class Bank(Base):
    """One imported institution. ``id`` is its service id, what partners store: given once,
    kept when the bank is updated, never reused (banks are disabled, not deleted)."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: the stable identity across imports: ``xs2a-adapter:<registry id>`` or
    #: ``bankhub:<key>`` (by default ``bankhub:<BIC>/<BLZ>``)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    #: the registry format it came from (``xs2a-adapter`` or ``bankhub``)
    source: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), index=True)
    bic: Mapped[str] = mapped_column(String(11), index=True)
    blz: Mapped[str | None] = mapped_column(String(20), nullable=True)
    country_code: Mapped[str] = mapped_column(String(2))
    connector: Mapped[str] = mapped_column(String(40))
    #: the connector's institution parameters (base URL, SCA approaches, ...)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    logo_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    color_primary: Mapped[str] = mapped_column(String(6))
    color_secondary: Mapped[str] = mapped_column(String(6))
    #: shown to partners only once the operator enables it (``bankhub banks enable``)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BankLogo(Base):
    """An imported bank's logo as bankhub serves it (``bankhub.banks.logos``): fetched from the
    bank's ``logo_url``, checked and re-encoded as PNG. A row whose ``png`` is null holds only
    the last refusal; a refused newer URL leaves an earlier PNG in place."""

    __tablename__ = "bank_logos"

    bank_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("banks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    #: the URL last fetched
    url: Mapped[str] = mapped_column(Text)
    png: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: hex SHA-256 of ``png``: the media route's ETag
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: when ``png`` was fetched
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the last fetch, kept or refused
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: why the last fetch was refused; null when it was kept
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)


class GoCardlessSettings(Base):
    """The installation's GoCardless Bank Account Data access; one row, id 1.

    The operator's secret id and key and the provider's token pair are encrypted under the
    keyring. ``token_version`` grows with every stored pair: a process stores a renewed pair
    only over the version it read (``bankhub.banks.gocardless``), so two processes renewing at
    once do not overwrite each other's newer pair with an older one.
    """

    __tablename__ = "gocardless_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    secret_id_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    refresh_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    token_version: Mapped[int] = mapped_column(Integer, server_default="0")
    #: when the institution lists are next imported (the daily refresh claims it)
    institutions_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
