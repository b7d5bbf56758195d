"""Every interactive path of the connect page over plain HTTP, on both databases."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bankhub.connectors.sandbox import SandboxConnector
from bankhub.logins.models import Login
from tests.api.connect_client import (
    WAITING,
    Callback,
    ConnectDriver,
    create_customer,
    create_token,
    parse_callback,
    way_back,
)
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
    assert "choose one of the options" in driver.page
    option = re.search(r'name="choice" value="([^"]+)"', driver.page)
    assert option
    await driver.answer(choice=option.group(1))
    assert (await driver.finish()).payload["status"] == "success"


async def test_five_wrong_passwords_end_the_session(harness: Harness) -> None:
    driver = await _driver(harness, "wrong")
    for left in (4, 3, 2, 1):
        await driver.login("user_good", "not-the-password")
        assert f"you have {left} attempt" in driver.page
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


# --- the bank's redirect back is bound to the session's state -------------------------------------


async def test_a_cross_site_return_without_the_state_changes_nothing(harness: Harness) -> None:
    """Any site can send the browser to the return step, cookie included (SameSite=Lax): only
    the ``state`` the session gave its bank makes the step act."""
    h = harness
    driver = await _driver(h, "cross-site")
    await driver.login("user_redirect")
    link = BANK_LINK.search(driver.page)
    assert link
    # the return URL the bank is given carries the session's state
    assert "%2Fv2%2Fconnect%2Freturn%3Fstate%3D" in link.group(1)
    for query in (
        "error=access_denied",
        "request=x&error=access_denied",
        "state=forged&error=access_denied",
        "state=&error=access_denied",
    ):
        response = await h.client.get(f"/v2/connect/return?{query}", follow_redirects=False)
        assert response.status_code == 303, query
        assert response.headers["location"] == "/v2/connect/session"
        await driver.show()
        assert "Continue to" in driver.page, query  # still waiting for the bank's answer
    await _through_the_bank(h, driver, "approve")
    assert (await driver.finish()).payload["status"] == "success"


# --- no dead ends: every end of the flow offers the way back to the app ---------------------------


def _token_expire(callback: Callback) -> str:
    payload = callback.payload
    assert payload["status"] == "error", payload
    assert payload["error"] == "TokenExpire", payload
    assert "secret" not in payload
    message: str = payload["message"]
    return message


async def test_the_idle_timeout_ends_with_the_way_back(harness: Harness) -> None:
    h = harness
    driver = await _driver(h, "idle-way-back")
    form = {"csrf": driver.csrf(), **driver.form_step()}
    h.clock.advance(minutes=5, seconds=1)
    page = await driver.show()
    assert driver.status == 400
    assert 'data-code="TokenExpire"' in page
    assert "timed out" in page
    assert "idle minutes" in _token_expire(way_back(page))
    # the form the user had open, sent late, and a reload: the same page, the same way back
    late = await h.client.post(
        "/v2/connect/credentials",
        data={**form, "username": "user_good", "password": "pass_good"},
        follow_redirects=False,
    )
    assert late.status_code == 400
    assert way_back(late.text).payload == way_back(page).payload
    assert (await driver.show()) == page
    assert await _logins(h) == 0


async def test_an_expired_or_used_link_ends_with_the_way_back(harness: Harness) -> None:
    h = harness
    customer_id = await create_customer(h, "late-link")
    old = await create_token(h, customer_id)
    h.clock.advance(minutes=31)
    driver = ConnectDriver(h)
    page = await driver.open(old)
    assert driver.status == 400
    assert "expired" in _token_expire(way_back(page))

    used = await create_token(h, customer_id)
    first = ConnectDriver(h)
    await first.open(used)
    h.client.cookies.clear()  # another browser with the same link
    other = ConnectDriver(h)
    page = await other.open(used)
    assert other.status == 400
    assert "used already" in _token_expire(way_back(page))
    assert 'data-code="TokenExpire"' in page
    # a link that names no token at all has no app to go back to
    unknown = ConnectDriver(h)
    page = await unknown.open(f"{BASE_URL}/v2/connect/term/not-a-token")
    assert unknown.status == 400
    assert 'id="return"' not in page


async def test_back_after_success_ends_with_the_way_back_and_no_secret(harness: Harness) -> None:
    h = harness
    driver = await _driver(h, "back-after-success")
    await driver.login("user_good")
    callback = await driver.finish()
    secret = callback.payload["secret"]
    page = await driver.show()  # the browser's back button: the session page again
    assert driver.status == 400
    assert "is connected" in page
    assert secret not in page
    assert "used already" in _token_expire(way_back(page))
    assert await _logins(h) == 1


async def test_reloading_the_failure_page_shows_it_again(harness: Harness) -> None:
    h = harness
    driver = await _driver(h, "reload-failure")
    await driver.login("user_locked")
    first = way_back(driver.page)
    assert first.payload["error"] == "login_account_locked"
    page = await driver.show()
    assert driver.status == 200
    assert "could not connect" in page
    assert way_back(page).payload == first.payload


async def test_a_bank_redirect_back_in_another_browser_ends_with_the_way_back(
    harness: Harness,
) -> None:
    h = harness
    driver = await _driver(h, "other-browser")
    await driver.login("user_redirect")
    link = BANK_LINK.search(driver.page)
    assert link
    bank_page = await h.client.get(html.unescape(link.group(1)).removeprefix(BASE_URL))
    request_id, return_url = (
        REQUEST_FIELD.search(bank_page.text),
        RETURN_FIELD.search(bank_page.text),
    )
    assert request_id
    assert return_url
    back = await h.client.post(
        "/sandbox-bank/authorize",
        data={
            "request": html.unescape(request_id.group(1)),
            "return_url": html.unescape(return_url.group(1)),
            "decision": "approve",
        },
        follow_redirects=False,
    )
    location = back.headers["location"].removeprefix(BASE_URL)
    # The banking app opens the redirect in another browser: no connect cookie there.
    cookies = dict(h.client.cookies)
    h.client.cookies.clear()
    elsewhere = await h.client.get(location, follow_redirects=False)
    assert elsewhere.status_code == 400
    assert "another browser" in _token_expire(way_back(elsewhere.text))
    h.client.cookies.update(cookies)
    # The first browser, reloaded: the same end, the same way back; nothing was connected.
    page = await driver.show()
    assert "another browser" in page
    assert "another browser" in _token_expire(way_back(page))
    assert await _logins(h) == 0


# --- a slow bank never freezes the page ---------------------------------------------------------


@dataclass
class BankCalls:
    started: int = 0
    cancelled: int = 0


@pytest.fixture
def logins_at_the_bank(monkeypatch: pytest.MonkeyPatch) -> BankCalls:
    """Counts the sandbox's login calls, and those cancelled before the bank answered."""
    calls = BankCalls()
    authenticate = SandboxConnector.authenticate

    async def counted(self: SandboxConnector, credentials: Mapping[str, str]) -> None:
        calls.started += 1
        try:
            await authenticate(self, credentials)
        except asyncio.CancelledError:
            calls.cancelled += 1
            raise

    monkeypatch.setattr(SandboxConnector, "authenticate", counted)
    return calls


