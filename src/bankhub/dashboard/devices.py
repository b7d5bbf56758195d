"""The dashboard's browser cookie: which browser signs in, for the sign-in alerts.

Each browser that signs in gets a long-lived random cookie (``bankhub_dash_device``,
``__Host-`` over TLS, HttpOnly, SameSite=Strict); ``bankhub.dashboard.alerts`` remembers keyed
hashes of it per member and mails the member when a browser not on the list signs in.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.datastructures import Cookie

from bankhub.dashboard.alerts import NewBrowser, plain
from bankhub.dashboard.models import Member

DEVICE_COOKIE = "bankhub_dash_device"
#: how long a browser is remembered (browsers cap cookies at 400 days)
DEVICE_SECONDS = 400 * 24 * 3600
_MAX_AGENT = 200


def _cookie_name(secure: bool) -> str:
    return f"__Host-{DEVICE_COOKIE}" if secure else DEVICE_COOKIE


def device_token(request: Request[Any, Any, Any], secure: bool) -> str:
    """The browser's device id from its cookie, or a new one (256 bits)."""
    value = request.cookies.get(_cookie_name(secure))
    if value and 20 <= len(value) <= 100 and value.isascii():
        return value
    return secrets.token_urlsafe(32)


def device_cookie(token: str, secure: bool) -> Cookie:
    return Cookie(
        key=_cookie_name(secure),
        value=token,
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
        max_age=DEVICE_SECONDS,
    )


def new_browser(request: Request[Any, Any, Any], member: Member, now: datetime) -> NewBrowser:
    address = request.client.host if request.client else "unknown"
    agent = request.headers.get("user-agent", "") or "unknown"
    return NewBrowser(member.email, now, plain(address, 64), plain(agent, _MAX_AGENT))
