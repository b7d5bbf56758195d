"""Apps and their keys and settings, managed by members (the same services ``/v2/keys`` and
``/v2/app/*`` use). A post that makes secrets (an app, a key, a roll) keeps them for its session
and redirects to a page that shows them once (``dashboard.pending``): a reload creates nothing
and shows nothing again. Revoking a key and rolling one without overlap are confirmed first;
the last live master key cannot be revoked. Apps are renamed, archived (their keys refused)
and restored. Key changes, network settings and archiving need a recent re-authentication (S7,
enforced by the guard); every change is audited with the member's name."""

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
from bankhub.dashboard import pending, roles, services
from bankhub.dashboard.pages import (
    PREFIX,
    Refused,
    confirm_page,
    confirmed,
    field_of,
    go,
    member_of,
    page,
    safe_next,
    visit_of,
)
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
    "renamed": "The app was renamed.",
    "archived": "The app was archived: its keys and tokens are refused until it is restored.",
    "restored": "The app was restored: its live keys work again.",
}
#: the app list's filter: which apps it shows
SHOWN = {"live": False, "archived": True, "all": None}


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


async def _apps_page(
    request: AnyRequest,
    *,
    errors: dict[str, str] | None = None,
    name: str = "",
    status: int = 200,
) -> Response[Any]:
    hub = hub_of(request)
    show = request.query_params.get("show", "live")
    show = show if show in SHOWN else "live"
    async with hub.db.transaction() as db:
        apps = await partners.list_apps(db, archived=SHOWN[show])
        archived = len(await partners.list_apps(db, archived=True))
    return page(
        request,
        "apps.html",
        apps=apps,
        show=show,
        archived_count=archived,
        errors=errors or {},
        name=name,
        done=DONE.get(request.query_params.get("done", "")),
        status=status,
    )


@get(APPS, opt=roles.route(Action.VIEW), include_in_schema=False)
async def apps_page(request: AnyRequest) -> Response[Any]:
    """Live apps by default; ``?show=archived`` or ``?show=all`` for the others."""
    return await _apps_page(request)


def _session_id(request: AnyRequest) -> int:
    session = visit_of(request).session
    if session is None:  # the guard lets no member's page through without one
        raise Refused(401, "Please sign in.")
    return session.id


async def show_once(
    request: AnyRequest,
    db: AsyncSession,
    app: App,
    title: str,
    secrets: list[tuple[str, str]],
    *,
    back: tuple[str, str] | None = None,
    mark: str = "",
) -> str:
    """Keep new secrets for this session's one-time page; its address (no secret in it).
    ``back``: the page it leads back to, and that page's name (the app's page by default);
    ``mark``: the element id of the last secret (a webhook's signing secret is found by it)."""
    hub = hub_of(request)
    payload = {
        "title": title,
        "client_id": app.client_id,
        "app_name": app.name,
        "secrets": [list(pair) for pair in secrets],
        "back": list(back) if back else [],
        "mark": mark,
    }
    handle = await pending.keep(
        db, hub.keyring, hub.clock(), _session_id(request), "secret", payload
    )
    return f"{PREFIX}/shown/{handle}"