@pytest.mark.parametrize(
    "harness",
    [{"connector_timeout_seconds": 5.0, "sandbox_slow_seconds": 30.0}],
    indirect=True,
)
async def test_a_slow_bank_answers_at_once_and_a_second_submit_changes_nothing(
    harness: Harness, logins_at_the_bank: BankCalls, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.DEBUG)
    canary = f"canary-{secrets.token_hex(8)}"
    driver = await _driver(h, "slow-bank")
    form = {"csrf": driver.csrf(), **driver.form_step(), "username": "user_slow"}
    started = time.monotonic()
    sent = await h.client.post(
        "/v2/connect/credentials", data={**form, "password": canary}, follow_redirects=False
    )
    assert sent.status_code == 303
    assert time.monotonic() - started < 1.5  # the wait for a quick bank, not the bank's 30 s
    page = await driver.show()
    assert WAITING in page
    assert '<meta http-equiv="refresh" content="1">' in page  # polls without JavaScript
    assert "Cancel and return" in page
    # The same form again (a second click), and once more as a client that sends no step:
    # the same progress page, no second call to the bank.
    for repeated in (form, {k: v for k, v in form.items() if k != "step"}):
        again = await h.client.post(
            "/v2/connect/credentials",
            data={**repeated, "password": canary},
            follow_redirects=False,
        )
        assert again.status_code == 303
        assert WAITING in await driver.show()
    assert logins_at_the_bank.started == 1
    # The user leaves; the idle timeout cancels the bank call and the credentials with it.
    h.clock.advance(minutes=5, seconds=1)
    page = await driver.show()
    assert driver.status == 400
    _token_expire(way_back(page))
    await asyncio.sleep(0)
    assert logins_at_the_bank.cancelled == 1
    assert canary not in caplog.text
    assert await _logins(h) == 0


