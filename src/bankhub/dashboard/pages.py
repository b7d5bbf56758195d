"""What every dashboard page shares: the guard, cookies, CSRF, headers and rendering.

The guard runs before every dashboard handler. It refuses a route that declares no action, finds
the member's session (ending it when idle 15 minutes or older than 8 hours, S6), checks the
CSRF token and the Origin of every POST (S28), the role (``roles.MATRIX``) and, for sensitive
actions, that the member gave password and code recently (S7). GET handlers never change state.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from litestar import MediaType, Request, Response
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect

from bankhub.api import errors
from bankhub.api.principal import hub_of, public_url
from bankhub.audit import services as audit
from bankhub.dashboard import pending, roles, services
from bankhub.dashboard.models import Member, MemberSession
from bankhub.dashboard.roles import Action
from bankhub.db import tenancy
from bankhub.errors import DomainError
from bankhub.hub import Hub
from bankhub.security import tls

AnyRequest = Request[Any, Any, Any]

PREFIX = "/dashboard"
SIGN_IN = f"{PREFIX}/sign-in"
HOME = PREFIX
SESSION_COOKIE = "bankhub_dash"
PRE_COOKIE = "bankhub_dash_pre"
#: the longest value any dashboard form field may carry
MAX_FIELD = 2000
#: a route's ``opt`` key: its requests are a page's script polling, not the member's activity,
#: so they do not keep the session from its idle timeout (S6)
PASSIVE = "passive"

#: scripts only from our own origin (the dashboard needs none today), no inline anything
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    # same-origin, not no-referrer: a form post then carries our real Origin, which is checked
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class Redirected(Exception):
    """Leave this page for ``location`` (303): not signed in, or re-authentication needed."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class ReauthNeeded(Redirected):
    """The action needs the password and code again (S7); a form post waits for them."""


class Refused(Exception):
    """Show the error page with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Visit:
    """What the guard learnt about this request, for the handler and the page."""

    action: Action
    secure: bool
    member: Member | None = None
    session: MemberSession | None = None
    #: the cookie value the CSRF token is bound to (the session's, else the pre-session one)
    bound_to: str = ""
    csrf: str = ""
    cookies: list[Cookie] = field(default_factory=list)

    def can(self, action: str) -> bool:
        return self.member is not None and roles.allows(self.member.role, Action(action))


def visit_of(request: AnyRequest) -> Visit:
    visit: Visit = request.state["dashboard"]
    return visit


def member_of(request: AnyRequest) -> Member:
    """The signed-in member a page acts for (the guard lets no visit without one through)."""
    member = visit_of(request).member
    if member is None:
        raise Refused(401, "Please sign in.")
    return member


def cookie_name(base: str, secure: bool) -> str:
    """``__Host-`` prefixed (Secure, path /, no domain) whenever served over TLS (S6)."""
    return f"__Host-{base}" if secure else base


def _cookie(name: str, value: str, secure: bool, *, max_age: int | None = None) -> Cookie:
    return Cookie(
        key=cookie_name(name, secure),
        value=value,
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=max_age,
    )


def session_cookie(hub: Hub, visit: Visit, token: str) -> Cookie:
    return _cookie(
        SESSION_COOKIE, token, visit.secure, max_age=hub.settings.dashboard_absolute_seconds
    )


def clear_session_cookie(visit: Visit) -> Cookie:
    return _cookie(SESSION_COOKIE, "", visit.secure, max_age=0)


def _read_cookie(request: AnyRequest, base: str, secure: bool) -> str | None:
    value = request.cookies.get(cookie_name(base, secure))
    return value if value and len(value) <= 100 else None


def own_origin(request: AnyRequest) -> str:
    parts = urlsplit(public_url(hub_of(request), request))
    return f"{parts.scheme}://{parts.netloc}"


def check_origin(request: AnyRequest) -> None:
    """S28: a browser's Origin must be ours; a cross-site fetch is refused whatever it carries."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise Refused(403, "Cross-site form submission refused.")
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise Refused(403, "Cross-site form submission refused.")


async def check_csrf(request: AnyRequest, visit: Visit) -> None:
    form = await request.form()
    given = form.get("csrf")
    if not isinstance(given, str) or not visit.csrf:
        raise Refused(403, "This form has expired. Go back, reload the page and try again.")
    if not hmac.compare_digest(given.encode(), visit.csrf.encode()):
        raise Refused(403, "This form has expired. Go back, reload the page and try again.")


