"""What every hosted page shares: security headers, the error page and the way back (S27).

The connect page may be framed only by the origins its app chose (``frame_origins``); every other
page, and a connect page whose app chose none, says ``frame-ancestors 'none'``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request, Response
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import Message, Scope

from bankhub import i18n
from bankhub.api import errors
from bankhub.api.principal import hub_of, public_url
from bankhub.catalogue import Service
from bankhub.connect import templates
from bankhub.connect.flow import EndedSession, SessionGone
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners.models import App

PAGE_PREFIXES = ("/v2/connect/", "/sandbox-bank/")
CONNECT_PREFIX = "/v2/connect/"
CONNECT_COOKIES = ("__Host-bankhub_connect", "bankhub_connect")

#: No inline script or style anywhere: the pages work without JavaScript at all.
CSP_BASE = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'"
)
CSP = f"{CSP_BASE}; frame-ancestors 'none'"
#: an image opened on its own (a brand or bank logo) is inert: no script, no plugins, no navigation
IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'none'; sandbox"


def csp(frame_origins: Sequence[str] | None = None) -> str:
    """The pages' policy; ``frame_origins`` are the only ancestors allowed (none: ``'none'``)."""
    if not frame_origins:
        return CSP
    return f"{CSP_BASE}; frame-ancestors {' '.join(frame_origins)}"


#: what every HTML answer carries, whichever handler made it
PAGE_DEFAULTS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: the docs UI loads its scripts from a CDN; every other page gets the strict CSP
OWN_CSP_PREFIXES = ("/docs",)


async def page_security_headers(message: Message, scope: Scope) -> None:
    """before_send hook: the page headers on every HTML answer; the connect page's framers."""
    if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
        return
    headers = MutableScopeHeaders.from_message(message)
    is_html = headers.get("content-type", "").startswith("text/html")
    if is_html:
        for name, value in PAGE_DEFAULTS.items():
            if name not in headers:
                headers[name] = value
        if "content-security-policy" not in headers and not scope["path"].startswith(
            OWN_CSP_PREFIXES
        ):
            headers["Content-Security-Policy"] = CSP
    # pages only: a brand logo keeps its own sandboxing policy
    if (
        is_html
        and scope["path"].startswith(CONNECT_PREFIX)
        and "content-security-policy" in headers
    ):
        await _connect_frame_ancestors(headers, scope)


async def _connect_frame_ancestors(headers: MutableScopeHeaders, scope: Scope) -> None:
    litestar_app = scope["litestar_app"]
    cookies = Request[Any, Any, Any](scope).cookies
    sid = next((cookies[name] for name in CONNECT_COOKIES if cookies.get(name)), None)
    if sid is None:
        return
    try:
        session = litestar_app.state.connect.get(sid)
    except SessionGone:
        return
    async with litestar_app.state.hub.db.transaction() as db:
        app = await db.get(App, session.app_id)
        origins = app.frame_origins if app is not None else None
    # only the ancestors change: a page with a policy of its own (the return step's fragment
    # relay, which runs one script of ours) keeps the rest of it
    kept = [
        d.strip()
        for d in headers["Content-Security-Policy"].split(";")
        if d.strip() and not d.strip().startswith("frame-ancestors")
    ]
    ancestors = " ".join(origins) if origins else "'none'"
    headers["Content-Security-Policy"] = "; ".join([*kept, f"frame-ancestors {ancestors}"])


def history_phrase(days: int, locale: str = i18n.DEFAULT) -> str:
    """A history depth as the consent page says it: in years from a year on (a leap day
    more or less is still whole years), else in days; in the page's language."""
    t = i18n.gettext_for(locale)
    years, rest = divmod(days, 365)
    if years >= 1 and rest <= years:
        return t.ngettext("{count} year", "{count} years", years).format(count=years)
    return t.ngettext("{count} day", "{count} days", days).format(count=days)


def browser_language(request: Request[Any, Any, Any]) -> str | None:
    """The browser's ``Accept-Language`` header (:func:`bankhub.i18n.from_browser` reads it)."""
    return request.headers.get("accept-language")


def is_page_path(path: str) -> bool:
    return path.startswith(PAGE_PREFIXES)


def page_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Opener-Policy": "same-origin",
        **(extra or {}),
    }


class ConnectEnded(DomainError):
    """``TokenExpire`` on a connect page, with what is known of the connect that ended there:
    the page then offers the way back to the app (``ended``; ``None`` when nothing is known)."""

    def __init__(self, ended: EndedSession | None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(ErrorCode.TOKEN_EXPIRE, extra=extra)
        self.ended = ended


def logo_url(request: Request[Any, Any, Any], service: Service) -> str:
    return f"{public_url(hub_of(request), request)}/media/services/{service.logo_file_name}"


def ended_page(
    request: Request[Any, Any, Any], ended: EndedSession, headers: dict[str, str] | None = None
) -> Response[str]:
    """The page of a connect that can go no further: why, and the way back to the app."""
    return templates.render(
        "ended.html",
        {
            "service": ended.service,
            "app_name": ended.app_name,
            "brand": ended.brand,
            "logo_url": logo_url(request, ended.service),
            "notice": None,
            "refresh": None,
            "heading": ended.heading,
            "message": ended.message,
            "code": ended.code,
            "return_url": ended.callback(),
            "retry_url": ended.retry_url,
        },
        ended.locale,
        status_code=ended.status_code,
        headers=page_headers(
            {**(headers or {}), "Content-Security-Policy": csp(ended.frame_origins)}
        ),
    )


def error_page(
    request: Request[Any, Any, Any], error: DomainError, headers: dict[str, str]
) -> Response[Any]:
    if isinstance(error, ConnectEnded) and error.ended is not None:
        return ended_page(request, error.ended, headers)
    locale = i18n.from_browser(browser_language(request)) or i18n.DEFAULT
    _ = i18n.gettext_for(locale).gettext
    friendly = {
        ErrorCode.TOKEN_EXPIRE: _(
            "This link has expired or was already used. Go back to the app and start again."
        ),
        ErrorCode.SERVER_MAINTENANCE: _(
            "We are doing some maintenance. Please try again in a few minutes."
        ),
        ErrorCode.RATE_LIMITED: _(
            "You have made many requests in a short time. For your security, wait a minute, "
            "then try again."
        ),
        ErrorCode.ADDRESS_BLOCKED: _(
            "For your security, connections from your network are paused after too many "
            "failed attempts. Wait 15 minutes, then try again."
        ),
        ErrorCode.NOT_FOUND: _(
            "This page does not exist. Go back to the app and start the connection again."
        ),
    }
    friendly[ErrorCode.INTERNAL_ERROR] = _(
        "Something went wrong on our side. Go back to the app and try again."
    )
    # else the error's own message: a form's error is written in the user's language already
    message = friendly.get(error.code, error.message)
    return templates.render(
        "error.html",
        {"code": str(error.code), "message": message, "return_url": None},
        locale,
        status_code=errors.status(error),
        headers=page_headers(headers),
    )
