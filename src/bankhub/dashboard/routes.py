"""Signing up, in and out, enrolment, re-authentication, the team and the mail settings.

Every handler declares its action (``roles.route``); the router's guard enforces it. Forms are
posted, checked and answered with a redirect (post/redirect/get), also where a secret is shown
once (recovery codes, invitation links): it waits, sealed in the session's pending store, for
the one page that shows it, so that a reload shows nothing and makes nothing again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from litestar.response import File
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.principal import HubDep, hub_of, public_url
from bankhub.audit import services as audit
from bankhub.dashboard import alerts, devices, glance, mail, paging, pending, roles, services, totp
from bankhub.dashboard.models import Member
from bankhub.dashboard.pages import (
    HOME,
    PREFIX,
    SIGN_IN,
    Refused,
    clear_session_cookie,
    confirm_page,
    confirmed,
    field_of,
    forget_session,
    go,
    member_of,
    own_origin,
    page,
    safe_next,
    session_cookie,
    visit_of,
)
from bankhub.dashboard.roles import Action, Role
from bankhub.dashboard.services import FormError, SignInRefused
from bankhub.hub import Hub
from bankhub.partners.models import App
from bankhub.security import tls
from bankhub.usage import charts

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]
STATIC = Path(__file__).parent / "static"
#: new recovery codes, shown once at ``<this>/<handle>`` after the post that made them
RECOVERY_CODES = f"{PREFIX}/account/recovery-codes"
#: the team in the order its members joined
MEMBERS = paging.Keyset((paging.Key(Member.id, "int"),), descending=False)

DONE = {
    "removed": "The member was removed and their sessions ended.",
    "smtp-saved": "The mail settings were saved.",
    "reauth": "Thank you. You can make the change now.",
    "role-changed": "The member's role was changed; it applies from their next page.",
    "invite-revoked": "The invitation was revoked: its link no longer works.",
    "invite-resent": "A new invitation was mailed; the earlier link no longer works.",
}


def _done(request: AnyRequest) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


@get(f"{PREFIX}/static/dashboard.css", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def stylesheet() -> File:
    return File(
        path=STATIC / "dashboard.css",
        media_type="text/css",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@get(f"{PREFIX}/static/charts.css", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def chart_stylesheet() -> File:
    """The usage charts' own stylesheet (``bankhub.usage.charts.STYLESHEET``)."""
    return File(
        path=charts.STYLESHEET,
        media_type="text/css",
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# --- first owner --------------------------------------------------------------------------------


#: outside dev, why there is no sign-up page
BOOTSTRAP_ONLY = (
    "The team's first owner is created with a single-use link: on the server, run "
    "`bankhub team bootstrap EMAIL` and open the link it prints."
)


def _open_sign_up(hub: Hub) -> None:
    """Outside dev nobody signs up: whoever reached a fresh server first would own it, with
    every app's keys and data one click away. The operator's bootstrap link replaces it."""
    if not hub.settings.is_dev:
        raise Refused(403, BOOTSTRAP_ONLY)


@get(f"{PREFIX}/sign-up", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def sign_up_page(hub: HubDep, request: AnyRequest) -> Response[Any]:
    _open_sign_up(hub)
    async with hub.db.transaction() as db:
        if await services.count_members(db):
            return go(request, SIGN_IN)
    return page(request, "sign_up.html", email="", errors={})


def _errors(exc: FormError, default: str) -> dict[str, str]:
    """A form's error at its field (the one the message is about, else ``default``)."""
    return {exc.field or default: str(exc)}


@post(f"{PREFIX}/sign-up", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def sign_up(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """Only in dev, while the team has no member: the first person becomes its owner."""
    _open_sign_up(hub)
    email, password = field_of(data, "email"), field_of(data, "password")
    if password != field_of(data, "password2"):
        return page(
            request, "sign_up.html", email=email, errors={"password2": "The passwords differ."}
        )
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            await services.lock_first_owner(db)
            if await services.count_members(db):
                raise Refused(403, "The team has an owner; ask them for an invitation.")
            member = await services.create_member(db, hub.keyring, now, email, password, Role.OWNER)
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member),
                action="member.first_owner",
                target_type="member",
                target_id=member.id,
            )
            started = await services.start_session(db, hub.hasher, member, services.ENROL, now)
    except FormError as exc:
        return page(request, "sign_up.html", email=email, errors=_errors(exc, "password"))
    return _enter(request, hub, started.token, f"{PREFIX}/enrol")


def _enter(request: AnyRequest, hub: Hub, token: str, location: str) -> Response[Any]:
    visit = visit_of(request)
    return go(request, location, cookies=[session_cookie(hub, visit, token)])


# --- sign-in ------------------------------------------------------------------------------------


@get(SIGN_IN, opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def sign_in_page(hub: HubDep, request: AnyRequest) -> Response[Any]:
    visit = visit_of(request)
    if visit.session is not None and visit.session.stage == services.ACTIVE:
        return go(request, HOME)
    async with hub.db.transaction() as db:
        first = await services.count_members(db) == 0
    return page(request, "sign_in.html", first=first, open_sign_up=hub.settings.is_dev, email="")


@post(SIGN_IN, opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def sign_in(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """Step one: the password. A new session id either way it goes on (S6)."""
    email = field_of(data, "email")
    now = hub.clock()
    async with hub.db.transaction() as db:
        try:
            member = await services.check_password(
                db, email, field_of(data, "password"), now, hub.settings
            )
        except SignInRefused as exc:
            refused = str(exc)
        else:
            refused = ""
            stage = services.CODE if services.enrolled(member) else services.ENROL
            old = visit_of(request).session
            started = await services.start_session(db, hub.hasher, member, stage, now)
            if old is not None:
                await services.end_session(db, old)
    if refused:
        return page(request, "sign_in.html", first=False, email=email[:254], notice=refused)
    target = f"{SIGN_IN}/code" if stage == services.CODE else f"{PREFIX}/enrol"
    return _enter(request, hub, started.token, target)


@get(f"{SIGN_IN}/code", opt=roles.route(Action.SIGN_IN_CODE), include_in_schema=False)
async def code_page(request: AnyRequest) -> Response[Any]:
    return page(request, "sign_in_code.html")


@post(f"{SIGN_IN}/code", opt=roles.route(Action.SIGN_IN_CODE), include_in_schema=False)
async def sign_in_code(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """Step two: a TOTP code or a recovery code. Failures count towards the block (S5)."""
    visit = visit_of(request)
    now = hub.clock()
    row = visit.session
    async with hub.db.transaction() as db:
        member = await db.get(Member, member_of(request).id)
        if member is None or row is None:
            raise Refused(401, "Please sign in again.")
        try:
            how = services.check_code(
                db, hub.keyring, hub.hasher, member, field_of(data, "code"), now, hub.settings
            )
        except SignInRefused as exc:
            refused = str(exc)
            if services.is_locked(member, now):
                await services.end_sessions_of(db, member.id)
        else:
            refused = ""
            services.signed_in(db, member, now, how)
            fresh = await services.start_session(
                db, hub.hasher, member, services.ACTIVE, now, replacing=row
            )
            device = devices.device_token(request, visit.secure)
            if alerts.remember(hub.hasher, member, device):
                alert = devices.new_browser(request, member, now)
                audit.record(
                    db,
                    now=now,
                    actor=services.member_actor(member),
                    action="member.new_browser",
                    target_type="member",
                    target_id=member.id,
                    detail={"address": alert.address, "browser": alert.agent},
                )
                # mailed by the runner once this commits: a slow or failing mail server never
                # holds up signing in, and a failed mail is retried
                await alerts.queue_alert(db, alert, now)
    if refused and services.is_locked(member, now):
        forget_session(request)
        return page(request, "sign_in.html", first=False, email=member.email, notice=refused)
    if refused:
        return page(request, "sign_in_code.html", notice=refused)
    response = _enter(request, hub, fresh.token, HOME)
    response.cookies.append(devices.device_cookie(device, visit.secure))
    return response


@post(f"{PREFIX}/sign-out", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def sign_out(hub: HubDep, request: AnyRequest) -> Response[Any]:
    """Ends the session on the server, not only in the browser (S6)."""
    visit = visit_of(request)
    if visit.session is not None:
        async with hub.db.transaction() as db:
            await services.end_session(db, visit.session)
    return go(request, SIGN_IN, cookies=[clear_session_cookie(visit)])


# --- enrolment ----------------------------------------------------------------------------------


@get(f"{PREFIX}/enrol", opt=roles.route(Action.ENROL), include_in_schema=False)
async def enrol_page(request: AnyRequest) -> Response[Any]:
    return _enrol_form(request, None)


def _enrol_form(request: AnyRequest, notice: str | None) -> Response[Any]:
    hub = hub_of(request)
    member = member_of(request)
    seed = services.enrolment_seed(hub.keyring, member)
    uri = totp.provisioning_uri(seed, member.email)
    return page(
        request,
        "enrol.html",
        qr=totp.qr_data_uri(uri),
        otpauth=uri,
        manual_key=totp.seed_text(seed),
        reset=member.totp_pending_enc is not None,
        notice=notice,
    )


@post(f"{PREFIX}/enrol", opt=roles.route(Action.ENROL), include_in_schema=False)
async def enrol(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """The first code proves the app has the seed; the recovery codes are shown once, on the
    page it leads to."""
    visit = visit_of(request)
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            member = await db.get(Member, member_of(request).id)
            if member is None or visit.session is None:
                raise Refused(401, "Please sign in again.")
            reset = member.totp_pending_enc is not None
            codes = services.confirm_enrolment(
                hub.keyring, hub.hasher, member, field_of(data, "code"), now
            )
            if reset:  # whoever held the lost authenticator's sessions is signed out
                await services.end_sessions_of(db, member.id)
            services.signed_in(db, member, now, "enrolment")
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member),
                action="member.mfa_reset" if reset else "member.mfa_enrolled",
                target_type="member",
                target_id=member.id,
            )
            fresh = await services.start_session(
                db,
                hub.hasher,
                member,
                services.ACTIVE,
                now,
                replacing=visit.session,
            )
            # the first sign-in: this browser is the member's own, no alert
            device = devices.device_token(request, visit.secure)
            alerts.remember(hub.hasher, member, device)
            # kept for the new session: ending the enrolment's session took what it held
            shown = await keep_recovery_codes(db, hub, fresh.row.id, codes, renewed=False)
    except FormError as exc:
        return _enrol_form(request, str(exc))
    return go(
        request,
        shown,
        cookies=[
            session_cookie(hub, visit, fresh.token),
            devices.device_cookie(device, visit.secure),
        ],
    )


async def keep_recovery_codes(
    db: AsyncSession, hub: Hub, session_id: int, codes: list[str], *, renewed: bool
) -> str:
    """Post/redirect/get for new recovery codes: they wait, sealed, for the session's one page
    that shows them (its address is returned). Rendered at the POST's address, a reload posted
    the form again: a renewal made yet another set, and the set just written down stopped
    working."""
    payload = {"codes": codes, "renewed": renewed}
    handle = await pending.keep(db, hub.keyring, hub.clock(), session_id, "recovery", payload)
    return f"{RECOVERY_CODES}/{handle}"


@get(f"{RECOVERY_CODES}/{{handle:str}}", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def recovery_codes(hub: HubDep, request: AnyRequest, handle: FromPath[str]) -> Response[Any]:
    """The one showing of new recovery codes; a reload finds them shown (410) and makes
    nothing: the codes shown keep working."""
    session = visit_of(request).session
    if session is None:  # the guard lets no member's page through without one
        raise Refused(401, "Please sign in.")
    async with hub.db.transaction() as db:
        taken = await pending.take(db, hub.keyring, hub.clock(), session.id, handle, "recovery")
    values = taken.payload or {}
    if taken.state == "fresh":
        codes = [str(code) for code in values.get("codes", [])]
        return page(
            request, "recovery_codes.html", codes=codes, renewed=bool(values.get("renewed"))
        )
    if taken.state == "used" and taken.used_at is not None:
        gone = (
            "These recovery codes were shown once already, at "
            f"{taken.used_at.strftime('%H:%M:%S UTC')}, and are not shown again."
        )
        return page(request, "recovery_codes.html", codes=[], gone=gone, status=410)
    gone = (
        "There are no recovery codes to show here: new codes wait a few minutes for this page, "
        "in the browser session that made them."
    )
    return page(request, "recovery_codes.html", codes=[], gone=gone, status=404)


# --- re-authentication (S7) ---------------------------------------------------------------------

#: what a waiting change is, in the words of the re-authentication page
WAITING = {
    Action.KEYS_MANAGE.value: "the change to the app's API keys",
    Action.APP_SETTINGS.value: "the change to the app's settings",
    Action.APP_MODE.value: "the app's new mode",
    Action.APP_MANAGE.value: "the change to the app",
    Action.CONSENT_MANAGE.value: "the erasure you confirmed",
    Action.TEAM_REMOVE.value: "removing the member",
    Action.WEBHOOKS_MANAGE.value: "the change to the webhook endpoint",
    Action.OAUTH_REVOKE.value: "revoking the grant",
    Action.PAYMENTS_SWITCH.value: "the payment settings",
}


async def _waiting(request: AnyRequest, handle: str) -> dict[str, Any] | None:
    hub = hub_of(request)
    session = visit_of(request).session
    if not handle or session is None:
        return None
    async with hub.db.transaction() as db:
        return await pending.peek(db, hub.keyring, hub.clock(), session.id, handle, "action")


def _reauth_form(
    request: AnyRequest, nxt: str, handle: str, waiting: dict[str, Any] | None, **extra: Any
) -> Response[Any]:
    what = WAITING.get(str(waiting.get("action")), "your change") if waiting else ""
    return page(
        request,
        "reauth.html",
        next=nxt,
        pending=handle if waiting else "",
        waiting=what,
        **extra,
    )


@get(f"{PREFIX}/reauth", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def reauth_page(request: AnyRequest) -> Response[Any]:
    handle = (request.query_params.get("pending") or "")[:43]
    waiting = await _waiting(request, handle)
    nxt = safe_next(str(waiting["back"]) if waiting else request.query_params.get("next"))
    return _reauth_form(request, nxt, handle, waiting)


@post(f"{PREFIX}/reauth", opt=roles.route(Action.ACCOUNT), include_in_schema=False)
async def reauth(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """Password and code again; sensitive changes are allowed for a few minutes after. A change
    that waited for them (``pending``) is carried out now, once."""
    visit = visit_of(request)
    nxt = safe_next(field_of(data, "next"))
    handle = field_of(data, "pending")[:43]
    now = hub.clock()
    me = member_of(request)
    async with hub.db.transaction() as db:
        refused = ""
        try:
            member = await services.check_password(
                db, me.email, field_of(data, "password"), now, hub.settings
            )
            services.check_code(
                db, hub.keyring, hub.hasher, member, field_of(data, "code"), now, hub.settings
            )
        except SignInRefused as exc:
            refused = str(exc)
        else:
            if visit.session is not None:
                row = await db.merge(visit.session)
                row.reauth_at = now
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member),
                action="member.reauthenticated",
                target_type="member",
                target_id=member.id,
            )
    if refused:
        waiting = await _waiting(request, handle)
        return _reauth_form(request, nxt, handle, waiting, notice=refused)
    if handle and visit.session is not None:
        async with hub.db.transaction() as db:
            taken = await pending.take(db, hub.keyring, now, visit.session.id, handle, "action")
        if taken.state == "fresh" and taken.payload is not None:
            return await _replay(request, taken.payload)
    separator = "&" if "?" in nxt else "?"
    return go(request, f"{nxt}{separator}done=reauth")


#: request headers the replayed post does not inherit (it sets its own body and Origin)
_NOT_REPLAYED = {b"content-type", b"content-length", b"origin", b"referer", b"transfer-encoding"}


async def _replay(request: AnyRequest, waiting: dict[str, Any]) -> Response[Any]:
    """Carry out a post that waited for re-authentication: the same form, sent through the
    whole application again as this browser (its cookie, a fresh CSRF token, our Origin), so
    that the guard checks it as any post (role, CSRF, the fresh re-authentication) and the
    route answers as it would have. Its answer (a redirect, mostly) is this one's."""
    path = safe_next(str(waiting.get("path", "")))
    fields = [(str(k), str(v)) for k, v in waiting.get("fields", [])]
    body = urlencode([*fields, ("csrf", visit_of(request).csrf)]).encode()
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() not in _NOT_REPLAYED]
    headers += [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", str(len(body)).encode()),
        (b"origin", own_origin(request).encode("latin-1")),
    ]
    scope: dict[str, Any] = {
        key: request.scope[key]
        for key in ("type", "asgi", "http_version", "scheme", "server", "client", "root_path")
        if key in request.scope
    }
    scope.update(
        method="POST",
        path=path,
        raw_path=path.encode(),
        query_string=b"",
        headers=headers,
        state={},
    )
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # nothing more: the peer stays connected
        return {"type": "http.disconnect"}

    answer: dict[str, Any] = {"status": 500, "headers": [], "body": []}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer["body"].append(message.get("body", b""))

    # a task of its own: the context the inner request sets (tenant, request id) stays there
    await asyncio.create_task(request.app(scope, receive, send))  # type: ignore[arg-type]
    kept = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in answer["headers"]
        if name.lower() not in (b"set-cookie", b"content-length", b"content-type")
    }
    # the media type alone: the response adds its own charset parameter
    media = next(
        (
            v.decode("latin-1").split(";", 1)[0].strip()
            for n, v in answer["headers"]
            if n.lower() == b"content-type"
        ),
        None,
    )
    return Response(
        content=b"".join(answer["body"]),
        status_code=int(answer["status"]),
        headers=kept,
        media_type=media,
    )


# --- overview -----------------------------------------------------------------------------------


@get(PREFIX, opt=roles.route(Action.VIEW), include_in_schema=False)
async def overview(hub: HubDep, request: AnyRequest) -> Response[Any]:
    """At a glance: charts of the chosen period (``period``) for one app (``app``) or all."""
    period = glance.period_of(request.query_params.get("period"))
    wanted = (request.query_params.get("app") or "")[:64]
    async with hub.db.transaction() as db:
        apps = list((await db.execute(select(App).order_by(App.id))).scalars())
        chosen = next((a for a in apps if a.client_id == wanted), None)
        ids = [chosen.id] if chosen is not None else [a.id for a in apps]
        members = await services.count_members(db)
        shown = await glance.build(db, ids, period, hub.clock())
    return page(
        request,
        "overview.html",
        apps=apps,
        app_count=len(apps),
        members=members,
        chosen=chosen,
        glance=shown,
        periods=list(glance.PERIODS.values()),
        done=_done(request),
    )


# --- team ---------------------------------------------------------------------------------------


async def _team_page(
    request: AnyRequest,
    *,
    notice: str | None = None,
    link: str | None = None,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> Response[Any]:
    hub = hub_of(request)
    me = member_of(request)
    async with hub.db.transaction() as db:
        found = await paging.fetch(
            db, select(Member), MEMBERS, paging.window_of(request.query_params), count=True
        )
        invites = await services.open_invites(db, hub.clock())
    assignable = [r.value for r in Role if roles.may_manage(me.role, r)]
    return page(
        request,
        "team.html",
        members=found.rows,
        found=found,
        invites=invites,
        roles=assignable,
        may_remove=lambda m: m.id != me.id and roles.may_manage(me.role, m.role),
        may_manage=lambda role: roles.may_manage(me.role, role),
        link=link,
        notice=notice or found.problem,
        errors=errors or {},
        values=values or {},
        done=_done(request),
        status=status,
    )


@get(f"{PREFIX}/team", opt=roles.route(Action.VIEW), include_in_schema=False)
async def team(request: AnyRequest) -> Response[Any]:
    return await _team_page(request)


def invite_link(base: str, token: str) -> str:
    return f"{base}{PREFIX}/invite/{token}"


@post(f"{PREFIX}/team/invite", opt=roles.route(Action.TEAM_INVITE), include_in_schema=False)
async def invite(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """An invitation link, shown once here and mailed when outgoing mail is set up."""
    me = member_of(request)
    given = {"email": field_of(data, "email"), "role": field_of(data, "role")}
    try:
        role = Role(given["role"])
    except ValueError:
        return await _team_page(request, errors={"role": "Choose a role."}, values=given)
    if not roles.may_manage(me.role, role):
        raise Refused(403, "Your role cannot invite a member with this role.")
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            issued = await services.invite(
                db,
                hub.hasher,
                now,
                field_of(data, "email"),
                role,
                services.member_actor(me),
                hub.settings,
            )
            config = await mail.load(db, hub.keyring)
    except FormError as exc:
        return await _team_page(request, errors=_errors(exc, "email"), values=given)
    link = invite_link(public_url(hub, request), issued.token)
    if config is None:
        note = "Outgoing mail is not set up: send this link to them yourself."
    else:
        try:
            message = mail.invite_mail(config, issued.invite.email, link, role.value, me.email)
            await mail.send(config, message, tls.outbound_ssl_context(hub.settings.ca_bundle))
            note = f"The invitation was mailed to {issued.invite.email}."
        except mail.MailError as exc:
            note = f"The invitation could not be mailed ({exc}); send this link yourself."
    return await show_invitation(hub, request, note, link)


async def show_invitation(
    hub: Hub, request: AnyRequest, notice: str, link: str | None
) -> Response[Any]:
    """Post/redirect/get for an invitation: its outcome (and the link, when it was not mailed)
    waits for this session's next page, shown once. Rendered at the POST's address, a reload
    invited again: a new link, the old one dead, another mail and audit entry."""
    session = visit_of(request).session
    if session is None:  # the guard lets no member's page through without one
        raise Refused(401, "Please sign in.")
    payload = {"notice": notice, "link": link}
    async with hub.db.transaction() as db:
        handle = await pending.keep(db, hub.keyring, hub.clock(), session.id, "invite", payload)
    return go(request, f"{PREFIX}/team/invited/{handle}")


@get(f"{PREFIX}/team/invited/{{handle:str}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def invited(hub: HubDep, request: AnyRequest, handle: FromPath[str]) -> Response[Any]:
    """The one showing of an invitation's outcome; a reload finds it shown (410), never
    invites again."""
    session = visit_of(request).session
    if session is None:
        raise Refused(401, "Please sign in.")
    async with hub.db.transaction() as db:
        taken = await pending.take(db, hub.keyring, hub.clock(), session.id, handle, "invite")
    values = taken.payload or {}
    if taken.state == "fresh":
        link = values.get("link")
        return await _team_page(
            request, notice=str(values.get("notice", "")), link=str(link) if link else None
        )
    if taken.state == "used":
        notice = (
            "This invitation was shown once already. To get a new link, send the invitation "
            "again from the list below."
        )
        return await _team_page(request, notice=notice, status=410)
    return await _team_page(request, notice="There is no invitation to show here.", status=404)


async def _removable(db: Any, me: Member, member_id: int) -> Member:
    target: Member | None = await db.get(Member, member_id)
    if target is None:
        raise Refused(404, "No such member.")
    if target.id == me.id:
        raise Refused(403, "You cannot remove yourself; ask another owner or admin.")
    if not roles.may_manage(me.role, target.role):
        raise Refused(403, "Your role cannot remove this member.")
    if target.role == Role.OWNER and await services.owners(db) <= 1:
        raise Refused(403, "The team needs an owner.")
    return target


def _remove_confirmation(request: AnyRequest, target: Member) -> Response[Any]:
    return confirm_page(
        request,
        title=f"Remove {target.email}?",
        consequences=[
            f"{target.email} ({target.role}) leaves the team: every session they have ends at "
            "once and they cannot sign in again.",
            "What they did stays in the audit log. To come back they need a new invitation.",
        ],
        action=f"{PREFIX}/team/{target.id}/remove",
        button="Remove member",
        back=f"{PREFIX}/team",
    )


@get(
    f"{PREFIX}/team/{{member_id:int}}/remove",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def remove_page(hub: HubDep, request: AnyRequest, member_id: FromPath[int]) -> Response[Any]:
    me = member_of(request)
    if not roles.allows(me.role, Action.TEAM_REMOVE):
        raise Refused(403, "Your role does not allow this.")
    async with hub.db.transaction() as db:
        target = await _removable(db, me, member_id)
    return _remove_confirmation(request, target)


@post(
    f"{PREFIX}/team/{{member_id:int}}/remove",
    opt=roles.route(Action.TEAM_REMOVE),
    include_in_schema=False,
)
async def remove(
    hub: HubDep, request: AnyRequest, member_id: FromPath[int], data: Form
) -> Response[Any]:
    """Removes a member and ends every session they have (S6). The last owner stays.
    Confirmed first, and after the password and code again (S7)."""
    me = member_of(request)
    now = hub.clock()
    async with hub.db.transaction() as db:
        target = await _removable(db, me, member_id)
        if not confirmed(data):
            return _remove_confirmation(request, target)
        audit.record(
            db,
            now=now,
            actor=services.member_actor(me),
            action="member.removed",
            target_type="member",
            target_id=target.id,
            detail={"email": target.email, "role": target.role},
        )
        await services.remove_member(db, target)
    return go(request, f"{PREFIX}/team?done=removed")


@get(f"{PREFIX}/invite/{{token:str}}", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def invite_page(hub: HubDep, request: AnyRequest, token: FromPath[str]) -> Response[Any]:
    async with hub.db.transaction() as db:
        found = await services.open_invite(db, hub.hasher, token, hub.clock())
        if found is not None and services.is_bootstrap(found) and await services.count_members(db):
            found = None  # the team got its owner meanwhile
    if found is None:
        raise Refused(404, "This invitation is not valid: it was used, replaced or expired.")
    return page(request, "invite.html", invite=found, token=token, errors={})


@post(f"{PREFIX}/invite/{{token:str}}", opt=roles.route(Action.PUBLIC), include_in_schema=False)
async def accept_invite(
    hub: HubDep, request: AnyRequest, token: FromPath[str], data: Form
) -> Response[Any]:
    """Choose a password; two-factor enrolment follows at once."""
    now = hub.clock()
    password = field_of(data, "password")
    try:
        async with hub.db.transaction() as db:
            found = await services.open_invite(db, hub.hasher, token, now)
            if found is None:
                raise Refused(
                    404, "This invitation is not valid: it was used, replaced or expired."
                )
            if password != field_of(data, "password2"):
                raise FormError("The passwords differ.", "password2")
            first_owner = services.is_bootstrap(found)
            if first_owner:
                await services.lock_first_owner(db)
                if await services.count_members(db):
                    raise Refused(404, "This link is not valid any more: the team has an owner.")
            member = await services.create_member(
                db, hub.keyring, now, found.email, password, Role(found.role)
            )
            found.accepted_at = now
            audit.record(
                db,
                now=now,
                actor=services.member_actor(member),
                action="member.first_owner" if first_owner else "member.joined",
                target_type="member",
                target_id=member.id,
                detail={"role": member.role, "invited_by": found.invited_by},
            )
            started = await services.start_session(db, hub.hasher, member, services.ENROL, now)
    except FormError as exc:
        async with hub.db.transaction() as db:
            again = await services.open_invite(db, hub.hasher, token, now)
        if again is None:
            raise Refused(404, "This invitation is not valid any more.") from None
        return page(
            request, "invite.html", invite=again, token=token, errors=_errors(exc, "password")
        )
    return _enter(request, hub, started.token, f"{PREFIX}/enrol")


# --- outgoing mail ------------------------------------------------------------------------------


async def _smtp_page(request: AnyRequest, notice: str | None = None) -> Response[Any]:
    hub = hub_of(request)
    async with hub.db.transaction() as db:
        current = await mail.stored(db)
    return page(
        request,
        "smtp.html",
        smtp=current,
        securities=[s.value for s in mail.Security],
        notice=notice,
        done=_done(request),
    )


@get(f"{PREFIX}/smtp", opt=roles.route(Action.SMTP_MANAGE), include_in_schema=False)
async def smtp_page(request: AnyRequest) -> Response[Any]:
    return await _smtp_page(request)


@post(f"{PREFIX}/smtp", opt=roles.route(Action.SMTP_MANAGE), include_in_schema=False)
async def smtp_save(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    me = member_of(request)
    now = hub.clock()
    try:
        async with hub.db.transaction() as db:
            row = await mail.save(
                db,
                hub.keyring,
                host=field_of(data, "host"),
                port=field_of(data, "port"),
                security=field_of(data, "security"),
                username=field_of(data, "username"),
                password=field_of(data, "password"),
                sender=field_of(data, "sender"),
                actor=services.member_actor(me),
                now=now,
            )
            audit.record(
                db,
                now=now,
                actor=services.member_actor(me),
                action="smtp.changed",
                target_type="smtp_settings",
                target_id=row.id,
                detail={"host": row.host, "port": row.port, "security": row.security},
            )
    except FormError as exc:
        return await _smtp_page(request, str(exc))
    return go(request, f"{PREFIX}/smtp?done=smtp-saved")


@post(f"{PREFIX}/smtp/test", opt=roles.route(Action.SMTP_MANAGE), include_in_schema=False)
async def smtp_test(hub: HubDep, request: AnyRequest, data: Form) -> Response[Any]:
    """Send a test message to the given address (or the member's own) and say how it went."""
    me = member_of(request)
    try:
        to = services.normalise_email(field_of(data, "to") or me.email)
    except FormError as exc:
        return await _smtp_page(request, str(exc))
    async with hub.db.transaction() as db:
        config = await mail.load(db, hub.keyring)
    if config is None:
        return await _smtp_page(request, "Save the mail settings first.")
    try:
        context = tls.outbound_ssl_context(hub.settings.ca_bundle)
        await mail.send(config, mail.test_mail(config, to), context)
    except mail.MailError as exc:
        return await _smtp_page(request, f"The test message was not accepted: {exc}")
    return await _smtp_page(request, f"A test message was sent to {to}.")


DASHBOARD_ROUTES = [
    stylesheet,
    chart_stylesheet,
    sign_up_page,
    sign_up,
    sign_in_page,
    sign_in,
    code_page,
    sign_in_code,
    sign_out,
    enrol_page,
    enrol,
    recovery_codes,
    reauth_page,
    reauth,
    overview,
    team,
    invite,
    invited,
    remove_page,
    remove,
    invite_page,
    accept_invite,
    smtp_page,
    smtp_save,
    smtp_test,
]