def _next_after_reauth(request: AnyRequest) -> str:
    """Back to the page the form was on (same origin only), else the overview."""
    referer = request.headers.get("referer", "")
    parts = urlsplit(referer)
    if referer and f"{parts.scheme}://{parts.netloc}" == own_origin(request):
        return safe_next(parts.path)
    return HOME


def safe_next(path: str | None) -> str:
    """Only our own pages: no scheme, no host, no ``//`` (open redirects)."""
    if not path or not path.startswith(PREFIX) or "//" in path or "\\" in path:
        return HOME
    if any(ord(ch) < 0x21 for ch in path) or len(path) > 300:
        return HOME
    return path


async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Deny by default: the route's declared action decides who may pass (see module docs)."""
    action = roles.declared(handler.opt)
    if action is None:
        raise Refused(403, "This page declares no action, so nobody may use it.")
    request: AnyRequest = connection  # type: ignore[assignment]  # HTTP routes pass the request
    hub = hub_of(request)
    await hub.ready()
    visit = Visit(action=action, secure=tls.is_secure(request.scope, hub.settings))
    request.state["dashboard"] = visit
    token = _read_cookie(request, SESSION_COOKIE, visit.secure)
    now = hub.clock()
    if token is not None:
        async with hub.db.transaction() as db:
            found = await services.find_session(db, hub.hasher, token)
            if found is not None and services.expired(found[0], now, hub.settings):
                await services.end_session(db, found[0])
                found = None
            if found is not None:
                if not handler.opt.get(PASSIVE):
                    found[0].last_seen_at = now
                visit.session, visit.member = found
                visit.bound_to = token
        if found is None:
            visit.cookies.append(clear_session_cookie(visit))
    if visit.bound_to:
        visit.csrf = services.csrf_token(hub.hasher, visit.bound_to)
    else:
        _bind_to_pre_cookie(request, visit)
    if request.method not in ("GET", "HEAD"):
        check_origin(request)
        await check_csrf(request, visit)
    try:
        _authorise(request, visit, now)
    except ReauthNeeded:
        handle = await _keep_post(request, hub, visit, now)
        if handle is None:
            raise
        raise Redirected(f"{PREFIX}/reauth?pending={handle}") from None
    except Refused as refused:
        if refused.status == 403 and request.method not in ("GET", "HEAD"):
            await _audit_refusal(hub, request, visit, now)
        raise
    if visit.member is not None:
        # S14: the team runs the whole installation, so a signed-in member's pages see every
        # app's rows; before sign-in only the team's own tables (no tenant rows) are reachable.
        tenancy.choose(tenancy.ALL)


async def _keep_post(request: AnyRequest, hub: Hub, visit: Visit, now: Any) -> str | None:
    """A form post that waits for re-authentication, kept for the session
    (``dashboard.pending``): carried out once the password and code are given. None for what
    cannot wait (a GET, a file upload, an outsized form): that is asked for again."""
    if request.method != "POST" or visit.session is None:
        return None
    form = await request.form()
    fields = [(name, value) for name, value in form.multi_items() if name != "csrf"]
    if not all(isinstance(value, str) for _, value in fields):
        return None
    payload = {
        "path": request.url.path,
        "fields": fields,
        "action": visit.action.value,
        "back": _next_after_reauth(request),
    }
    try:
        async with hub.db.transaction() as db:
            return await pending.keep(db, hub.keyring, now, visit.session.id, "action", payload)
    except pending.PayloadTooLarge:
        return None


async def _audit_refusal(hub: Hub, request: AnyRequest, visit: Visit, now: Any) -> None:
    """A signed-in member's post that their role may not make is a forged form (the pages
    offer no such button): kept in the audit log with who, what and where."""
    member = visit.member
    if member is None:
        return
    # an entry about no app; written with the whole installation in view, as the member's
    # session would be, so that the ORM reads back the row it inserts (S14)
    tenancy.choose(tenancy.ALL)
    async with hub.db.transaction() as db:
        audit.record(
            db,
            now=now,
            actor=services.member_actor(member),
            action="member.refused",
            target_type="route",
            target_id=f"{request.method} {request.url.path}"[:200],
            detail={"action": visit.action.value, "role": member.role},
            request_id=audit.request_id(),
        )


def _bind_to_pre_cookie(request: AnyRequest, visit: Visit) -> None:
    """Forms of a browser without a session are bound to its pre-session cookie."""
    pre = _read_cookie(request, PRE_COOKIE, visit.secure)
    if pre is None:
        pre = secrets.token_urlsafe(32)
        visit.cookies.append(_cookie(PRE_COOKIE, pre, visit.secure))
    visit.bound_to = pre
    visit.csrf = services.csrf_token(hub_of(request).hasher, pre)