@pytest.mark.parametrize(
    "harness", [{"sandbox_slow_seconds": 0.1, "connect_step_wait_seconds": 0.0}], indirect=True
)
async def test_a_slow_bank_leads_through_the_progress_page_to_success(harness: Harness) -> None:
    h = harness
    driver = await _driver(h, "slow-success")
    form = {"csrf": driver.csrf(), **driver.form_step()}
    sent = await h.client.post(
        "/v2/connect/credentials",
        data={**form, "username": "user_slow", "password": "pass_good"},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert WAITING in await driver.show()
    callback = await driver.finish()  # the page's own refreshes, until the bank answered
    assert callback.payload["status"] == "success"


@pytest.mark.parametrize(
    "harness", [{"sandbox_slow_seconds": 30.0, "connect_step_wait_seconds": 0.0}], indirect=True
)
async def test_cancel_while_the_bank_is_slow(
    harness: Harness, logins_at_the_bank: BankCalls
) -> None:
    h = harness
    driver = await _driver(h, "slow-cancel")
    form = {"csrf": driver.csrf(), **driver.form_step()}
    await h.client.post(
        "/v2/connect/credentials",
        data={**form, "username": "user_slow", "password": "pass_good"},
        follow_redirects=False,
    )
    assert WAITING in await driver.show()
    callback = await driver.cancel()
    assert callback.payload == {"status": "cancelled"}
    await asyncio.sleep(0)
    assert logins_at_the_bank.cancelled == 1


async def test_the_way_back_of_a_used_link_under_row_level_security(
    app_role_harness: Harness,
) -> None:
    """The token of a used link is found before any app is chosen (S14's credential look-up),
    then the page reads its app's name and branding acting for that app only."""
    h = app_role_harness
    used = await create_token(h, await create_customer(h, "rls-way-back"))
    await ConnectDriver(h).open(used)
    h.client.cookies.clear()
    other = ConnectDriver(h)
    page = await other.open(used)
    assert other.status == 400
    assert "used already" in _token_expire(way_back(page))
    assert "Test app" in page


async def test_the_consent_page_says_how_far_back_bankhub_reads(harness: Harness) -> None:
    h = harness
    customer_id = await create_customer(h, "consent-depth")
    bank = ConnectDriver(h)
    page = await bank.open(await create_token(h, customer_id))
    assert "your transactions of the last 5 years" in page  # the sandbox banks keep five
    h.client.cookies.clear()
    upload = ConnectDriver(h)
    page = await upload.open(await create_token(h, customer_id, service_id=11))
    assert "the transactions in the statement files you upload" in page
    assert "years" not in page
