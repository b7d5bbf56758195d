"""Customer routes beyond creation: erasure and export."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

CUSTOMER_ROUTES: list[ControllerRouterHandler] = []
