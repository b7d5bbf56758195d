"""The app's own settings: retention window and credential vault."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

APP_ROUTES: list[ControllerRouterHandler] = []
