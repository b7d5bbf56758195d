"""The dashboard's router: every route behind the guard, errors as pages."""

from __future__ import annotations

from litestar import Router

from bankhub.api.errors import ApiError
from bankhub.dashboard.app_routes import APP_ROUTES
from bankhub.dashboard.pages import (
    Redirected,
    Refused,
    guard,
    on_api_error,
    on_redirected,
    on_refused,
)
from bankhub.dashboard.routes import DASHBOARD_ROUTES


def dashboard_router() -> Router:
    return Router(
        path="/",
        route_handlers=[*DASHBOARD_ROUTES, *APP_ROUTES],
        guards=[guard],
        exception_handlers={
            Redirected: on_redirected,
            Refused: on_refused,
            ApiError: on_api_error,
        },
        include_in_schema=False,
    )
