"""Apps: creation with secrets shown once, and authentication from the seed's headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.audit import services as audit
from bankhub.categories import AppRule, RulesError, app_rules
from bankhub.clock import Clock
from bankhub.errors import DomainError, ErrorCode, InvalidInput, NotFound
from bankhub.partners import keys
from bankhub.partners.keys import KeyKind
from bankhub.partners.models import App
from bankhub.partners.origins import parse_frame_origins
from bankhub.security.authcache import AppView, AuthCache, KeyView, Ticket
from bankhub.security.network import parse_cidrs
from bankhub.security.scopes import Scope
from bankhub.security.secrets import SecretHasher, new_client_id


@dataclass(frozen=True, slots=True)
class IssuedApp:
    """An app with its secrets in clear: the only time they exist outside the caller's hands."""

    app: App
    service_secret: str
    app_secret: str

    def as_dict(self) -> dict[str, str]:
        return {
            "client_id": self.app.client_id,
            "service_secret": self.service_secret,
            "app_secret": self.app_secret,
        }


async def _issue_seed_keys(
    session: AsyncSession, hasher: SecretHasher, now: datetime, app: App
) -> IssuedApp:
    """The seed's two secrets: a master ``service-secret`` and a write ``app-secret``."""
    service = keys.issue(
        session,
        hasher,
        now,
        app.id,
        scope=Scope.MASTER,
        kind=KeyKind.SERVICE,
        name="service-secret",
    )
    mobile = keys.issue(
        session, hasher, now, app.id, scope=Scope.WRITE, kind=KeyKind.APP, name="app-secret"
    )
    await session.flush()
    return IssuedApp(app, service.secret, mobile.secret)


async def create_app(
    session: AsyncSession, hasher: SecretHasher, clock: Clock, name: str, *, is_demo: bool = False
) -> IssuedApp:
    app = App(name=name, client_id=new_client_id(), is_demo=is_demo, created_at=clock())
    session.add(app)
    await session.flush()
    return await _issue_seed_keys(session, hasher, clock(), app)


async def reissue_secrets(
    session: AsyncSession, hasher: SecretHasher, app: App, now: datetime
) -> IssuedApp:
    """New seed secrets; every other key of the app is revoked when the unit of work commits."""
    for key in await keys.list_keys(session, app):
        await keys.revoke(session, now, key)
    return await _issue_seed_keys(session, hasher, now, app)


async def count_apps(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count(App.id)))).scalar_one())


async def find_demo_app(session: AsyncSession) -> App | None:
    result = await session.execute(select(App).where(App.is_demo.is_(True)).order_by(App.id))
    return result.scalars().first()


#: the challenge of a 401 to an API-key credential (RFC 9110 requires one on every 401): the
#: seed's headers carry the key, so the scheme names them rather than ``Authorization``
API_KEY_CHALLENGE = 'ApiKey realm="bankhub", headers="client-id service-secret app-secret"'


async def _refusal(
    session: AsyncSession, client_id: str, message: str | None = None
) -> DomainError:
    """ClientNotFound for an unknown client-id, else the seed's CredentialInvalid."""
    exists = (
        await session.execute(select(App.id).where(App.client_id == client_id))
    ).scalar_one_or_none()
    if exists is None:
        return NotFound(
            ErrorCode.CLIENT_NOT_FOUND,
            f"Cannot find client with id: '{client_id}'.",
            {"clientId": client_id},
        )
    return DomainError(ErrorCode.CREDENTIAL_INVALID, message)


def archived_error(client_id: str) -> DomainError:
    """The refusal of every credential of an archived app (its secret was right)."""
    return DomainError(ErrorCode.APP_ARCHIVED, extra={"clientId": client_id[:64]})


