"""Partner apps: the tenants of bankhub."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class App(Base):
    __tablename__ = "apps"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    #: financial data is purged this long after it was fetched (seed 004: 24 hours by default)
    retention_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    retention_set_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    retention_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: opt-in: keep bank credentials encrypted so logins that need them refresh unattended
    credential_vault: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    credential_vault_set_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    credential_vault_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: S17: CIDRs the app's API calls may come from; null allows any address
    ip_allowlist: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: S27: origins that may frame the connect page; null lets no one frame it
    frame_origins: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: the app's own categorization rules ({"category", "keyword", "sign"}, in priority
    #: order), which win over bankhub's defaults; null: none
    category_rules: Mapped[list[dict[str, str]] | None] = mapped_column(JSON, nullable=True)
    #: which services of the catalogue the app may connect (``bankhub.partners.modes``):
    #: ``sandbox`` (the simulated banks only), ``live`` (real institutions only) or ``both``
    mode: Mapped[str] = mapped_column(String(8), default="both", server_default="both")
    mode_set_by: Mapped[str | None] = mapped_column(String(260), nullable=True)
    mode_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: set while the app is archived: its keys and tokens are refused (``AppArchived``) and
    #: the dashboard lists it only when asked; cleared by a restore
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    archived_by: Mapped[str | None] = mapped_column(String(260), nullable=True)


class BlockedAddress(Base):
    """S18: an address refused everywhere until ``blocked_until``; shared by every process."""

    __tablename__ = "blocked_addresses"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A secret an app authenticates with: several per app, each with a scope (S1, S2).

    The secret is shown once and stored only as a keyed hash, looked up by that hash. ``kind``
    says which header carries it: ``service`` keys go in ``service-secret`` (servers), ``app``
    keys in ``app-secret`` (mobile and browser apps, optionally limited to some referers).
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        # an app key is readable by anyone holding the app: never master (migration edge2)
        CheckConstraint("kind <> 'app' OR scope <> 'master'", name="app_key_scope"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    #: the public name of the key (``key_…``), used to manage it; never a credential
    key_id: Mapped[str] = mapped_column(String(40), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    scope: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    #: for ``app`` keys: the page origins allowed to use it (a second line, S17); null = any
    allowed_referers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: set when the key was rolled: it keeps working until then (the overlap window)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the key this one replaced, when it was created by rolling another
    replaces: Mapped[str | None] = mapped_column(String(40), nullable=True)


class AppTemplate(Base):
    """The connect page's branding of one app (App Templates): shown to the app's end users.

    Every text is plain text (autoescaped where shown); colours are ``#rrggbb``; the logo is a
    PNG or JPEG whose bytes were checked (``bankhub.partners.branding``) and are served from our
    own origin under a content hash, never inline.
    """

    __tablename__ = "app_templates"

    app_id: Mapped[int] = mapped_column(
        ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    display_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    welcome_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    footer_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    color_primary: Mapped[str | None] = mapped_column(String(7), nullable=True)
    color_secondary: Mapped[str | None] = mapped_column(String(7), nullable=True)
    #: loaded only by the route that serves it
    logo: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    #: image/png | image/jpeg, from the bytes themselves
    logo_type: Mapped[str | None] = mapped_column(String(20), nullable=True)
    #: SHA-256 of the logo's bytes: its URL, so a new logo is a new address
    logo_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    logo_width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    logo_height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the app's privacy notice and terms (https), linked on the consent step; else the
    #: operator's (``BANKHUB_PRIVACY_URL``)
    privacy_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: "who handles your data", in the app's words; else a sentence naming the app and operator
    data_notice: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(260))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
