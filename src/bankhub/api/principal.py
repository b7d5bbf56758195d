"""The API's dependencies, provided once through Litestar's dependency injection.

A route names what it needs as parameters and Litestar provides them: ``hub`` (the process's
composition root: settings, database, clock, catalogue, keyring, ...) and ``auth`` (the
authentication of this request, :class:`bankhub.api.auth.Auth`). Middleware and error handlers,
which run outside a route, reach the hub with :func:`hub_of`.

The database session is not a dependency: Litestar ends a generator dependency (here: commits)
only after the answer is built and ``after_request`` has run, where bankhub writes the audit
entry of an answer carrying account data (S42) once the data's unit of work is done; and some
routes need two units of work around a call to the bank (a refresh, a deletion). So a route
opens its own unit of work with ``hub.db.transaction()`` and authenticates in it
(``auth.app(session)``, ``auth.login(session)``), which also scopes that unit to the app (S14).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide

from bankhub.api.auth import Auth
from bankhub.hub import Hub

AnyRequest = Request[Any, Any, Any]

#: a route's parameter ``hub: HubDep`` is the hub, ``auth: AuthDep`` the request's authentication
HubDep = NamedDependency[Hub]
AuthDep = NamedDependency[Auth]


def hub_of(request: AnyRequest) -> Hub:
    """The hub the application was built with (``create_app``)."""
    hub: Hub = request.app.state.hub
    return hub


def provide_hub(request: AnyRequest) -> Hub:
    return hub_of(request)


def provide_auth(request: AnyRequest, hub: HubDep) -> Auth:
    return Auth(hub, request)


def public_url(hub: Hub, request: AnyRequest) -> str:
    """The address callers reach bankhub at: ``BANKHUB_PUBLIC_URL``, else the request's own."""
    if hub.settings.public_url:
        return hub.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


#: registered on the application: every route may ask for these by name
DEPENDENCIES: dict[str, Provide] = {
    "hub": Provide(provide_hub, sync_to_thread=False),
    "auth": Provide(provide_auth, sync_to_thread=False),
}
