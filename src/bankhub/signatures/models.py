"""The public keys an app signs its API requests with (docs/signatures.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class SignatureKey(Base):
    """One public key of an app. Only the public half is ever held here.

    ``keyid`` is the key's RFC 7638 JWK thumbprint, stable whatever format the key came in;
    ``label`` is the partner's own name for it; a signature's ``keyid`` parameter may give
    either. ``source`` says where the key came from: ``uploaded`` (the API, the CLI or the
    dashboard) or ``synced:<url>`` for a key a :class:`SignatureKeySource` brought, whose
    public id ``source_id`` then names.
    """

    __tablename__ = "signature_keys"
    __table_args__ = (Index("ix_signature_keys_app_active", "app_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: the public name used to manage the key (``sk_…``)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    keyid: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    #: the RFC 9421 algorithm signatures made with the key are checked with
    algorithm: Mapped[str] = mapped_column(String(32))
    #: ``SHA256:…`` of the key's OpenSSH encoding, as ``ssh-keygen -l`` shows it
    fingerprint: Mapped[str] = mapped_column(String(64))
    public_key_pem: Mapped[str] = mapped_column(Text)
    #: unsigned requests of the app are refused while one of its active keys is required
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(300), default="uploaded")
    #: the ``ks_…`` of the source that brought the key (None for an uploaded key); it stays on
    #: the key's row after the source is removed
    source_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class SignatureKeySource(Base):
    """A URL that serves an app's public keys (OpenSSH lines or a JWKS), synced by the runner
    (``signatures.sync``). Its state says how the last fetches went; the keys it brought are
    :class:`SignatureKey` rows with its ``public_id`` as their ``source_id``."""

    __tablename__ = "signature_key_sources"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: the public name used to manage the source (``ks_…``)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    url: Mapped[str] = mapped_column(String(290))
    #: the ``required`` choice given to every key the source brings
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    #: the next sync is due then; a runner claims it by moving it on (one fetch per period)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    #: the validator of the last good answer, sent back as ``If-None-Match``
    etag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_good_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: the first failed sync of the current run of failures (None while syncs succeed)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: when the grace ran out and the source's keys were revoked (None otherwise)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the entries of the last good answer that were not taken, each with the reason
    skipped: Mapped[list[Any]] = mapped_column(JSON, default=list)
