"""Connect tokens and logins: creation, lookup by login-secret, activation, statuses."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.catalogue import Catalogue, Service
from bankhub.clock import Clock, as_utc
from bankhub.connectors.base import ConnectorInfo
from bankhub.customers.models import Customer
from bankhub.db import tenancy
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.logins.models import ConnectToken, Login
from bankhub.partners.models import App
from bankhub.security.authcache import AuthCache, LoginView, Ticket
from bankhub.security.secrets import SecretHasher, new_uuid_shaped_secret

LOGIN_SECRET = "login-secret"  # noqa: S105 - the purpose label of a keyed hash  # nosec B105

#: Login statuses. The webhook's ``status`` is ``"login_" + status`` (the seed's three included).
ACTIVE = "active"
STATUSES = (
    ACTIVE,
    "wrong_credentials",
    "password_expired",
    "account_locked",
    "consent_expired",
    "session_expired",
    "provider_unavailable",
    "rate_limited",
)

_FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript", "file", "blob", "about"}


def validate_callback_url(url: str, *, allow_plain_http: bool) -> str:
    """A callback must be a real URL of an allowed scheme with no header-splitting characters."""
    if not url or len(url) > 2000:
        raise DomainError(
            ErrorCode.DATA_INVALID, "callback_url is required (at most 2000 characters)"
        )
    if any(ch in url for ch in ("\r", "\n", "\x00", " ", "\t")):
        raise DomainError(
            ErrorCode.DATA_INVALID, "callback_url must not contain whitespace or control characters"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or scheme in _FORBIDDEN_SCHEMES:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "callback_url must be an https URL or an app scheme such as yourapp://",
            {"callback_url": url},
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise DomainError(ErrorCode.DATA_INVALID, "callback_url has no host", {"callback_url": url})
    if scheme == "http" and not allow_plain_http:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "callback_url must use https outside dev",
            {"callback_url": url},
        )
    return url


async def create_token(
    session: AsyncSession,
    clock: Clock,
    ttl_seconds: int,
    app: App,
    customer: Customer,
    service: Service,
    callback_url: str,
    login: Login | None = None,
) -> ConnectToken:
    now = clock()
    token = ConnectToken(
        id=str(uuid.uuid4()),
        app_id=app.id,
        customer_id=customer.id,
        service_id=service.id,
        callback_url=callback_url,
        login_id=login.id if login else None,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(token)
    try:
        await session.flush()
    except SQLAlchemyError:
        raise DomainError(ErrorCode.TOKEN_CREATE_ERROR) from None
    return token


def require_service(catalogue: Catalogue, service_id: int) -> Service:
    """A service partners may pick: an imported bank only while the operator enables it."""
    service = catalogue.get(service_id)
    if service is None or not service.listed:
        raise NotFound(
            ErrorCode.SERVICE_NOT_FOUND,
            f"Cannot find service with id: {service_id}.",
            {"service_id": service_id},
        )
    return service


class TokenUnusable(Exception):
    """The connect token is unknown, used or expired (shown as ``TokenExpire``)."""


async def claim_token(session: AsyncSession, clock: Clock, token_id: str) -> ConnectToken:
    """Mark a connect token used, exactly once, or raise :class:`TokenUnusable`."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        raise TokenUnusable(token_id) from None
    now = clock()
    token = await session.get(ConnectToken, token_id)
    if token is None or token.used_at is not None or as_utc(token.expires_at) <= now:
        raise TokenUnusable(token_id)
    # S14: the token names the app; the connect page acts for it from here on
    await tenancy.enter(session, token.app_id)
    # The conditional update makes a concurrent second claim lose even between read and write.
    result = await session.execute(
        update(ConnectToken)
        .where(ConnectToken.id == token_id, ConnectToken.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise TokenUnusable(token_id)
    token.used_at = now
    return token


async def find_token(session: AsyncSession, token_id: str) -> ConnectToken | None:
    """A connect token by its id, used or expired ones too (a link that can no longer be used
    still shows the way back to its app); ``None`` for anything that names no token."""
    try:
        uuid.UUID(token_id)
    except ValueError:
        return None
    return await session.get(ConnectToken, token_id)


def add_login(
    session: AsyncSession,
    hasher: SecretHasher,
    now: datetime,
    *,
    app_id: int,
    customer_id: str,
    service_id: int,
) -> tuple[Login, str]:
    """A new active login in the unit of work, and its login-secret in clear (shown once).

    Only the secret's keyed hash is stored. The caller flushes (the row has no id before).
    """
    secret = new_uuid_shaped_secret()
    login = Login(
        app_id=app_id,
        customer_id=customer_id,
        service_id=service_id,
        secret_hash=hasher.hash(secret, purpose=LOGIN_SECRET),
        status=ACTIVE,
        active=True,
        connector_state={},
        created_at=now,
        updated_at=now,
    )
    session.add(login)
    return login, secret


#: the login a login-secret names, built once (this runs on every data read)
_BY_SECRET = select(Login).where(
    Login.app_id == bindparam("app_id"), Login.secret_hash == bindparam("digest")
)


def required_secret(secret: str | None) -> str:
    if not secret:
        raise DomainError(ErrorCode.BAD_REQUEST, "The login-secret header is required")
    return secret


def secret_digest(hasher: SecretHasher, secret: str) -> str:
    """What a login-secret is stored and looked up as."""
    return hasher.hash(secret, purpose=LOGIN_SECRET)


def login_not_found(secret: str) -> DomainError:
    return NotFound(
        ErrorCode.LOGIN_NOT_FOUND,
        f"Cannot find Login with login secret: '{secret[:64]}'.",
        {"loginSecret": secret[:64]},
    )


async def login_by_secret(
    session: AsyncSession, hasher: SecretHasher, app: App, secret: str | None
) -> Login:
    secret = required_secret(secret)
    digest = secret_digest(hasher, secret)
    found = await session.execute(_BY_SECRET, {"app_id": app.id, "digest": digest})
    login = found.scalar_one_or_none()
    if login is None:
        raise login_not_found(secret)
    return login


#: the same as plain values, for the data reads (``login_view_by_secret``)
_VIEW_BY_SECRET = select(Login.id, Login.app_id, Login.customer_id, Login.active).where(
    Login.app_id == bindparam("app_id"), Login.secret_hash == bindparam("digest")
)


def login_view(login: Login) -> LoginView:
    return LoginView(login.id, login.app_id, login.customer_id, login.active)


async def login_view_by_secret(
    session: AsyncSession,
    hasher: SecretHasher,
    app_id: int,
    secret: str | None,
    *,
    cache: AuthCache | None = None,
    ticket: Ticket | None = None,
) -> LoginView:
    """:func:`login_by_secret` as plain values, answered from ``cache`` when it holds the
    login (``security.authcache``); the same errors."""
    secret = required_secret(secret)
    digest = secret_digest(hasher, secret)
    found = (app_id, digest)
    if cache is not None and (hit := cache.login(ticket, found)) is not None:
        return hit
    connection = await session.connection()
    row = (
        await connection.execute(_VIEW_BY_SECRET, {"app_id": app_id, "digest": digest})
    ).one_or_none()
    if row is None:
        raise login_not_found(secret)
    view = LoginView(row[0], row[1], row[2], bool(row[3]))
    if cache is not None:
        cache.keep_login(ticket, found, view)
    return view


def require_active(login: Login | LoginView) -> None:
    if not login.active:
        raise DomainError(
            ErrorCode.BAD_REQUEST,
            f"Login {login.id} is deactivated; PUT /v2/login/activate before reading its data",
            {"login_id": login.id, "active": False},
        )


def set_status(login: Login, status: str, now: datetime, error: str | None = None) -> bool:
    """Change the status; True when it actually changed (callers then emit an event)."""
    if status not in STATUSES:
        raise ValueError(f"unknown login status {status!r}")
    changed = login.status != status
    login.status = status
    login.last_error = error
    login.updated_at = now
    return changed


#: what the consent page asks the user to share
CONSENT_SCOPES = ("accounts", "balances", "transactions")
#: the longest consent bankhub records, whatever a bank offers (PSD2 RTS art. 10: 180 days)
MAX_CONSENT = timedelta(days=180)


def grant_consent(
    login: Login, info: ConnectorInfo, now: datetime, history_days: int | None = None
) -> None:
    """Record what the user agreed to on the connect page, and until when.

    ``history_days``: the history depth the consent page showed (the bank's); the connector's
    default when not given.
    """
    login.consent_granted_at = now
    login.consent_scopes = list(CONSENT_SCOPES)
    login.consent_history_days = history_days if history_days is not None else info.history_days
    offered = min(timedelta(days=info.consent_days), MAX_CONSENT)
    bank = as_utc(login.consent_expires_at) if login.consent_expires_at else now + offered
    login.consent_expires_at = min(bank, now + offered)