async def authenticate(
    session: AsyncSession,
    hasher: SecretHasher,
    client_id: str | None,
    service_secret: str | None,
    app_secret: str | None,
    *,
    now: datetime,
    enter: bool = False,
    cache: AuthCache | None = None,
    ticket: Ticket | None = None,
) -> tuple[AppView, KeyView]:
    """The app named by ``client-id`` and the live key a ``service-secret`` or ``app-secret`` is,
    as plain values (answered from ``cache`` under ``ticket`` when it holds them).

    Every secret presented must be right: a wrong one is the seed's ``CredentialInvalid`` even
    beside a right one (else the right one would let wrong guesses of the other pass
    unnoticed); with both right, the service key is the one used. A key that was revoked, or
    whose overlap window after a roll has ended, is ``KeyRevoked`` (401, with the
    ``WWW-Authenticate`` challenge every 401 carries). ``enter``: see :func:`keys.find` (the
    caller raising on a refusal ends the transaction, so nothing reads as that app).
    """
    if not client_id:
        raise NotFound(ErrorCode.CLIENT_NOT_FOUND, "The client-id header is missing")
    if len(client_id) > 64:
        raise NotFound(ErrorCode.CLIENT_NOT_FOUND, extra={"clientId": client_id[:64]})
    if service_secret is None and app_secret is None:
        raise await _refusal(
            session, client_id, "A service-secret or app-secret header is required"
        )
    verified: list[tuple[AppView, KeyView]] = []
    for secret, kind in ((service_secret, KeyKind.SERVICE), (app_secret, KeyKind.APP)):
        if secret is None:
            continue
        found = await keys.find_view(
            session, hasher, client_id, secret, kind, cache=cache, ticket=ticket, enter=enter
        )
        if found is None:
            raise await _refusal(session, client_id)
        if found[0].archived:
            raise archived_error(client_id)
        if not found[1].live(now):
            raise DomainError(
                ErrorCode.KEY_REVOKED,
                extra={"key_id": found[1].key_id},
                challenge=API_KEY_CHALLENGE,
            )
        verified.append(found)
    return verified[0]


#: the longest retention an app may choose: a year (seed 004 keeps 24 hours by default)
MAX_RETENTION_HOURS = 24 * 365
MIN_RETENTION_HOURS = 1


def _chooser(chosen_by: str) -> str:
    name = chosen_by.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "chosen_by must name the person or system that chose, in 1 to 200 printable characters",
            {"problems": ["chosen_by"]},
        )
    return name


async def _recorded(
    session: AsyncSession,
    app: App,
    action: str,
    detail: dict[str, Any],
    now: datetime,
    actor: str,
    request_id: str | None,
) -> App:
    """Audit a setting the app chose, and write it."""
    audit.record(
        session,
        now=now,
        actor=actor,
        action=action,
        target_type="app",
        target_id=app.id,
        app_id=app.id,
        detail=detail,
        request_id=request_id,
    )
    await session.flush()
    return app


async def set_retention(
    session: AsyncSession,
    app: App,
    hours: int,
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """Record the app's retention window, who chose it and when; audited."""
    if isinstance(hours, bool) or not MIN_RETENTION_HOURS <= hours <= MAX_RETENTION_HOURS:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"hours must be a whole number from {MIN_RETENTION_HOURS} to {MAX_RETENTION_HOURS}",
            {"problems": ["hours"]},
        )
    name = _chooser(chosen_by)
    old = app.retention_hours
    app.retention_hours = hours
    app.retention_set_by = name
    app.retention_set_at = now
    return await _recorded(
        session,
        app,
        "app.retention_changed",
        {"old_hours": old, "new_hours": hours, "chosen_by": name},
        now,
        actor,
        request_id,
    )


