from __future__ import annotations

import asyncio
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from playwright.sync_api import Page

from tests.support.browser import assert_no_page_errors, page_errors
from tests.support.browser_plugin import MakePage
from tests.support.loopback import serving

PAGES: dict[str, bytes] = {
    "/": b"""<!doctype html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>bankhub infra</title>
<link rel="icon" href="data:,">
</head><body><h1 id="h">hello</h1>
<script>document.getElementById("h").dataset.width = String(window.innerWidth);</script>
</body></html>""",
    "/broken": b"""<!doctype html>
<html><head><meta charset="utf-8"><title>broken</title><link rel="icon" href="data:,"></head>
<body><script>console.error("boom from console"); undefinedFunction();</script></body></html>""",
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving(_Handler, lifetime=3600) as origin:
        yield origin


def test_phone_page_loads_at_360px(phone_page: Page, site: str) -> None:
    phone_page.goto(f"{site}/")
    assert phone_page.title() == "bankhub infra"
    assert phone_page.viewport_size == {"width": 360, "height": 740}
    assert phone_page.locator("#h").get_attribute("data-width") == "360"
    assert phone_page.evaluate("window.innerWidth") == 360
    assert_no_page_errors(phone_page)


async def test_async_tests_still_work_after_a_browser_test() -> None:
    # Playwright's sync API must not leave its loop marked as running between tests.
    await asyncio.sleep(0)


def test_desktop_page_and_error_capture(page: Page, site: str) -> None:
    page.goto(f"{site}/broken")
    assert page.title() == "broken"
    page.wait_for_timeout(100)
    errors = page_errors(page)
    assert any("boom from console" in m for m in errors.console), errors
    assert any("undefinedFunction" in m for m in errors.page), errors
    with pytest.raises(AssertionError, match="boom from console"):
        assert_no_page_errors(page)
    assert page.viewport_size == {"width": 1280, "height": 800}


def test_make_page_in_test_body(make_page: MakePage, site: str) -> None:
    first = make_page()
    first.goto(f"{site}/")
    second = make_page(viewport={"width": 500, "height": 600})
    second.goto(f"{site}/")
    assert second.evaluate("window.innerWidth") == 500
    assert first.title() == second.title() == "bankhub infra"
    assert_no_page_errors(first)
    assert_no_page_errors(second)