def forget_session(request: AnyRequest) -> None:
    """The session just ended: the page drops its cookie and binds its forms anew."""
    visit = visit_of(request)
    visit.session = None
    visit.member = None
    visit.cookies.append(clear_session_cookie(visit))
    _bind_to_pre_cookie(request, visit)


def _authorise(request: AnyRequest, visit: Visit, now: Any) -> None:
    action, row, member = visit.action, visit.session, visit.member
    if action in roles.SESSIONLESS:
        return
    wanted = roles.PARTIAL.get(action, services.ACTIVE)
    if row is None or member is None:
        raise Redirected(SIGN_IN)
    if row.stage != wanted:
        if row.stage == services.ENROL:
            raise Redirected(f"{PREFIX}/enrol")
        if row.stage == services.CODE:
            raise Redirected(f"{SIGN_IN}/code")
        raise Redirected(HOME)
    if not roles.allows(member.role, action):
        raise Refused(403, "Your role does not allow this.")
    settings = hub_of(request).settings
    if action in roles.REAUTH and not services.reauth_fresh(row, now, settings):
        raise ReauthNeeded(f"{PREFIX}/reauth?next={quote(_next_after_reauth(request), safe='/')}")


# --- rendering ----------------------------------------------------------------------------------


def environment() -> Environment:
    """Autoescaped (S29); partner and member strings are never marked safe."""
    return Environment(
        loader=PackageLoader("bankhub.dashboard", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


_ENV = environment()


def page(
    request: AnyRequest,
    template: str,
    *,
    status: int = 200,
    cookies: list[Cookie] | None = None,
    **context: Any,
) -> Response[str]:
    visit = visit_of(request)
    values = {
        "member": visit.member,
        "signed_in": visit.session is not None and visit.session.stage == services.ACTIVE,
        "csrf": visit.csrf,
        "can": visit.can,
        "notice": None,
        "done": None,
        "path": request.url.path,
    }
    values.update(context)
    html = _ENV.get_template(template).render(**values)
    return Response(
        content=html,
        status_code=status,
        media_type=MediaType.HTML,
        headers=HEADERS,
        cookies=[*visit.cookies, *(cookies or [])],
    )


def go(request: AnyRequest, location: str, cookies: list[Cookie] | None = None) -> Redirect:
    """Post/redirect/get: a 303 to one of our pages."""
    visit = request.state.get("dashboard")
    extra = visit.cookies if isinstance(visit, Visit) else []
    return Redirect(
        safe_next(location) if location != HOME else HOME,
        status_code=303,
        headers=HEADERS,
        cookies=[*extra, *(cookies or [])],
    )


def on_redirected(request: AnyRequest, exc: Redirected) -> Response[Any]:
    return go(request, exc.location)


def on_refused(request: AnyRequest, exc: Refused) -> Response[Any]:
    if not isinstance(request.state.get("dashboard"), Visit):
        request.state["dashboard"] = Visit(action=Action.PUBLIC, secure=False)
    return page(request, "error.html", status=exc.status, message=exc.message)


def on_api_error(request: AnyRequest, exc: DomainError) -> Response[Any]:
    """The error page, with the error's own headers: ``Allow`` on a 405, ``Retry-After`` and
    the RateLimit fields on a 429 (a browser or a script retrying needs them as much)."""
    response = on_refused(request, Refused(errors.status(exc), exc.message))
    response.headers.update(errors.headers(exc))
    return response


def dashboard_error_page(request: AnyRequest, error: DomainError) -> Response[Any]:
    """The app's error handlers use this for dashboard paths (unknown page, wrong method, the
    edge's refusals)."""
    return on_api_error(request, error)


def confirm_page(
    request: AnyRequest,
    *,
    title: str,
    consequences: list[str],
    action: str,
    button: str,
    back: str,
    fields: dict[str, str] | None = None,
    status: int = 200,
) -> Response[str]:
    """The step before a destructive change: what will happen, in words, and a form that posts
    the change with ``confirm=yes`` (or a way back). Works without JavaScript."""
    return page(
        request,
        "confirm.html",
        title=title,
        consequences=consequences,
        action=action,
        button=button,
        back=back,
        fields=fields or {},
        status=status,
    )


def confirmed(form: dict[str, str]) -> bool:
    """The post came from a confirmation step (:func:`confirm_page`)."""
    return form.get("confirm") == "yes"


def field_of(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_FIELD:
        raise Refused(400, f"The field {name} is too long.")
    return value
