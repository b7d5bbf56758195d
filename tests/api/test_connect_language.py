"""The connect page's language over HTTP: ``locale`` with the token (checked against the
supported list), else the browser's ``Accept-Language``, else the bank's country's; kept for
every step of the session; the end user's errors written to them in that language."""

from __future__ import annotations

import asyncio
import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.connect_client import (
    CALLBACK,
    ConnectDriver,
    create_customer,
    create_token,
)
from tests.conftest import BASE_URL, Harness

LANG = re.compile(r'<html lang="([a-z]+)">')
SPARBANK_DE = 3
BANK_MALAYSIA = 10


async def _token(h: Harness, customer: str, service_id: int = 1, **extra: Any) -> Any:
    return await h.client.post(
        "/v2/token",
        json={
            "customer_id": customer,
            "service_id": service_id,
            "callback_url": CALLBACK,
            **extra,
        },
        headers=h.headers(),
    )


def _lang(page: str) -> str:
    found = LANG.search(page)
    assert found, page[:500]
    return found.group(1)


async def test_the_token_locale_chooses_the_language_over_the_browser(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h, "lang-token")
    created = await _token(h, customer, locale="de-DE")
    assert created.status_code == 200, created.text
    driver = ConnectDriver(h)  # the browser asks for English
    page = await driver.open(created.json()["data"]["connect_url"])
    assert _lang(page) == "de"
    assert "bittet um Zugriff auf Ihre Bankdaten" in page
    page = await driver.agree()
    assert _lang(page) == "de"
    assert "Bei Sandbox Bank Việt Nam anmelden" in page


@pytest.mark.parametrize("given", ["ja", "xx-YY", "de;q=1", "<b>"])
async def test_an_unsupported_locale_is_refused_in_the_envelope(
    harness: Harness, given: str
) -> None:
    h = harness
    customer = await create_customer(h, f"lang-refused-{len(given)}")
    refused = await _token(h, customer, locale=given)
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["error"] == "DataInvalid"
    assert "choose one of en, vi, de, fr, ms" in body["message"]
    assert body["extra"]["supported"] == ["en", "vi", "de", "fr", "ms"]


async def test_a_locale_too_long_or_empty_is_refused(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h, "lang-long")
    for given in ("", "d" * 36):
        refused = await _token(h, customer, locale=given)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] in ("DataInvalid", "ContentInputInvalid")


async def test_the_reconnect_token_takes_a_locale_too(harness: Harness) -> None:
    h = harness
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "lang-reconnect")))
    await driver.agree()
    await driver.login("user_good")
    secret = (await driver.finish()).payload["secret"]
    refused = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": CALLBACK, "locale": "tlh"},
        headers=h.headers(login_secret=secret),
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "DataInvalid"
    made = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": CALLBACK, "locale": "fr"},
        headers=h.headers(login_secret=secret),
    )
    assert made.status_code == 200, made.text
    page = await ConnectDriver(h).open(made.json()["data"]["connect_url"])
    assert _lang(page) == "fr"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("fr-FR,fr;q=0.9,en;q=0.5", "fr"), ("en;q=0.3, ms;q=0.8", "ms"), ("ja", "vi"), ("", "vi")],
)
async def test_the_browser_then_the_bank_country_choose(
    harness: Harness, header: str, expected: str
) -> None:
    h = harness
    url = await create_token(h, await create_customer(h, f"lang-browser-{expected}-{len(header)}"))
    opened = await h.client.get(
        url.removeprefix(BASE_URL), headers={"Accept-Language": header}, follow_redirects=False
    )
    assert opened.status_code == 303
    # the next steps send no language at all: the session keeps the one it chose
    page = await h.client.get("/v2/connect/session", headers={"Accept-Language": ""})
    assert _lang(page.text) == expected


@pytest.mark.parametrize(("service_id", "expected"), [(SPARBANK_DE, "de"), (BANK_MALAYSIA, "ms")])
async def test_without_a_browser_language_the_bank_country_chooses(
    harness: Harness, service_id: int, expected: str
) -> None:
    h = harness
    url = await create_token(h, await create_customer(h, f"lang-country-{expected}"), service_id)
    await h.client.get(
        url.removeprefix(BASE_URL), headers={"Accept-Language": ""}, follow_redirects=False
    )
    page = await h.client.get("/v2/connect/session")
    assert _lang(page.text) == expected


