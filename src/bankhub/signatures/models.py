"""The public keys an app signs its API requests with (docs/signatures.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class SignatureKey(Base):
    """One public key of an app. Only the public half is ever held here.

    ``keyid`` is the key's RFC 7638 JWK thumbprint, stable whatever format the key came in;
    ``label`` is the partner's own name for it; a signature's ``keyid`` parameter may give
    either. ``source`` says where the key came from: ``uploaded`` (the API, the CLI or the
    dashboard); a key synced from a partner's URL will say ``synced:<url>``.
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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
