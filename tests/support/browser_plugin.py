"""pytest fixtures for headless Chromium (Playwright sync API).

* ``browser_session`` (session): the ``BrowserSession`` (one driver, one Chromium).
* ``browser`` (session): its Playwright ``Browser``.
* ``make_page`` (function): factory ``make_page(viewport=None, phone=False, **context_options)``
  returning a ``Page`` in a fresh context; all are closed at test end.
* ``page`` (function): a 1280x800 desktop page.
* ``phone_page`` (function): a 360x740 touch phone page.

Every page collects console errors and uncaught page errors: ``page_errors(page).console`` /
``.page``, and ``assert_no_page_errors(page)`` fails on any.

Chromium missing: skip locally, fail when ``CI=true``. Tests using these fixtures get the
``browser`` marker automatically. Browser tests must be plain ``def`` tests (sync API).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import BrowserSession, find_chromium

BROWSER_FIXTURES = frozenset({"browser_session", "browser", "make_page", "page", "phone_page"})

_active_session: BrowserSession | None = None

MakePage = Callable[..., Page]


def _uses_browser(item: pytest.Item) -> bool:
    return bool(BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _uses_browser(item):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # Playwright's sync calls need its loop marked as running while the test body runs;
    # outside browser code it must not be, or pytest-asyncio cannot run async tests.
    if _active_session is not None and _uses_browser(item):
        with _active_session.active():
            return (yield)
    return (yield)


@pytest.fixture(scope="session")
def browser_session() -> Iterator[BrowserSession]:
    global _active_session
    executable = find_chromium()
    if executable is None:
        reason = (
            "chromium not found at /usr/bin/chromium; run scripts/bootstrap --browser "
            "(installs Debian's chromium)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    session = BrowserSession(executable).start()
    _active_session = session
    try:
        yield session
    finally:
        _active_session = None
        session.stop()


@pytest.fixture(scope="session")
def browser(browser_session: BrowserSession) -> Browser:
    return browser_session.browser


@pytest.fixture
def make_page(browser_session: BrowserSession) -> Iterator[MakePage]:
    pages: list[Page] = []

    def factory(**options: Any) -> Page:
        with browser_session.active():
            page = browser_session.new_page(**options)
        pages.append(page)
        return page

    try:
        yield factory
    finally:
        with browser_session.active():
            for page in pages:
                browser_session.close_page(page)


@pytest.fixture
def page(make_page: MakePage) -> Page:
    return make_page()


@pytest.fixture
def phone_page(make_page: MakePage) -> Page:
    return make_page(phone=True)
