"""An authenticated caller of the API, as plain values the services can take."""

from __future__ import annotations

from dataclasses import dataclass

from bankhub.partners.models import App
from bankhub.security.authcache import AppView
from bankhub.security.scopes import Scope


def app_view(app: App) -> AppView:
    """The plain values of an app the authentication of a request needs."""
    allowlist = app.ip_allowlist
    return AppView(
        app.id,
        app.client_id,
        None if allowlist is None else tuple(allowlist),
        app.archived_at is not None,
    )


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the app, the scope granted, and which key or token it used.

    The app as plain values (``security.authcache``): a route that writes the app loads it
    (``Auth.app``)."""

    app: AppView
    scope: Scope
    key_id: str | None
    #: the access token's id when the caller presented a bearer token
    token_id: str | None
