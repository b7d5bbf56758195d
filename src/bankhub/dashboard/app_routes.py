"""Apps and their keys and settings, managed by members (the same services ``/v2/keys`` and
``/v2/app/*`` use). Secrets are rendered once in the answer that made them, never stored in
clear and never shown again. Key changes and network settings need a recent re-authentication
(S7, enforced by the guard); every change is audited with the member's name."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.principal import HubDep, hub_of
from bankhub.audit import services as audit
from bankhub.categories import AppRule, Sign
from bankhub.dashboard import roles, services
from bankhub.dashboard.pages import PREFIX, Refused, field_of, go, member_of, page
from bankhub.dashboard.roles import Action
from bankhub.errors import DomainError, ErrorCode, InvalidInput
from bankhub.partners import keys, modes
from bankhub.partners import services as partners
from bankhub.partners.models import ApiKey, App
from bankhub.partners.origins import parse_frame_origins
from bankhub.payments import services as payments
from bankhub.security.scopes import Scope

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]

APPS = f"{PREFIX}/apps"
#: the overlaps a rolled key may keep working for, as offered by the form
OVERLAPS = {"0": "none: the old key stops at once", "3600": "1 hour", "86400": "24 hours"}
DONE = {
    "revoked": "The key was revoked; it is refused from now on.",
    "ip-allowlist": "The IP allow-list was saved.",
    "frame-origins": "The frame origins were saved.",
    "retention": "The retention window was saved.",
    "referers": "The key's allowed referers were saved.",
    "reauth": "Thank you. You can make the change now.",
    "mode": "The app's mode was saved.",
    "category-rules": "The categorization rules were saved; they apply to new transactions.",
    "payments": "The payment settings were saved.",
}


async def app_of(db: AsyncSession, client_id: str) -> App:
    query = select(App).where(App.client_id == client_id[:64])
    found = (await db.execute(query)).scalar_one_or_none()
    if found is None:
        raise Refused(404, "No such app.")
    return found


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _audit_key(
    db: AsyncSession, request: AnyRequest, action: str, key: ApiKey, now: datetime
) -> None:
    audit.record(
        db,
        now=now,
        actor=services.member_actor(member_of(request)),
        action=action,
        target_type="api_key",
        target_id=key.key_id,
        app_id=key.app_id,
        detail={"scope": key.scope, "kind": key.kind},
        request_id=audit.request_id(),
    )


# --- apps ---------------------------------------------------------------------------------------


@get(APPS, opt=roles.route(Action.VIEW), include_in_schema=False)
async def apps_page(hub: HubDep, request: AnyRequest) -> Response[Any]:
    async with hub.db.transaction() as db:
        apps = list((await db.execute(select(App).order_by(App.id))).scalars())
    return page(request, "apps.html", apps=apps)


@post(APPS, opt=roles.route(Action.APP_CREATE), include_in_schema=False)
async def create_app(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """A new app with its seed keys; their secrets are on this answer only."""
    name = field_of(data, "name").strip()
    if not name or len(name) > 200 or not name.isprintable():
        hub_apps = await _all_apps(request)
        return page(request, "apps.html", apps=hub_apps, notice="Name the app (1-200 characters).")
    now = hub.clock()
    async with hub.db.transaction() as db:
        issued = await partners.create_app(db, hub.hasher, hub.clock, name)
        audit.record(
            db,
            now=now,
            actor=services.member_actor(member_of(request)),
            action="app.created",
            target_type="app",
            target_id=issued.app.id,
            app_id=issued.app.id,
            detail={"name": name},
        )
    return page(
        request,
        "secret.html",
        app=issued.app,
        title="App created",
        secrets=[
            ("client-id", issued.app.client_id),
            ("service-secret (master key)", issued.service_secret),
            ("app-secret (write key for apps)", issued.app_secret),
        ],
    )


async def _all_apps(request: AnyRequest) -> list[App]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        return list((await db.execute(select(App).order_by(App.id))).scalars())


async def _app_page(
    request: AnyRequest, client_id: str, *, notice: str | None = None, status: int = 200
) -> Response[Any]:
    hub = hub_of(request)
    now = hub.clock()
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        rows = await keys.list_keys(db, app)
        payment_settings = await payments.settings_of(db, app.id)
    return page(
        request,
        "app.html",
        app=app,
        keys=[(k, keys.is_live(k, now)) for k in rows],
        scopes=[s.value for s in Scope],
        kinds=[k.value for k in keys.KeyKind],
        overlaps=OVERLAPS,
        mode=modes.mode_of(app).value,
        payment_settings=payment_settings,
        payment_defaults=(payments.DEFAULT_DAILY_COUNT, payments.DEFAULT_DAILY_AMOUNT),
        modes=[(m.value, modes.DESCRIPTIONS[m]) for m in modes.Mode],
        notice=notice,
        done=DONE.get(request.query_params.get("done", "")),
        status=status,
    )


@get(f"{APPS}/{{client_id:str}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def app_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _app_page(request, client_id)


# --- keys ---------------------------------------------------------------------------------------


@post(
    f"{APPS}/{{client_id:str}}/keys", opt=roles.route(Action.KEYS_MANAGE), include_in_schema=False
)
async def create_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    now = hub.clock()
    scope = Scope.parse(field_of(data, "scope"))
    try:
        kind = keys.KeyKind(field_of(data, "kind") or keys.KeyKind.SERVICE.value)
    except ValueError:
        kind = None
    if scope is None or kind is None:
        return await _app_page(request, client_id, notice="Choose a scope and a kind.")
    name = field_of(data, "name").strip()[:200]
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            issued = keys.issue(db, hub.hasher, now, app.id, scope=scope, kind=kind, name=name)
            await db.flush()
            _audit_key(db, request, "key.created", issued.key, now)
    except DomainError as exc:  # a scope the kind cannot hold
        return await _app_page(request, client_id, notice=exc.message)
    return page(
        request,
        "secret.html",
        app=app,
        title=f"New {scope.value} key",
        secrets=[(f"{issued.key.key_id} ({kind.header})", issued.secret)],
    )


async def _key(db: AsyncSession, client_id: str, key_id: str) -> tuple[App, ApiKey]:
    app = await app_of(db, client_id)
    try:
        return app, await keys.get_key(db, app, key_id)
    except DomainError:
        raise Refused(404, "No such key.") from None


@post(
    f"{APPS}/{{client_id:str}}/keys/{{key_id:str}}/roll",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def roll_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], key_id: FromPath[str], data: Form
) -> Response[Any]:
    """A new secret of the same scope and kind; the old one works for the chosen overlap."""
    now = hub.clock()
    overlap = field_of(data, "overlap") or "86400"
    if overlap not in OVERLAPS:
        return await _app_page(request, client_id, notice="Choose one of the overlaps.")
    try:
        async with hub.db.transaction() as db:
            app, old = await _key(db, client_id, key_id)
            issued = await keys.roll(db, hub.hasher, now, old, timedelta(seconds=int(overlap)))
            _audit_key(db, request, "key.rolled", old, now)
    except DomainError as exc:
        return await _app_page(request, client_id, notice=exc.message)
    return page(
        request,
        "secret.html",
        app=app,
        title=f"Key {old.key_id} rolled",
        secrets=[(f"{issued.key.key_id} ({keys.KeyKind(issued.key.kind).header})", issued.secret)],
    )


@post(
    f"{APPS}/{{client_id:str}}/keys/{{key_id:str}}/revoke",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def revoke_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], key_id: FromPath[str]
) -> Response[Any]:
    now = hub.clock()
    async with hub.db.transaction() as db:
        _, key = await _key(db, client_id, key_id)
        await keys.revoke(db, now, key)
        _audit_key(db, request, "key.revoked", key, now)
    return go(request, f"{APPS}/{client_id}?done=revoked")


@post(
    f"{APPS}/{{client_id:str}}/keys/{{key_id:str}}/referers",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def key_referers(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], key_id: FromPath[str], data: Form
) -> Response[Any]:
    """S17: the page origins an ``app`` key may be used from (empty: any)."""

    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            _, key = await _key(db, client_id, key_id)
            if key.kind != keys.KeyKind.APP.value:
                raise Refused(400, "Only app keys are limited by referer.")
            entries = _lines(field_of(data, "referers"))
            new = parse_frame_origins(entries, allow_http=hub.settings.is_dev) or None
            old, key.allowed_referers = key.allowed_referers, new
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member_of(request)),
                action="key.referers_changed",
                target_type="api_key",
                target_id=key.key_id,
                app_id=key.app_id,
                detail={"old_referers": old, "new_referers": new},
            )
    except DomainError as exc:
        return await _app_page(request, client_id, notice=exc.message)
    return go(request, f"{APPS}/{client_id}?done=referers")


# --- app settings -------------------------------------------------------------------------------


async def _setting(request: AnyRequest, client_id: str, done: str, change: Any) -> Response[Any]:
    """Apply one of the partner services' audited setters as the signed-in member."""
    hub = hub_of(request)
    me = member_of(request)
    who = {"now": hub.clock(), "actor": services.member_actor(me)}
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            await change(db, app, me.email, who)
    except DomainError as exc:
        return await _app_page(request, client_id, notice=exc.message)
    return go(request, f"{APPS}/{client_id}?done={done}")


