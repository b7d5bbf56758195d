"""A chart in headless Chromium, 360 px wide, under a CSP without 'unsafe-inline'."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from playwright.sync_api import Page

from bankhub.usage import charts
from bankhub.usage.series import API_LABELS, Bucket, Series
from tests.support.browser import page_errors
from tests.support.loopback import serving

CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'"
START = datetime(2026, 11, 20, 0, tzinfo=UTC)


def page_with(body: str) -> bytes:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/charts.css"><link rel="icon" href="data:,">'
        f"<title>usage</title></head><body>{body}</body></html>"
    ).encode()


def chart_page() -> bytes:
    buckets = [
        Bucket(START + timedelta(hours=i), {"2xx": (i * 37) % 90, "3xx": 0, "4xx": i % 5, "5xx": 0})
        for i in range(48)
    ]
    series = Series(
        name="api_calls",
        title='API calls <of> "Bank & Co"',
        keys=("2xx", "3xx", "4xx", "5xx"),
        bucket="hour",
        start=START,
        end=START + timedelta(hours=48),
        buckets=buckets,
        labels=API_LABELS,
    )
    bars = charts.render(series, chart_id="bars")
    lines = charts.render(series, kind="lines", chart_id="lines")
    empty = charts.render(
        Series("x", "Nothing", ("a",), "day", START, START + timedelta(days=2), [], {}),
        chart_id="empty",
    )
    return page_with(
        f'<div id="bars">{bars.svg}</div><div id="lines">{lines.svg}</div>'
        f'<div id="empty">{empty.svg}</div>{bars.table.html()}'
    )


def control_page() -> bytes:
    """An inline style attribute, which this CSP must refuse (and Chromium report)."""
    return page_with('<svg viewBox="0 0 10 10"><rect style="fill:red"/></svg>')


PAGES: dict[str, Callable[[], bytes]] = {"/": chart_page, "/control": control_page}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/charts.css":
            body, kind = charts.STYLESHEET.read_bytes(), "text/css"
        elif self.path in PAGES:
            body, kind = PAGES[self.path](), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving(_Handler, lifetime=3600) as origin:
        yield origin


def test_charts_render_at_360px_under_a_strict_csp(phone_page: Page, site: str) -> None:
    phone_page.goto(f"{site}/")
    phone_page.wait_for_load_state("load")
    page_errors(phone_page).assert_none()
    for chart in ("bars", "lines", "empty"):
        box = phone_page.locator(f"#{chart} svg").bounding_box()
        assert box is not None
        assert 300 <= box["width"] <= 360  # the whole width of the phone, not more
        assert box["height"] == pytest.approx(box["width"] * 220 / 360, rel=0.02)
    # the stylesheet applied (a class rule), and the bars were drawn
    assert phone_page.locator("#bars svg").evaluate("e => getComputedStyle(e).display") == "block"
    drawn = sum(1 for i in range(48) if (i * 37) % 90)  # no mark for a zero
    assert phone_page.locator("#bars svg .series-0 rect").count() == drawn == 47
    assert phone_page.locator("#empty svg text.empty").text_content() == charts.NO_DATA
    title = phone_page.locator("#bars svg > title").text_content()
    assert title == 'API calls <of> "Bank & Co"'
    assert not phone_page.locator("script").count()


def test_the_csp_check_can_fail(phone_page: Page, site: str) -> None:
    phone_page.goto(f"{site}/control")
    phone_page.wait_for_load_state("load")
    errors = page_errors(phone_page).all
    assert any("Content Security Policy" in e for e in errors), errors
