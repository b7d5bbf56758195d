"""Every interactive path of the connect page over plain HTTP, on both databases."""

from __future__ import annotations

import html
import re
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from bankhub.logins.models import Login
from tests.api.connect_client import ConnectDriver, create_customer, create_token, parse_callback
from tests.conftest import BASE_URL, Harness

BANK_LINK = re.compile(r'href="(' + re.escape(BASE_URL) + r'/sandbox-bank/authorize[^"]+)"')
REQUEST_FIELD = re.compile(r'name="request" value="([^"]+)"')
RETURN_FIELD = re.compile(r'name="return_url" value="([^"]+)"')


async def _driver(h: Harness, name: str) -> ConnectDriver:
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, name)))
    await driver.agree()
    return driver


async def _logins(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return int((await session.execute(select(func.count(Login.id)))).scalar_one())


async def _through_the_bank(h: Harness, driver: ConnectDriver, decision: str) -> None:
    link = BANK_LINK.search(driver.page)
    assert link, driver.page
    bank_page = await h.client.get(html.unescape(link.group(1)).removeprefix(BASE_URL))
    assert bank_page.status_code == 200
    assert "Approve" in bank_page.text
    request_id = REQUEST_FIELD.search(bank_page.text)
    return_url = RETURN_FIELD.search(bank_page.text)
    assert request_id
    assert return_url
    back = await h.client.post(
        "/sandbox-bank/authorize",
        data={
            "request": html.unescape(request_id.group(1)),
            "return_url": html.unescape(return_url.group(1)),
            "decision": decision,
        },
        follow_redirects=False,
    )
    assert back.status_code == 303
    location = back.headers["location"]
    assert location.startswith(f"{BASE_URL}/v2/connect/return?")
    returned = await h.client.get(location.removeprefix(BASE_URL), follow_redirects=False)
    assert returned.status_code == 303
    await driver.show()


async def _final_payload(driver: ConnectDriver) -> dict[str, Any]:
    """The failure page's "Return to the app" link carries the callback payload."""
    assert "could not connect" in driver.page, driver.page
    location = re.search(r'id="return" href="([^"]+)"', driver.page)
    assert location
    return parse_callback(html.unescape(location.group(1)))


async def test_redirect_sca_approved(harness: Harness) -> None:
    driver = await _driver(harness, "redirect")
    await driver.login("user_redirect")
    assert "Continue to" in driver.page
    await _through_the_bank(harness, driver, "approve")
    callback = await driver.finish()
    assert callback.payload["status"] == "success"


async def test_redirect_sca_denied_at_the_bank(harness: Harness) -> None:
    driver = await _driver(harness, "redirect-deny")
    await driver.login("user_redirect")
    await _through_the_bank(harness, driver, "deny")
    payload = await _final_payload(driver)
    assert payload["status"] == "cancelled"
    assert await _logins(harness) == 0


async def test_decoupled_approval_arrives_while_polling(harness: Harness) -> None:
    h = harness
    driver = await _driver(h, "decoupled")
    await driver.login("user_decoupled")
    assert "Approve in your banking app" in driver.page
    assert 'http-equiv="refresh"' in driver.page
    await driver.show()
    assert "Approve in your banking app" in driver.page
    h.clock.advance(seconds=4)
    await driver.show()
    callback = await driver.finish()
    assert callback.payload["status"] == "success"


async def test_security_question_then_device_choice(harness: Harness) -> None:
    driver = await _driver(harness, "question")
    await driver.login("user_question")
    assert 'name="code"' in driver.page
    await driver.answer(code="red")
    assert "attempts left" in driver.page
    await driver.answer(code="Blue")
    assert 'type="radio"' in driver.page
    await driver.answer(choice="not-a-device")
    assert "pick one of the options" in driver.page
    option = re.search(r'name="choice" value="([^"]+)"', driver.page)
    assert option
    await driver.answer(choice=option.group(1))
    assert (await driver.finish()).payload["status"] == "success"


async def test_five_wrong_passwords_end_the_session(harness: Harness) -> None:
    driver = await _driver(harness, "wrong")
    for left in (4, 3, 2, 1):
        await driver.login("user_good", "not-the-password")
        assert f". You have {left} attempt" in driver.page
    await driver.login("user_good", "not-the-password")
    assert (await _final_payload(driver))["error"] == "CredentialInvalid"
    assert await _logins(harness) == 0


async def test_locked_expired_down_and_rate_limited(harness: Harness) -> None:
    for username, code in (
        ("user_locked", "login_account_locked"),
        ("user_expired", "login_password_expired"),
        ("user_down", "ConnectError"),
        ("user_ratelimited", "ConnectError"),
    ):
        harness.client.cookies.clear()
        driver = await _driver(harness, username)
        await driver.login(username)
        payload = await _final_payload(driver)
        assert payload["status"] == "error", username
        assert payload["error"] == code, username
    assert await _logins(harness) == 0


async def test_cancel_from_the_credentials_form(harness: Harness) -> None:
    driver = await _driver(harness, "cancel")
    callback = await driver.cancel()
    assert callback.payload == {"status": "cancelled"}


async def test_forms_need_the_csrf_token(harness: Harness) -> None:
    driver = await _driver(harness, "csrf")
    response = await harness.client.post(
        "/v2/connect/credentials",
        data={"csrf": "forged", "username": "user_good", "password": "pass_good"},
        follow_redirects=False,
    )
    assert response.status_code == 400
    cross = await harness.client.post(
        "/v2/connect/credentials",
        data={"csrf": driver.csrf(), "username": "user_good", "password": "pass_good"},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert cross.status_code == 400
    assert await _logins(harness) == 0


async def test_pages_carry_a_strict_csp_and_escape_partner_strings(harness: Harness) -> None:
    h = harness
    async with h.hub.db.transaction() as session:
        from bankhub.partners.models import App

        app = (await session.execute(select(App))).scalars().first()
        assert app
        app.name = '<script>alert("x")</script>'
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "xss")))
    assert "<script>" not in driver.page
    assert "&lt;script&gt;" in driver.page
    response = await h.client.get("/v2/connect/session")
    csp = response.headers["content-security-policy"]
    assert "script-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "harness",
    [{"connector_timeout_seconds": 0.3, "sandbox_slow_seconds": 10.0}],
    indirect=True,
)
async def test_a_bank_that_hangs_times_out_as_connect_error(harness: Harness) -> None:
    driver = await _driver(harness, "slow")
    started = time.monotonic()
    await driver.login("user_slow")
    assert time.monotonic() - started < 5
    payload = await _final_payload(driver)
    assert payload["error"] == "ConnectError"
    assert "did not answer in time" in payload["message"]
