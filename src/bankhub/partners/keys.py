"""API keys: several per app, each scoped, rolled with an overlap, revoked at once (S1, S2).

A key's secret is 256 random bits shown once; only its keyed hash is stored, and a presented
secret is found by that hash (an equality lookup on an HMAC output reveals nothing through
timing). The seed's ``service-secret`` and ``app-secret`` are simply the first two keys an app
gets: a ``master`` service key and a ``write`` app key.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.db import tenancy
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.partners.models import ApiKey, App
from bankhub.security.authcache import AppView, AuthCache, KeyView, Ticket
from bankhub.security.models import AuthVersion
from bankhub.security.scopes import Scope
from bankhub.security.secrets import SecretHasher, new_api_secret


class KeyKind(StrEnum):
    SERVICE = "service"
    APP = "app"

    @property
    def header(self) -> str:
        return f"{self.value}-secret"

    @property
    def purpose(self) -> str:
        """The keyed hash's purpose label (the header name, as before keys had scopes)."""
        return self.header


#: the widest scope each kind may hold: an app key lives in a mobile app or a browser, where
#: anyone can read it, so it never manages keys or the app's settings
WIDEST_SCOPE = {KeyKind.SERVICE: Scope.MASTER, KeyKind.APP: Scope.WRITE}

#: the longest overlap a rolled key keeps working for
MAX_OVERLAP = timedelta(days=30)
DEFAULT_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key with its secret in clear: the only time the secret exists outside the caller."""

    key: ApiKey
    secret: str


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def issue(
    session: AsyncSession,
    hasher: SecretHasher,
    now: datetime,
    app_id: int,
    *,
    scope: Scope,
    kind: KeyKind = KeyKind.SERVICE,
    name: str = "",
    allowed_referers: list[str] | None = None,
    replaces: str | None = None,
) -> IssuedKey:
    """A new key of ``kind`` with ``scope``; ``DataInvalid`` when the kind cannot hold it."""
    if not WIDEST_SCOPE[kind].allows(scope):
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"An {kind.value} key can hold {WIDEST_SCOPE[kind].value} scope at most; "
            f"use a {KeyKind.SERVICE.value} key for {scope.value}",
            {"problems": ["scope"], "kind": kind.value, "scope": scope.value},
        )
    secret = new_api_secret()
    key = ApiKey(
        app_id=app_id,
        key_id=new_key_id(),
        secret_hash=hasher.hash(secret, purpose=kind.purpose),
        kind=kind.value,
        scope=scope.value,
        name=(name or f"{scope.value} {kind.value} key")[:200],
        allowed_referers=allowed_referers if kind is KeyKind.APP else None,
        created_at=now,
        replaces=replaces,
    )
    session.add(key)
    return IssuedKey(key, secret)


def is_live(key: ApiKey, now: datetime) -> bool:
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or key.expires_at > now


async def list_keys(session: AsyncSession, app: App | AppView) -> list[ApiKey]:
    result = await session.execute(
        select(ApiKey).where(ApiKey.app_id == app.id).order_by(ApiKey.id)
    )
    return list(result.scalars())


async def get_key(session: AsyncSession, app: App | AppView, key_id: str) -> ApiKey:
    """The app's key named ``key_id``; another app's key answers exactly like a missing one."""
    key = (
        await session.execute(
            select(ApiKey).where(ApiKey.app_id == app.id, ApiKey.key_id == key_id[:40])
        )
    ).scalar_one_or_none()
    if key is None:
        raise NotFound(ErrorCode.NOT_FOUND, "No such key", {"key_id": key_id[:40]})
    return key


async def roll(
    session: AsyncSession,
    hasher: SecretHasher,
    now: datetime,
    key: ApiKey,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> IssuedKey:
    """A new key of the same kind and scope; the old one keeps working for ``overlap``."""
    if not is_live(key, now):
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "Only a live key can be rolled",
            {"problems": ["key_id"], "key_id": key.key_id},
        )
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"overlap must be between 0 seconds and {MAX_OVERLAP.days} days",
            {"problems": ["overlap_seconds"]},
        )
    issued = issue(
        session,
        hasher,
        now,
        key.app_id,
        scope=Scope(key.scope),
        kind=KeyKind(key.kind),
        name=key.name,
        allowed_referers=key.allowed_referers,
        replaces=key.key_id,
    )
    ends = now + overlap
    key.expires_at = ends if key.expires_at is None else min(key.expires_at, ends)
    await session.flush()
    return issued


async def revoke(session: AsyncSession, now: datetime, key: ApiKey) -> None:
    """Effective at once: the next request with this key is refused."""
    if key.revoked_at is None:
        key.revoked_at = now
    await session.flush()


async def live_masters(session: AsyncSession, app: App | AppView, now: datetime) -> list[ApiKey]:
    keys = await list_keys(session, app)
    return [k for k in keys if k.scope == Scope.MASTER.value and is_live(k, now)]


#: the app and key a presented secret belongs to, built once (this runs on every request)
_FIND = (
    select(App, ApiKey)
    .join(ApiKey, ApiKey.app_id == App.id)
    .where(
        App.client_id == bindparam("client_id"),
        ApiKey.secret_hash == bindparam("digest"),
        ApiKey.kind == bindparam("kind"),
    )
)
#: the same, choosing the app found as the transaction's tenant in the same statement (S14)
_FIND_AND_ENTER = _FIND.add_columns(*tenancy.chosen_by(App.id))


async def find(
    session: AsyncSession,
    hasher: SecretHasher,
    client_id: str,
    secret: str,
    kind: KeyKind,
    *,
    enter: bool = False,
) -> tuple[App, ApiKey] | None:
    """The app and key a presented secret belongs to, in one query; None when nothing matches.

    ``enter``: the app found becomes the transaction's tenant on PostgreSQL within the same
    statement (what :func:`bankhub.db.tenancy.enter` would send next).
    """
    if not secret or len(secret) > 200:
        return None
    digest = hasher.hash(secret, purpose=kind.purpose)
    enter = enter and session.bind.dialect.name == "postgresql"
    row = (
        await session.execute(
            _FIND_AND_ENTER if enter else _FIND,
            {"client_id": client_id, "digest": digest, "kind": kind.value},
        )
    ).one_or_none()
    if row is None:
        return None
    if enter:
        tenancy.entered(session, row[0].id)
    return (row[0], row[1])


#: the API's look-up of a presented secret as plain columns (no ORM objects: it runs on every
#: request it is not answered from the cache), choosing the app as the tenant in the same
#: statement on PostgreSQL (S14)
_FIND_PLAIN = (
    select(
        App.id,
        App.client_id,
        App.ip_allowlist,
        ApiKey.key_id,
        ApiKey.scope,
        ApiKey.allowed_referers,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        App.archived_at,
    )
    .join_from(App, ApiKey, ApiKey.app_id == App.id)
    .where(
        App.client_id == bindparam("client_id"),
        ApiKey.secret_hash == bindparam("digest"),
        ApiKey.kind == bindparam("kind"),
    )
)
#: PostgreSQL: the same, also choosing the app as the tenant (S14) and reading the counter
#: the authentication cache is checked against (``security.authcache``)
_FIND_PLAIN_AND_ENTER = _FIND_PLAIN.add_columns(
    select(AuthVersion.version).where(AuthVersion.id == 1).scalar_subquery(),
    *tenancy.chosen_by(App.id),
)


def _tuple(values: list[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


async def find_view(
    session: AsyncSession,
    hasher: SecretHasher,
    client_id: str,
    secret: str,
    kind: KeyKind,
    *,
    cache: AuthCache | None = None,
    ticket: Ticket | None = None,
    enter: bool = False,
) -> tuple[AppView, KeyView] | None:
    """:func:`find` as plain values, answered from ``cache`` when it holds the key (the keyed
    hash is computed every time; only the look-up is cached). ``enter`` as in :func:`find`,
    for a look-up that reaches the database."""
    if not secret or len(secret) > 200:
        return None
    digest = hasher.hash(secret, purpose=kind.purpose)
    found = (client_id, kind.value, digest)
    if cache is not None:
        hit = cache.key(ticket, found)
        if hit is not None:
            return hit
    enter = enter and session.bind.dialect.name == "postgresql"
    connection = await session.connection()
    row = (
        await connection.execute(
            _FIND_PLAIN_AND_ENTER if enter else _FIND_PLAIN,
            {"client_id": client_id, "digest": digest, "kind": kind.value},
        )
    ).one_or_none()
    if row is None:
        return None
    if enter:
        tenancy.entered(session, row[0])
        if cache is not None and not cache.observe(int(row[9])):
            ticket = None  # the cache was dropped: this value was read after, keep it next time
    value = (
        AppView(row[0], row[1], _tuple(row[2]), row[8] is not None),
        KeyView(row[3], row[4], _tuple(row[5]), row[6], row[7]),
    )
    if cache is not None:
        cache.keep_key(ticket, found, value)
    return value
