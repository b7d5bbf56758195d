"""Registering, listing and revoking an app's signature keys, and the keys a request is checked
against (docs/signatures.md). Every change is audited in the caller's unit of work."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.security.authcache import AuthCache, Ticket
from bankhub.signatures import keys
from bankhub.signatures.models import SignatureKey

MAX_ACTIVE_KEYS = 20
UPLOADED = "uploaded"


class KeyCache:
    """Which apps have no active signature key, per process, kept in the process's
    authentication cache under its invalidation (``security.authcache``): a key added or
    revoked anywhere, by anyone, counts from the next request in every process. Only the
    absence is kept: keys that exist are always read afresh. Without an authentication cache
    (or while it is not live) nothing is kept."""

    def __init__(self, auth: AuthCache | None = None) -> None:
        self.auth = auth

    def has_none(self, app_id: int, ticket: Ticket | None) -> bool:
        return self.auth is not None and self.auth.unsigned(ticket, app_id)

    def note_none(self, app_id: int, ticket: Ticket | None) -> None:
        if self.auth is not None:
            self.auth.keep_unsigned(ticket, app_id)

    def forget(self, app_id: int) -> None:
        """A key of ``app_id`` was added here: this process stops trusting what it kept of
        the app at once (every process drops it all when the change commits)."""
        if self.auth is not None:
            self.auth.drop_unsigned(app_id)


async def active_keys(
    session: AsyncSession,
    app_id: int,
    cache: KeyCache | None = None,
    ticket: Ticket | None = None,
) -> list[SignatureKey]:
    if cache is not None and cache.has_none(app_id, ticket):
        return []
    found = list(
        await session.scalars(
            select(SignatureKey).where(
                SignatureKey.app_id == app_id, SignatureKey.revoked_at.is_(None)
            )
        )
    )
    if not found and cache is not None:
        cache.note_none(app_id, ticket)
    return found


async def list_keys(session: AsyncSession, app_id: int) -> list[SignatureKey]:
    return list(
        await session.scalars(
            select(SignatureKey).where(SignatureKey.app_id == app_id).order_by(SignatureKey.id)
        )
    )


async def get_key(session: AsyncSession, app_id: int, public_id: str) -> SignatureKey:
    key = await session.scalar(
        select(SignatureKey).where(
            SignatureKey.app_id == app_id, SignatureKey.public_id == public_id
        )
    )
    if key is None:
        raise NotFound(ErrorCode.NOT_FOUND, "No such signature key", {"id": public_id})
    return key


def _detail(key: SignatureKey, by: dict[str, Any]) -> dict[str, Any]:
    return {
        "keyid": key.keyid,
        "label": key.label,
        "algorithm": key.algorithm,
        "fingerprint": key.fingerprint,
        "required": key.required,
        "source": key.source,
        "source_id": key.source_id,
        "by": by,
    }


async def add_key(
    session: AsyncSession,
    app_id: int,
    *,
    public_key: str,
    label: str | None,
    algorithm: str | None,
    required: bool,
    now: datetime,
    actor: str,
    by: dict[str, Any] | None = None,
    cache: KeyCache | None = None,
    source: str = UPLOADED,
    source_id: str | None = None,
) -> SignatureKey:
    """Register a public key for ``app_id`` (``DataInvalid`` names the field at fault).
    ``source`` and ``source_id`` name the key source that brought it (``signatures.sync``)."""
    parsed = keys.parse(public_key, algorithm)
    active = await active_keys(session, app_id)
    if any(k.keyid == parsed.keyid for k in active):
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "This key is already registered for the app",
            {"problems": ["public_key"], "keyid": parsed.keyid},
        )
    if label is not None and any(label in (k.label, k.keyid) for k in active):
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "Another active key of the app has this label",
            {"problems": ["label"]},
        )
    if len(active) >= MAX_ACTIVE_KEYS:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"An app has at most {MAX_ACTIVE_KEYS} active signature keys; revoke one first",
            {"problems": ["public_key"]},
        )
    key = SignatureKey(
        app_id=app_id,
        public_id="sk_" + secrets.token_hex(12),
        keyid=parsed.keyid,
        label=label,
        algorithm=parsed.algorithm,
        fingerprint=parsed.fingerprint,
        public_key_pem=parsed.pem,
        required=required,
        source=source,
        source_id=source_id,
        created_at=now,
        created_by=actor,
    )
    session.add(key)
    await session.flush()
    if cache is not None:
        cache.forget(app_id)
    audit.record(
        session,
        now=now,
        actor=actor,
        action="signature_key.added",
        target_type="signature_key",
        target_id=key.public_id,
        app_id=app_id,
        detail=_detail(key, by or {}),
        request_id=audit.request_id(),
    )
    return key


async def revoke_key(
    session: AsyncSession,
    app_id: int,
    public_id: str,
    *,
    now: datetime,
    actor: str,
    by: dict[str, Any] | None = None,
) -> SignatureKey:
    """Revoke a key at once; revoking a revoked key changes nothing and records nothing."""
    key = await get_key(session, app_id, public_id)
    if key.revoked_at is not None:
        return key
    key.revoked_at, key.revoked_by = now, actor
    await session.flush()
    audit.record(
        session,
        now=now,
        actor=actor,
        action="signature_key.revoked",
        target_type="signature_key",
        target_id=key.public_id,
        app_id=app_id,
        detail=_detail(key, by or {}),
        request_id=audit.request_id(),
    )
    return key