async def test_the_switcher_changes_the_language_for_the_rest_of_the_flow(
    harness: Harness,
) -> None:
    h = harness
    driver = ConnectDriver(h)
    page = await driver.open(await create_token(h, await create_customer(h, "lang-switch")))
    assert 'href="/v2/connect/session?lang=vi"' in page
    switched = await h.client.get("/v2/connect/session?lang=vi", follow_redirects=False)
    assert switched.status_code == 303
    page = await driver.show()
    assert _lang(page) == "vi"
    assert "Tôi đồng ý, tiếp tục" in page
    # an unknown language changes nothing
    await h.client.get("/v2/connect/session?lang=xx", follow_redirects=False)
    page = await driver.agree()
    assert _lang(page) == "vi"


async def test_a_wrong_password_keeps_the_username_and_says_what_to_do(
    harness: Harness,
) -> None:
    h = harness
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "lang-wrong")))
    await driver.agree()
    page = await driver.login("user_good", "not-the-password")
    assert "did not accept the username or password" in page
    assert "you have 4 attempts left. After 5 wrong attempts this connection stops" in page
    assert 'value="user_good"' in page
    assert "not-the-password" not in page
    assert 'aria-invalid="true"' in page
    assert 'aria-describedby="help-username notice"' in page
    for _ in range(4):
        page = await driver.login("user_good", "not-the-password")
    assert "You have entered a wrong username or password 5 times" in page
    assert "Check your login details with Sandbox Bank Việt Nam" in page


async def test_the_five_attempt_limit_is_said_in_the_users_language(harness: Harness) -> None:
    h = harness
    created = await _token(h, await create_customer(h, "lang-limit"), locale="vi")
    driver = ConnectDriver(h)
    await driver.open(created.json()["data"]["connect_url"])
    await driver.agree()
    page = await driver.login("user_good", "not-the-password")
    assert "Quý khách còn 4 lần thử" in page
    for _ in range(4):
        page = await driver.login("user_good", "not-the-password")
    assert "Quý khách đã nhập sai tên đăng nhập hoặc mật khẩu 5 lần" in page


async def test_the_waiting_pages_poll_with_one_script_of_ours(harness: Harness) -> None:
    """A waiting page may run static/poll.js (``script-src 'self'``, no inline script); the
    other pages run none; the script's background check never ends a finished session."""
    h = harness
    driver = ConnectDriver(h)
    consent = await h.client.get(
        (await create_token(h, await create_customer(h, "poll"))).removeprefix(BASE_URL)
    )
    page = await h.client.get("/v2/connect/session")
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    assert consent.status_code in (200, 303)
    driver.page = page.text
    await driver.agree()
    await driver.login("user_decoupled")
    waiting = await h.client.get("/v2/connect/session")
    policy = waiting.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy
    assert '<script src="/v2/connect/static/poll.js" defer></script>' in waiting.text
    assert '<noscript><meta http-equiv="refresh"' in waiting.text
    assert (await h.client.get("/v2/connect/static/poll.js")).status_code == 200

    # the flow ends (the sandbox app approves after a moment): the background check says so
    # but leaves the session to the page, whose own request then goes back to the app
    await h.client.get("/v2/connect/session", headers={"X-Bankhub-Poll": "1"})
    h.clock.advance(seconds=4)
    for _ in range(300):
        polled = await h.client.get(
            "/v2/connect/session", headers={"X-Bankhub-Poll": "1"}, follow_redirects=False
        )
        if 'data-state="finished"' in polled.text:
            break
        await asyncio.sleep(0.02)
    assert polled.status_code == 200
    assert 'data-state="finished"' in polled.text
    ended = await h.client.get("/v2/connect/session", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"].startswith(CALLBACK)


async def test_the_banks_own_page_is_told_the_language_the_connect_page_speaks(
    harness: Harness,
) -> None:
    """A redirect bank gets the page's language (the token's, or the one switched to since)
    as OpenID Connect's ``ui_locales``; the sandbox bank's page speaks it to an English
    browser, on a Vietnamese bank."""
    h = harness
    created = await _token(h, await create_customer(h, "lang-bank"), locale="de")
    driver = ConnectDriver(h)
    await driver.open(created.json()["data"]["connect_url"])
    await driver.agree()
    switched = await h.client.get("/v2/connect/session?lang=fr", follow_redirects=False)
    assert switched.status_code == 303
    page = await driver.show()
    assert _lang(page) == "fr"
    page = await driver.login("user_redirect")
    link = re.search(r'href="' + re.escape(BASE_URL) + r'(/sandbox-bank/authorize[^"]+)"', page)
    assert link, page
    target = html.unescape(link.group(1))
    assert parse_qs(urlsplit(target).query)["ui_locales"] == ["fr"]
    bank_page = await h.client.get(target, headers={"accept-language": "en"})
    assert bank_page.status_code == 200
    assert _lang(bank_page.text) == "fr"
    assert ">Approve</button>" not in bank_page.text
