"""An authenticated caller of the API, as plain values the services can take."""

from __future__ import annotations

from dataclasses import dataclass

from bankhub.partners.models import App
from bankhub.security.scopes import Scope


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the app, the scope granted, and which key or token it used."""

    app: App
    scope: Scope
    key_id: str | None
    #: the access token's id when the caller presented a bearer token
    token_id: str | None