@post(APPS, opt=roles.route(Action.APP_CREATE), include_in_schema=False)
async def create_app(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """A new app with its seed keys; their secrets are shown once on the page it leads to."""
    given = field_of(data, "name")
    try:
        name = partners.app_name(given)
    except DomainError as exc:
        return await _apps_page(request, errors={"name": f"{exc.message}."}, name=given)
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
        shown = await show_once(
            request,
            db,
            issued.app,
            "App created",
            [
                ("client-id", issued.app.client_id),
                ("service-secret (master key)", issued.service_secret),
                ("app-secret (write key for apps)", issued.app_secret),
            ],
        )
    return go(request, shown)


def _back(kept: object) -> tuple[str, str] | None:
    if isinstance(kept, list) and len(kept) == 2:
        return safe_next(str(kept[0])), str(kept[1])
    return None


@get(f"{PREFIX}/shown/{{handle:str}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def shown_once(hub: HubDep, request: AnyRequest, handle: FromPath[str]) -> Response[Any]:
    """The one showing of secrets a post of this session made. This GET changes state on
    purpose: the showing is what uses them up, so that a reload or the back button finds them
    gone (410) instead of posting again; nothing else is created or shown."""
    now = hub.clock()
    async with hub.db.transaction() as db:
        taken = await pending.take(db, hub.keyring, now, _session_id(request), handle, "secret")
    values = taken.payload or {}
    if taken.state == "fresh":
        secrets = [(str(label), str(value)) for label, value in values.get("secrets", [])]
        return page(
            request,
            "secret.html",
            title=str(values.get("title", "Secrets")),
            secrets=secrets,
            app_client_id=str(values.get("client_id", "")),
            app_name=str(values.get("app_name", "")),
            back=_back(values.get("back")),
            mark=str(values.get("mark", "")),
            gone="",
        )
    if taken.state == "used" and taken.used_at is not None:
        gone = (
            "These secrets were already shown, at "
            f"{taken.used_at.strftime('%H:%M:%S UTC')}, and are not shown again."
        )
        status = 410
    else:
        gone = (
            "There is nothing to show here: secrets wait a few minutes for this page, in the "
            "browser session that made them."
        )
        status = 404
    return page(
        request,
        "secret.html",
        title="Already shown",
        secrets=[],
        app_client_id="",
        app_name="",
        back=None,
        mark="",
        gone=gone,
        status=status,
    )


async def _app_page(
    request: AnyRequest,
    client_id: str,
    *,
    notice: str | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
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
        errors=errors or {},
        values=values or {},
        done=DONE.get(request.query_params.get("done", "")),
        status=status,
    )


@get(f"{APPS}/{{client_id:str}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def app_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _app_page(request, client_id)


# --- the app: name, archive -----------------------------------------------------------------


@post(
    f"{APPS}/{{client_id:str}}/rename", opt=roles.route(Action.APP_MANAGE), include_in_schema=False
)
async def rename_app(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    given = field_of(data, "name")
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            await partners.rename_app(
                db, app, given, now=hub.clock(), actor=services.member_actor(member_of(request))
            )
    except DomainError as exc:
        return await _app_page(
            request, client_id, errors={"app_name": f"{exc.message}."}, values={"app_name": given}
        )
    return go(request, f"{APPS}/{client_id}?done=renamed")


def _archive_confirmation(request: AnyRequest, app: App) -> Response[Any]:
    return confirm_page(
        request,
        title=f"Archive {app.name}?",
        consequences=[
            f"Every API key of {app.name} is refused from the next request on, with the error "
            "AppArchived; so are its OAuth tokens.",
            "Its logins are not refreshed while it is archived: their banks are not asked.",
            "Its data, keys, webhooks and settings are kept; nothing is deleted.",
            "The app leaves the list of apps (it stays under “Archived”) until it is restored, "
            "which makes its live keys work again and its logins refreshed within six hours.",
        ],
        action=f"{APPS}/{app.client_id}/archive",
        button="Archive app",
        back=f"{APPS}/{app.client_id}",
    )


@get(f"{APPS}/{{client_id:str}}/archive", opt=roles.route(Action.VIEW), include_in_schema=False)
async def archive_page(hub: HubDep, request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    _may(request, Action.APP_MANAGE)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
    return _archive_confirmation(request, app)


@post(
    f"{APPS}/{{client_id:str}}/archive", opt=roles.route(Action.APP_MANAGE), include_in_schema=False
)
async def archive_app(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """Audited as ``app.archived``; confirmed first."""
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        if not confirmed(data):
            return _archive_confirmation(request, app)
        await partners.archive_app(
            db, app, now=hub.clock(), actor=services.member_actor(member_of(request))
        )
    return go(request, f"{APPS}/{client_id}?done=archived")


@post(
    f"{APPS}/{{client_id:str}}/restore", opt=roles.route(Action.APP_MANAGE), include_in_schema=False
)
async def restore_app(hub: HubDep, request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    """Audited as ``app.restored``; nothing to confirm: it takes nothing away."""
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        await partners.restore_app(
            db, app, now=hub.clock(), actor=services.member_actor(member_of(request))
        )
    return go(request, f"{APPS}/{client_id}?done=restored")


# --- keys ---------------------------------------------------------------------------------------


def _may(request: AnyRequest, action: Action) -> None:
    """A confirmation page (a GET, so the guard checked only ``view``) is for those who may do
    what it confirms."""
    if not visit_of(request).can(action.value):
        raise Refused(403, "Your role does not allow this.")


@post(
    f"{APPS}/{{client_id:str}}/keys", opt=roles.route(Action.KEYS_MANAGE), include_in_schema=False
)
async def create_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    now = hub.clock()
    given = {name: field_of(data, name) for name in ("scope", "kind", "name")}
    given["key_name"] = given.pop("name")
    errors: dict[str, str] = {}
    scope = Scope.parse(given["scope"])
    if scope is None:
        errors["scope"] = "Choose a scope: read, write or master."
    try:
        kind = keys.KeyKind(given["kind"] or keys.KeyKind.SERVICE.value)
    except ValueError:
        kind = None
        errors["kind"] = "Choose a kind: service or app."
    name = given["key_name"].strip()
    if len(name) > 200 or not name.isprintable():
        errors["key_name"] = "Name the key in at most 200 printable characters (or leave it empty)."
    if scope is None or kind is None or errors:
        return await _app_page(request, client_id, errors=errors, values=given)
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            issued = keys.issue(db, hub.hasher, now, app.id, scope=scope, kind=kind, name=name)
            await db.flush()
            _audit_key(db, request, "key.created", issued.key, now)
            shown = await show_once(
                request,
                db,
                app,
                f"New {scope.value} key",
                [(f"{issued.key.key_id} ({kind.header})", issued.secret)],
            )
    except DomainError as exc:  # a scope the kind cannot hold
        return await _app_page(
            request, client_id, errors={"scope": f"{exc.message}."}, values=given
        )
    return go(request, shown)


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
    """A new secret of the same scope and kind; the old one works for the chosen overlap. With
    no overlap the old key stops at once: that is confirmed first."""
    now = hub.clock()
    overlap = field_of(data, "overlap") or "86400"
    if overlap not in OVERLAPS:
        return await _app_page(request, client_id, notice="Choose one of the overlaps.")
    try:
        async with hub.db.transaction() as db:
            app, old = await _key(db, client_id, key_id)
            if overlap == "0" and not confirmed(data) and keys.is_live(old, now):
                return confirm_page(
                    request,
                    title=f"Roll {old.key_id} with no overlap?",
                    consequences=[
                        f"A new {old.scope} {old.kind} key is made; its secret is shown once.",
                        f"The old key {old.key_id} stops at once: every server or app still "
                        "using it is refused (KeyRevoked) until it has the new secret.",
                        "To give them time to switch, go back and choose an overlap instead.",
                    ],
                    action=f"{APPS}/{client_id}/keys/{old.key_id}/roll",
                    button="Roll now, stop the old key",
                    back=f"{APPS}/{client_id}",
                    fields={"overlap": "0"},
                )
            issued = await keys.roll(db, hub.hasher, now, old, timedelta(seconds=int(overlap)))
            _audit_key(db, request, "key.rolled", old, now)
            shown = await show_once(
                request,
                db,
                app,
                f"Key {old.key_id} rolled",
                [
                    (
                        f"{issued.key.key_id} ({keys.KeyKind(issued.key.kind).header})",
                        issued.secret,
                    )
                ],
            )
    except DomainError as exc:
        return await _app_page(request, client_id, notice=exc.message)
    return go(request, shown)


#: why the last live master key stays (the dashboard's answer to revoking it)
LAST_MASTER = (
    "This is the app's last live master key, so it cannot be revoked: without one, nobody "
    "could manage the app's keys through the API. Create another master key first, or roll "
    "this one (its replacement is a master key)."
)


async def _revocation(
    db: AsyncSession, client_id: str, key_id: str, now: datetime
) -> tuple[App, ApiKey, bool]:
    """The app, the key, and whether it is the app's last live master key."""
    app, key = await _key(db, client_id, key_id)
    last = False
    if key.scope == Scope.MASTER.value and keys.is_live(key, now):
        others = [k for k in await keys.live_masters(db, app, now) if k.id != key.id]
        last = not others
    return app, key, last


def _revoke_confirmation(request: AnyRequest, app: App, key: ApiKey) -> Response[Any]:
    return confirm_page(
        request,
        title=f"Revoke {key.key_id}?",
        consequences=[
            f"The {key.scope} {key.kind} key {key.key_id} ({key.name}) of {app.name} is refused "
            "from the next request on (KeyRevoked), and so are OAuth tokens made with it.",
            "This cannot be undone: a revoked key never works again.",
        ],
        action=f"{APPS}/{app.client_id}/keys/{key.key_id}/revoke",
        button="Revoke key",
        back=f"{APPS}/{app.client_id}",
    )


@get(
    f"{APPS}/{{client_id:str}}/keys/{{key_id:str}}/revoke",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def revoke_key_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], key_id: FromPath[str]
) -> Response[Any]:
    _may(request, Action.KEYS_MANAGE)
    async with hub.db.transaction() as db:
        app, key, last = await _revocation(db, client_id, key_id, hub.clock())
    if last:
        return await _app_page(request, client_id, notice=LAST_MASTER, status=409)
    return _revoke_confirmation(request, app, key)


@post(
    f"{APPS}/{{client_id:str}}/keys/{{key_id:str}}/revoke",
    opt=roles.route(Action.KEYS_MANAGE),
    include_in_schema=False,
)
async def revoke_key(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], key_id: FromPath[str], data: Form
) -> Response[Any]:
    """Confirmed first; the app's last live master key is refused (``LAST_MASTER``)."""
    now = hub.clock()
    async with hub.db.transaction() as db:
        app, key, last = await _revocation(db, client_id, key_id, now)
        if last:
            refused = True
        elif not confirmed(data):
            return _revoke_confirmation(request, app, key)
        else:
            refused = False
            await keys.revoke(db, now, key)
            _audit_key(db, request, "key.revoked", key, now)
    if refused:
        return await _app_page(request, client_id, notice=LAST_MASTER, status=409)
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


async def _setting(
    request: AnyRequest, client_id: str, done: str, change: Any, field: tuple[str, str]
) -> Response[Any]:
    """Apply one of the partner services' audited setters as the signed-in member; refused,
    the form shows what was typed (``field``: its name and value) with the error at it."""
    hub = hub_of(request)
    me = member_of(request)
    who = {"now": hub.clock(), "actor": services.member_actor(me)}
    try:
        async with hub.db.transaction() as db:
            app = await app_of(db, client_id)
            await change(db, app, me.email, who)
    except DomainError as exc:
        return await _field_error(request, client_id, field, exc.message)
    return go(request, f"{APPS}/{client_id}?done={done}")


async def _field_error(
    request: AnyRequest, client_id: str, field: tuple[str, str], message: str
) -> Response[Any]:
    name, typed = field
    return await _app_page(request, client_id, errors={name: message}, values={name: typed})


@post(
    f"{APPS}/{{client_id:str}}/ip-allowlist",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def ip_allowlist(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    typed = field_of(data, "cidrs")
    cidrs = _lines(typed) or None
    return await _setting(
        request,
        client_id,
        "ip-allowlist",
        lambda db, app, name, who: partners.set_ip_allowlist(db, app, cidrs, name, **who),
        ("cidrs", typed),
    )


@post(
    f"{APPS}/{{client_id:str}}/frame-origins",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def frame_origins(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    typed = field_of(data, "origins")
    origins = _lines(typed) or None
    allow_http = hub_of(request).settings.is_dev
    return await _setting(
        request,
        client_id,
        "frame-origins",
        lambda db, app, name, who: partners.set_frame_origins(
            db, app, origins, name, allow_http=allow_http, **who
        ),
        ("origins", typed),
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
    typed = field_of(data, "rules")
    try:
        rules = _category_rules(typed)
    except DomainError as exc:
        return await _field_error(request, client_id, ("rules", typed), exc.message)
    return await _setting(
        request,
        client_id,
        "category-rules",
        lambda db, app, name, who: partners.set_category_rules(db, app, rules, name, **who),
        ("rules", typed),
    )


@post(
    f"{APPS}/{{client_id:str}}/retention",
    opt=roles.route(Action.APP_SETTINGS),
    include_in_schema=False,
)
async def retention(request: AnyRequest, client_id: FromPath[str], data: Form) -> Response[Any]:
    typed = field_of(data, "hours")
    text = typed.strip()
    hours = int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 0
    return await _setting(
        request,
        client_id,
        "retention",
        lambda db, app, name, who: partners.set_retention(db, app, hours, name, **who),
        ("hours", typed),
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
    shown_once,
    app_page,
    rename_app,
    archive_page,
    archive_app,
    restore_app,
    create_key,
    roll_key,
    revoke_key_page,
    revoke_key,
    key_referers,
    ip_allowlist,
    frame_origins,
    category_rules,
    retention,
    app_mode,
]
