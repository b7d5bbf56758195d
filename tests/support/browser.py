"""Headless Chromium for tests, driven by Playwright's sync API.

Playwright cannot download its own browser here, so this launches Debian's ``/usr/bin/chromium``
(``$BANKHUB_CHROMIUM`` overrides) with the flags this machine needs.

pytest-asyncio and Playwright's sync API share the main thread: between two sync calls Playwright
leaves its own event loop marked as *running*, and any later ``async def`` test would then fail
with "Runner.run() cannot be called from a running event loop". ``BrowserSession.active()`` marks
Playwright's loop as running only while browser code runs (fixture set-up, the test body, fixture
teardown) and clears it afterwards, so browser tests and async tests can share one session.
Browser tests themselves must be plain ``def`` functions.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    sync_playwright,
)

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

PHONE_VIEWPORT: dict[str, int] = {"width": 360, "height": 740}
DESKTOP_VIEWPORT: dict[str, int] = {"width": 1280, "height": 800}


def find_chromium() -> Path | None:
    """``$BANKHUB_CHROMIUM``, /usr/bin/chromium, or chromium/chromium-browser on PATH."""
    candidates = [os.environ.get("BANKHUB_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which("chromium"), shutil.which("chromium-browser")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@dataclass
class PageErrors:
    """Console errors and uncaught page errors seen by one page, in order."""

    console: list[str] = field(default_factory=list)
    page: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        return [f"console.error: {m}" for m in self.console] + [
            f"pageerror: {m}" for m in self.page
        ]

    def assert_none(self) -> None:
        errors = self.all
        assert not errors, "the page reported errors:\n" + "\n".join(errors)


_ERRORS: WeakKeyDictionary[Page, PageErrors] = WeakKeyDictionary()


def watch_errors(page: Page) -> PageErrors:
    """Start collecting console errors and page errors of ``page`` (idempotent)."""
    existing = _ERRORS.get(page)
    if existing is not None:
        return existing
    errors = PageErrors()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            loc = msg.location
            where = f" ({loc.get('url')}:{loc.get('lineNumber')})" if loc.get("url") else ""
            errors.console.append(msg.text + where)

    def on_pageerror(exc: Error) -> None:
        errors.page.append(f"{exc.name}: {exc.message}" if exc.name else exc.message)

    page.on("console", on_console)
    page.on("pageerror", on_pageerror)
    _ERRORS[page] = errors
    return errors


def page_errors(page: Page) -> PageErrors:
    """The errors collected for a page made by the fixtures (or passed to ``watch_errors``)."""
    errors = _ERRORS.get(page)
    if errors is None:
        raise LookupError("this page is not watched; call watch_errors(page) first")
    return errors


def assert_no_page_errors(page: Page) -> None:
    """Fail when the page logged a console error or threw an uncaught exception."""
    page_errors(page).assert_none()


class BrowserSession:
    """One Playwright driver plus one Chromium for a whole test session."""

    def __init__(self, executable: Path, *, extra_args: tuple[str, ...] = ()) -> None:
        self.executable = executable
        self.extra_args = extra_args
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._contexts: list[BrowserContext] = []
        self._artifacts = Path(tempfile.mkdtemp(prefix="bankhub-browser-"))

    @property
    def browser(self) -> Browser:
        assert self._browser is not None, "BrowserSession not started"
        return self._browser

    def start(self) -> BrowserSession:
        self._playwright = sync_playwright().start()
        self._loop = self._playwright._loop
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(self.executable),
                headless=True,
                args=[*CHROMIUM_FLAGS, *self.extra_args],
                downloads_path=str(self._artifacts),
            )
        except BaseException:
            self.stop()
            raise
        finally:
            self._release_loop()
        return self

    def stop(self) -> None:
        with self.active():
            for context in self._contexts:
                self._close_quietly(context)
            self._contexts.clear()
            if self._browser is not None:
                self._close_quietly(self._browser)
                self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None
        self._loop = None
        shutil.rmtree(self._artifacts, ignore_errors=True)

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run sync Playwright calls; afterwards leave no event loop marked as running."""
        previous = asyncio._get_running_loop()
        if self._loop is not None and not self._loop.is_closed():
            asyncio._set_running_loop(self._loop)
        try:
            yield
        finally:
            # Nested use (a fixture factory called from the test body) keeps the outer state.
            if previous is not None and previous.is_closed():
                previous = None
            asyncio._set_running_loop(previous)

    def _release_loop(self) -> None:
        asyncio._set_running_loop(None)

    def new_page(
        self,
        *,
        viewport: dict[str, int] | None = None,
        phone: bool = False,
        **context_options: Any,
    ) -> Page:
        """A page in a fresh context (own cookies and storage) with error collection on.

        ``phone=True`` emulates a 360x740 touch phone (``is_mobile``: the page's
        ``<meta name=viewport>`` is honoured).
        """
        if phone:
            context_options.setdefault("is_mobile", True)
            context_options.setdefault("has_touch", True)
            viewport = viewport or PHONE_VIEWPORT
        options: dict[str, Any] = {
            "viewport": viewport or DESKTOP_VIEWPORT,
            "locale": "en-GB",
            "timezone_id": "UTC",
            "service_workers": "block",
            **context_options,
        }
        context = self.browser.new_context(**options)
        context.set_default_timeout(10_000)
        context.set_default_navigation_timeout(15_000)
        self._contexts.append(context)
        page = context.new_page()
        watch_errors(page)
        return page

    def close_page(self, page: Page) -> None:
        context = page.context
        self._close_quietly(context)
        if context in self._contexts:
            self._contexts.remove(context)

    @staticmethod
    def _close_quietly(target: BrowserContext | Browser) -> None:
        with suppress(Error):
            target.close()