async def set_credential_vault(
    session: AsyncSession,
    app: App,
    enabled: bool,
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """Record the app's credential-vault opt-in, who chose it and when; audited."""
    name = _chooser(chosen_by)
    old = bool(app.credential_vault)
    app.credential_vault = enabled
    app.credential_vault_set_by = name
    app.credential_vault_set_at = now
    return await _recorded(
        session,
        app,
        "app.credential_vault_changed",
        {"old_enabled": old, "new_enabled": enabled, "chosen_by": name},
        now,
        actor,
        request_id,
    )


async def set_ip_allowlist(
    session: AsyncSession,
    app: App,
    cidrs: list[str] | None,
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """S17: the CIDRs the app's API calls may come from (None: any address); audited."""
    name = _chooser(chosen_by)
    new = None if cidrs is None else parse_cidrs(cidrs)
    if new == []:
        raise DomainError(
            ErrorCode.DATA_INVALID,
            "An empty allow-list would refuse every address; send null to allow any address",
            {"problems": ["cidrs"]},
        )
    old = app.ip_allowlist
    app.ip_allowlist = new
    return await _recorded(
        session,
        app,
        "app.ip_allowlist_changed",
        {"old_cidrs": old, "new_cidrs": new, "chosen_by": name},
        now,
        actor,
        request_id,
    )


async def set_frame_origins(
    session: AsyncSession,
    app: App,
    origins: list[str] | None,
    chosen_by: str,
    *,
    allow_http: bool,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """S27: the origins that may frame the app's connect page (None or []: none); audited."""

    name = _chooser(chosen_by)
    new = parse_frame_origins(origins, allow_http=allow_http) if origins else None
    old = app.frame_origins
    app.frame_origins = new
    return await _recorded(
        session,
        app,
        "app.frame_origins_changed",
        {"old_origins": old, "new_origins": new, "chosen_by": name},
        now,
        actor,
        request_id,
    )


#: the most rules an app may add (each is a keyword lookup on every new transaction)
MAX_CATEGORY_RULES = 200


async def set_category_rules(
    session: AsyncSession,
    app: App,
    rules: list[AppRule],
    chosen_by: str,
    *,
    now: datetime,
    actor: str,
    request_id: str | None = None,
) -> App:
    """The app's own categorization rules, replacing the ones before (an empty list removes
    them); they apply to transactions stored from now on. Audited."""
    name = _chooser(chosen_by)
    if len(rules) > MAX_CATEGORY_RULES:
        extra = {"rules": len(rules)}
        message = f"at most {MAX_CATEGORY_RULES} rules"
        raise InvalidInput(message, extra, code=ErrorCode.DATA_INVALID)
    try:
        app_rules(rules)
    except RulesError as exc:
        raise InvalidInput(str(exc), {"field": "rules"}, code=ErrorCode.DATA_INVALID) from None
    old = app.category_rules
    new = [{"category": r.category, "keyword": r.keyword, "sign": r.sign} for r in rules] or None
    app.category_rules = new
    return await _recorded(
        session,
        app,
        "app.category_rules_changed",
        {"old_rules": len(old or []), "new_rules": len(new or []), "chosen_by": name},
        now,
        actor,
        request_id,
    )


# --- the app itself: its name, archiving -------------------------------------------------------


def app_name(text: str) -> str:
    """An app's name: 1 to 200 printable characters, spaces at either end dropped."""
    name = text.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise InvalidInput(
            "Name the app in 1 to 200 printable characters",
            {"problems": ["name"]},
            code=ErrorCode.DATA_INVALID,
        )
    return name


async def rename_app(
    session: AsyncSession, app: App, name: str, *, now: datetime, actor: str
) -> App:
    """A new name (the client-id stays); audited as ``app.renamed`` with both names."""
    new = app_name(name)
    old, app.name = app.name, new
    return await _recorded(
        session, app, "app.renamed", {"old_name": old, "new_name": new}, now, actor, None
    )


async def archive_app(session: AsyncSession, app: App, *, now: datetime, actor: str) -> bool:
    """Archive the app: from the next request on its keys and tokens are refused
    (``AppArchived``; the authentication cache is dropped by the change itself). Nothing of its
    data, keys or settings is deleted. False when it was archived already."""
    if app.archived_at is not None:
        return False
    app.archived_at, app.archived_by = now, actor[:260]
    await _recorded(session, app, "app.archived", {"name": app.name}, now, actor, None)
    return True


async def restore_app(session: AsyncSession, app: App, *, now: datetime, actor: str) -> bool:
    """Undo :func:`archive_app`: its live keys work again. False when it was not archived."""
    if app.archived_at is None:
        return False
    detail = {"name": app.name, "archived_at": app.archived_at.isoformat()}
    app.archived_at, app.archived_by = None, None
    await _recorded(session, app, "app.restored", detail, now, actor, None)
    return True


async def list_apps(session: AsyncSession, *, archived: bool | None = False) -> list[App]:
    """Apps in the order they were made: only live ones (``archived=False``), only archived
    ones (True) or all (None)."""
    query = select(App).order_by(App.id)
    if archived is not None:
        query = query.where(App.archived_at.is_not(None) if archived else App.archived_at.is_(None))
    return list((await session.execute(query)).scalars())
