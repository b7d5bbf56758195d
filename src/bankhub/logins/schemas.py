"""Logins' and connect tokens' wire shapes, and how a login becomes one."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Annotated

import msgspec

from bankhub.api.schemas import VERSION, CallbackUrl, wire_time
from bankhub.clock import as_utc
from bankhub.logins.models import Login
from bankhub.sync.refresh import next_possible


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    service_id: int
    callback_url: CallbackUrl
    #: beyond the seed: the connect page's language (``en``, ``vi``, ``de``, ``fr``, ``ms``;
    #: a region such as ``de-DE`` is accepted); else the browser's, else the bank's country's
    locale: Annotated[str, msgspec.Meta(min_length=1, max_length=35)] | None = None


class ReconnectIn(msgspec.Struct, forbid_unknown_fields=True):
    callback_url: CallbackUrl
    #: beyond the seed: as ``TokenIn.locale``
    locale: Annotated[str, msgspec.Meta(min_length=1, max_length=35)] | None = None


class TokenOut(msgspec.Struct):
    id: str
    connect_url: str


class TokenEnvelope(msgspec.Struct):
    data: TokenOut
    version: str = VERSION


class ActivateOut(msgspec.Struct):
    id: int
    activate: bool


class DeactivateOut(msgspec.Struct):
    id: int
    deActivate: bool


class ActivateEnvelope(msgspec.Struct):
    data: ActivateOut
    version: str = VERSION


class DeactivateEnvelope(msgspec.Struct):
    data: DeactivateOut
    version: str = VERSION


class RefreshOut(msgspec.Struct):
    id: int
    refreshed: bool
    last_refresh_at: str | None
    next_refresh_possible_at: str
    #: beyond the seed: the login's status after the attempt (``login_`` + status)
    status: str


class RefreshEnvelope(msgspec.Struct):
    data: RefreshOut
    version: str = VERSION


class DeletedOut(msgspec.Struct):
    id: int
    deleted: bool


class DeletedEnvelope(msgspec.Struct):
    data: DeletedOut
    version: str = VERSION


class ConsentOut(msgspec.Struct):
    """What the user agreed to share on the connect page, and until when."""

    scopes: list[str]
    granted_at: str | None
    expires_at: str | None
    history_days: int | None


class LoginOut(msgspec.Struct):
    id: int
    customer_id: str
    service_id: int
    status: str
    active: bool
    consent_expires_at: str | None
    last_refresh_at: str | None
    next_refresh_possible_at: str | None
    created_at: str
    consent: ConsentOut
    #: messages the provider attached to the last read, HTML-escaped plain text
    notices: list[str]


class LoginEnvelope(msgspec.Struct):
    data: LoginOut
    version: str = VERSION


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def plain_notices(notices: list[str] | None) -> list[str]:
    """Provider text as escaped plain text: no control characters, no markup, bounded."""
    return [html.escape(_CONTROL.sub("", str(n)))[:1000] for n in (notices or [])][:20]


def login_out(login: Login, cooldown: timedelta) -> LoginOut:
    """The login as ``GET /v2/login`` shows it; ``cooldown`` is the refresh cool-down."""
    return LoginOut(
        id=login.id,
        customer_id=login.customer_id,
        service_id=login.service_id,
        status=f"login_{login.status}",
        active=login.active,
        consent_expires_at=wire_time(as_utc(login.consent_expires_at))
        if login.consent_expires_at
        else None,
        last_refresh_at=wire_time(as_utc(login.last_refresh_at)) if login.last_refresh_at else None,
        next_refresh_possible_at=wire_time(next_possible(login, cooldown)),
        created_at=wire_time(as_utc(login.created_at)) or "",
        consent=ConsentOut(
            scopes=list(login.consent_scopes or []),
            granted_at=wire_time(as_utc(login.consent_granted_at))
            if login.consent_granted_at
            else None,
            expires_at=wire_time(as_utc(login.consent_expires_at))
            if login.consent_expires_at
            else None,
            history_days=login.consent_history_days,
        ),
        notices=plain_notices(login.notices),
    )
