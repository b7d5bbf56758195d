"""Signing keys and refresh-token families."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class SigningKey(Base):
    """An ES256 key pair; the private half is encrypted with the data keyring."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(40), primary_key=True)
    private_key_enc: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the key that signs new tokens is the newest active one
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: no longer published; set once every token it signed has expired
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TokenFamily(Base):
    """One grant: every access and refresh token descended from one client_credentials call.

    Revoking the family (revocation, or a rotated refresh token presented again) ends all of
    its tokens at once, access tokens included: they carry the family id and are checked.
    """

    __tablename__ = "oauth_token_families"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: the API key the grant was made with; revoking the key ends the family's tokens too
    key_id: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: absolute end of the family: no refresh after this
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)


class RefreshToken(Base):
    """An opaque refresh token, stored as a keyed hash, used at most once."""

    __tablename__ = "oauth_refresh_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    family_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_token_families.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: idle expiry: a refresh token not used by then is dead
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
