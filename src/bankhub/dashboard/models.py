"""Team members, their dashboard sessions, invitations, and the outgoing-mail settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bankhub.db.base import Base
from bankhub.db.types import UTCDateTime


class Member(Base):
    """A person on the team. Global to the hub: members manage every app."""

    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: lower-cased; the sign-in name
    email: Mapped[str] = mapped_column(String(254), unique=True)
    #: argon2id, in the PHC string format (parameters included)
    password_hash: Mapped[str] = mapped_column(String(200))
    #: owner | admin | developer | viewer (``bankhub.dashboard.roles.Role``)
    role: Mapped[str] = mapped_column(String(12))
    #: the TOTP seed, AES-256-GCM under the keyring (S4, S19); set before enrolment is confirmed
    totp_seed_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: a new seed (as ``totp_seed_enc``) after a reset with a recovery code, until its first
    #: code confirms it; the old seed works meanwhile
    totp_pending_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    totp_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: the newest 30-second step a code was accepted for: no code is accepted twice
    totp_last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: keyed hashes of the unused recovery codes; a used one is removed
    recovery_hashes: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: consecutive failed sign-in steps (password or code); reset by a full sign-in (S5)
    failed_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    #: keyed hashes of the browsers this member signed in from (newest last, bounded): a
    #: sign-in from any other browser is mailed to the member (``bankhub.dashboard.alerts``)
    known_devices: Mapped[list[str]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )


class MemberSession(Base):
    """A signed-in browser. The cookie holds a random id; only its keyed hash is stored (S6)."""

    __tablename__ = "member_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    #: code (password accepted, TOTP pending) | enrol (TOTP not set up yet) | active
    stage: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: when the member last gave password and code (sign-in or re-authentication, S7)
    reauth_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Invite(Base):
    """An invitation by email; the link's token is shown once and stored as a keyed hash."""

    __tablename__ = "member_invites"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[str] = mapped_column(String(12))
    #: who invited: ``member:<email>``, ``operator:cli`` (``bankhub team invite``) or
    #: ``operator:bootstrap`` (the first owner's link, ``bankhub team bootstrap``)
    invited_by: Mapped[str] = mapped_column(String(260))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class SmtpSettings(Base):
    """The one server outgoing mail goes through (invites, notices); row id 1."""

    __tablename__ = "smtp_settings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    #: none | starttls | tls
    security: Mapped[str] = mapped_column(String(10))
    username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: AES-256-GCM under the keyring
    password_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    sender: Mapped[str] = mapped_column(String(254))
    updated_by: Mapped[str] = mapped_column(String(260))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PendingItem(Base):
    """Something a member's session holds for one use (``bankhub.dashboard.pending``): a new
    app's or key's secrets until the page that shows them once, or a form post that waits for
    the member's password and code. Encrypted under the data keyring, bound to the session (its
    rows go with it) and short-lived; the payload is dropped the moment it is used."""

    __tablename__ = "member_pending"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    #: random, named in the one-time page's path or the re-authentication form; never a secret
    #: alone (only the session that made it finds it)
    handle: Mapped[str] = mapped_column(String(43), unique=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("member_sessions.id", ondelete="CASCADE"), index=True
    )
    #: secret | action | invite | recovery (``pending.Kind``; a free string, at most 8 long)
    kind: Mapped[str] = mapped_column(String(8))
    #: JSON, AES-256-GCM under the keyring bound to this row; NULL once used
    payload_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