@post(
    f"{APPS}/{{client_id:str}}/ip-allowlist",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def ip_allowlist(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    cidrs = _lines(field_of(data, "cidrs")) or None
    return await _setting(
        request,
        client_id,
        "ip-allowlist",
        lambda db, app, name, who: partners.set_ip_allowlist(db, app, cidrs, name, **who),
    )


@post(
    f"{APPS}/{{client_id:str}}/frame-origins",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def frame_origins(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    origins = _lines(field_of(data, "origins")) or None
    allow_http = hub_of(request).settings.is_dev
    return await _setting(
        request,
        client_id,
        "frame-origins",
        lambda db, app, name, who: partners.set_frame_origins(
            db, app, origins, name, allow_http=allow_http, **who
        ),
    )


def _category_rules(text: str) -> list[AppRule]:
    """One rule a line, as the form shows them: ``category: keyword``, optionally followed by
    ``(credit)`` or ``(debit)``."""
    rules: list[AppRule] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*([a-z_]+)\s*:\s*(.+?)\s*(?:\((credit|debit)\))?\s*", line)
        if m is None:
            raise InvalidInput(
                f"Line {number}: write a rule as 'category: keyword', optionally with "
                "(credit) or (debit).",
                code=ErrorCode.DATA_INVALID,
            )
        sign: Sign = "credit" if m[3] == "credit" else "debit" if m[3] == "debit" else "any"
        rules.append(AppRule(m[1], m[2], sign))
    return rules


@post(
    f"{APPS}/{{client_id:str}}/category-rules",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def category_rules(
    request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """The app's own categorization rules (``PUT /v2/app/category-rules`` from the dashboard)."""
    try:
        rules = _category_rules(field_of(data, "rules"))
    except DomainError as exc:
        return await _app_page(request, client_id, notice=exc.message)
    return await _setting(
        request,
        client_id,
        "category-rules",
        lambda db, app, name, who: partners.set_category_rules(db, app, rules, name, **who),
    )


@post(
    f"{APPS}/{{client_id:str}}/retention",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def retention(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    text = field_of(data, "hours").strip()
    hours = int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 0
    return await _setting(
        request,
        client_id,
        "retention",
        lambda db, app, name, who: partners.set_retention(db, app, hours, name, **who),
    )


@post(
    f"{APPS}/{{client_id:str}}/mode",
    opt=roles.route(Action.APP_MODE),
    include_in_schema=False,
)
async def app_mode(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """Sandbox, live or both (``bankhub.partners.modes``); owner and admin, re-authenticated."""
    value = field_of(data, "mode")
    if value not in {m.value for m in modes.Mode}:
        return await _app_page(request, client_id, notice="Choose sandbox, live or both.")
    now = hub.clock()
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        await modes.set_mode(
            db, app, value, actor=services.member_actor(member_of(request)), now=now
        )
    return go(request, f"{APPS}/{client_id}?done=mode")


APP_ROUTES = [
    apps_page,
    create_app,
    app_page,
    create_key,
    roll_key,
    revoke_key,
    key_referers,
    ip_allowlist,
    frame_origins,
    category_rules,
    retention,
    app_mode,
]
