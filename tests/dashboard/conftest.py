"""Fixtures of the dashboard tests: a visitor's browser over the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.conftest import Harness
from tests.dashboard.support import Visitor


@pytest.fixture
async def visitors(harness: Harness) -> AsyncIterator[Callable[..., Visitor]]:
    """``visitors()`` opens another browser (own cookies); all are closed at the end."""
    opened: list[Visitor] = []

    def factory(**options: str) -> Visitor:
        visitor = Visitor(harness, **options)
        opened.append(visitor)
        return visitor

    try:
        yield factory
    finally:
        for visitor in opened:
            await visitor.aclose()
