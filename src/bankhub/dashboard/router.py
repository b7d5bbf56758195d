"""The dashboard's router: every route behind the guard, errors as pages."""

from __future__ import annotations

from collections.abc import Sequence

from litestar import Router
from litestar.types import ControllerRouterHandler

from bankhub.dashboard.app_routes import APP_ROUTES
from bankhub.dashboard.consent_routes import CONSENT_ROUTES
from bankhub.dashboard.feed_routes import FEED_ROUTES
from bankhub.dashboard.login_routes import LOGIN_ROUTES
from bankhub.dashboard.oauth_routes import OAUTH_ROUTES
from bankhub.dashboard.pages import (
    Redirected,
    Refused,
    guard,
    on_api_error,
    on_redirected,
    on_refused,
)
from bankhub.dashboard.payment_routes import PAYMENT_ROUTES
from bankhub.dashboard.read_routes import READ_ROUTES
from bankhub.dashboard.request_routes import REQUEST_ROUTES
from bankhub.dashboard.routes import DASHBOARD_ROUTES
from bankhub.dashboard.signature_routes import SIGNATURE_ROUTES
from bankhub.dashboard.team_routes import TEAM_ROUTES
from bankhub.dashboard.template_routes import TEMPLATE_ROUTES
from bankhub.dashboard.webhook_routes import WEBHOOK_ROUTES
from bankhub.errors import DomainError

ALL_ROUTES = [
    *DASHBOARD_ROUTES,
    *APP_ROUTES,
    *WEBHOOK_ROUTES,
    *CONSENT_ROUTES,
    *READ_ROUTES,
    *TEMPLATE_ROUTES,
    *OAUTH_ROUTES,
    *PAYMENT_ROUTES,
    *SIGNATURE_ROUTES,
    *TEAM_ROUTES,
    *REQUEST_ROUTES,
    *LOGIN_ROUTES,
    *FEED_ROUTES,
]


def dashboard_router(route_handlers: Sequence[ControllerRouterHandler] | None = None) -> Router:
    """Every dashboard route (or the ``route_handlers`` given, in tests) behind the guard."""
    return Router(
        path="/",
        route_handlers=ALL_ROUTES if route_handlers is None else list(route_handlers),
        guards=[guard],
        exception_handlers={
            Redirected: on_redirected,
            Refused: on_refused,
            DomainError: on_api_error,
        },
        include_in_schema=False,
    )
