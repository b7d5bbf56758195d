"""The hosted connect page in headless Chromium, against the real ``bankhub serve`` process.

Each test starts its own server (``live_server`` is function-scoped; a start takes about a
second) with the demo app, creates a customer and a token over HTTP, and walks the connect page
like an end user. The callback URL points at a tiny loopback HTTP server run by this module, so
the browser's last redirect lands on a real page whose URL carries the result.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.seed_shapes import TRANSACTION_KEYS
from tests.support.axe import assert_accessible
from tests.support.browser import assert_no_page_errors, page_errors
from tests.support.browser_plugin import MakePage
from tests.support.live_server import LiveServer
from tests.support.loopback import PartnerSite, partner_site
from tests.support.server_plugin import LiveServerFactory

SERVER_ENV = {"BANKHUB_SANDBOX_DECOUPLED_DELAY_SECONDS": "1"}
APP_NAME = "Demo app"
SERVICE_ID = 1
BANK_NAME = "Sandbox Bank Việt Nam"
PHONE_WIDTH = 360
CALLBACK_TIMEOUT_MS = 20_000


# --- the partner's callback endpoint -------------------------------------------------------------


@dataclass
class CallbackServer:
    """The partner app's loopback callback: ``url`` is what tokens are created with."""

    site: PartnerSite

    @property
    def url(self) -> str:
        return f"{self.site.origin}/v2"

    def is_callback(self, url: str) -> bool:
        return url.startswith(self.url + "/")

    def payload(self, url: str) -> dict[str, Any]:
        """The JSON result the connect page appended, URL-encoded, as the last path segment."""
        assert self.is_callback(url), url
        last = urlsplit(url).path.rsplit("/", 1)[-1]
        result: dict[str, Any] = json.loads(unquote(last))
        # The browser really fetched that URL from the partner's server.
        assert urlsplit(url).path in self.site.visits, (url, self.site.visits)
        return result


@pytest.fixture(scope="module")
def callback_server() -> Iterator[CallbackServer]:
    with partner_site(lifetime=3600) as site:
        yield CallbackServer(site)


# --- the partner's API calls ---------------------------------------------------------------------


@dataclass
class Partner:
    """The demo app talking to the live server's API with ``httpx``."""

    server: LiveServer
    callback: CallbackServer
    client: httpx.Client

    def connect_url(self, service_id: int = SERVICE_ID, locale: str | None = None) -> str:
        customer = self.client.post("/v2/customer", json={"identifier": f"e2e-{uuid.uuid4()}"})
        assert customer.status_code == 200, customer.text
        customer_id = customer.json()["data"]["customer_id"]
        token = self.client.post(
            "/v2/token",
            json={
                "customer_id": customer_id,
                "service_id": service_id,
                "callback_url": self.callback.url,
                **({"locale": locale} if locale else {}),
            },
        )
        assert token.status_code == 200, token.text
        data = token.json()["data"]
        url: str = data["connect_url"]
        assert url == f"{self.server.url}/v2/connect/term/{data['id']}"
        return url

    def get(self, path: str, secret: str, **params: str | int) -> list[dict[str, Any]]:
        response = self.client.get(path, params=params, headers={"login-secret": secret})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["version"] == "v2"
        rows: list[dict[str, Any]] = body["data"]
        return rows


def _partner(
    live_server: LiveServerFactory, callback_server: CallbackServer, env: dict[str, str]
) -> Iterator[Partner]:
    server = live_server(env=env)
    creds = server.demo_credentials()
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
        yield Partner(server, callback_server, client)


@pytest.fixture
def partner(live_server: LiveServerFactory, callback_server: CallbackServer) -> Iterator[Partner]:
    yield from _partner(live_server, callback_server, SERVER_ENV)


@pytest.fixture
def slow_partner(
    live_server: LiveServerFactory, callback_server: CallbackServer
) -> Iterator[Partner]:
    """A server whose sandbox bank takes half a second for every call of ``user_slow``."""
    yield from _partner(
        live_server, callback_server, {**SERVER_ENV, "BANKHUB_SANDBOX_SLOW_SECONDS": "0.5"}
    )


# --- driving the page ----------------------------------------------------------------------------


#: a page that ends the flow answers with TokenExpire's status, 400, and Chromium logs that
#: status of the document it loads as a console error
TOKEN_EXPIRE_LOAD = re.compile(
    r"^Failed to load resource: the server responded with a status of 400 \(Bad Request\) "
    r"\(https?://[^/]+/v2/connect/"
)


def assert_clean(page: Page, *, ended: bool = False) -> None:
    """No console error and no uncaught exception on the page so far (``ended``: except the
    400 status of pages that end the flow)."""
    errors = page_errors(page)
    console = [m for m in errors.console if not (ended and TOKEN_EXPIRE_LOAD.match(m))]
    assert not console, "the page logged console errors:\n" + "\n".join(console)
    assert not errors.page, "the page threw:\n" + "\n".join(errors.page)


def on_page(page: Page, heading: str | re.Pattern[str], *, ended: bool = False) -> None:
    """The page shows ``heading`` and logged no console or page error so far."""
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    assert_clean(page, ended=ended)


def fits_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert isinstance(width, int)
    assert width <= PHONE_WIDTH, f"{page.url} scrolls sideways: {width}px > {PHONE_WIDTH}px"


def agree(page: Page, connect_url: str) -> None:
    response = page.goto(connect_url)
    assert response is not None
    assert response.status == 200
    assert urlsplit(page.url).path == "/v2/connect/session"
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, f"Log in to {BANK_NAME}")


def log_in(page: Page, username: str, password: str = "pass_good") -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def notice(page: Page) -> str:
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    return alert.inner_text()


def wait_for_callback(page: Page, callback: CallbackServer) -> dict[str, Any]:
    page.wait_for_url(callback.is_callback, timeout=CALLBACK_TIMEOUT_MS)
    return callback.payload(page.url)


def assert_success(payload: dict[str, Any]) -> tuple[int, str]:
    assert set(payload) == {"status", "login_id", "secret"}, payload
    assert payload["status"] == "success"
    login_id, secret = payload["login_id"], payload["secret"]
    assert isinstance(login_id, int)
    assert not isinstance(login_id, bool)
    assert isinstance(secret, str)
    assert secret
    return login_id, secret


def assert_data_readable(partner: Partner, login_id: int, secret: str) -> None:
    accounts = partner.get("/v2/account", secret)
    assert len(accounts) == 3, accounts
    assert {a["login_id"] for a in accounts} == {login_id}
    assert {a["type"] for a in accounts} == {"current", "savings", "credit_card"}
    for account in accounts:
        assert set(account) == {
            "id",
            "original_id",
            "login_id",
            "name",
            "balance",
            "currency",
            "type",
        }
        assert isinstance(account["balance"], str)
    first = accounts[0]
    rows = partner.get("/v2/transaction", secret, account_id=first["id"])
    assert rows, "the first fetch stored no transactions"
    for row in rows[:20]:
        assert set(row) == TRANSACTION_KEYS
        assert isinstance(row["amount"], str)
        assert row["currency"] == first["currency"]


# --- the tests -----------------------------------------------------------------------------------


def test_happy_path_with_one_time_code_on_a_phone(
    phone_page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    page = phone_page
    assert page.viewport_size == {"width": PHONE_WIDTH, "height": 740}

    page.goto(partner.connect_url())
    on_page(page, f"{APP_NAME} asks to read your bank data")
    # as far back as the bank keeps: the sandbox banks keep five years
    expect(page.get_by_text("your transactions of the last 5 years")).to_be_visible()
    fits_phone(page)

    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, f"Log in to {BANK_NAME}")
    fits_phone(page)

    log_in(page, "user_otp")
    on_page(page, re.compile(r"Enter the code we sent to your phone"))
    fits_phone(page)

    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Continue").click()
    on_page(page, re.compile(r"Enter the code we sent to your phone"))
    message = notice(page)
    assert f"{BANK_NAME} did not accept your answer." in message
    assert "4 attempts left" in message
    fits_phone(page)

    page.get_by_label("Code").fill("123456")
    page.get_by_role("button", name="Continue").click()
    # The first fetch runs in the background; the progress page refreshes itself until done.
    on_page(page, "Fetching your accounts…")
    fits_phone(page)

    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_clean(page)
    assert_data_readable(partner, login_id, secret)


def test_wrong_password_counts_down_then_fails(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    agree(page, partner.connect_url())
    for left in (4, 3, 2, 1):
        log_in(page, "user_good", "pass_wrong")
        on_page(page, f"Log in to {BANK_NAME}")
        message = notice(page)
        assert f"{BANK_NAME} did not accept the username or password." in message
        plural = "s" if left != 1 else ""
        assert f"you have {left} attempt{plural} left. After 5 wrong attempts" in message
        # the username stays, the password never comes back
        expect(page.get_by_label("Username")).to_have_value("user_good")
        expect(page.get_by_label("Password")).to_have_value("")

    log_in(page, "user_good", "pass_wrong")
    on_page(page, f"We could not connect to {BANK_NAME}")
    said = notice(page)
    assert "You have entered a wrong username or password 5 times." in said
    assert f"Check your login details with {BANK_NAME}, then start again from {APP_NAME}" in said
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()

    payload = wait_for_callback(page, callback_server)
    assert payload["status"] == "error"
    assert payload["error"] == "CredentialInvalid"
    assert isinstance(payload["message"], str)
    assert "secret" not in payload
    assert_clean(page)


@pytest.mark.parametrize(
    ("username", "problem", "error"),
    [
        ("user_locked", "locked", "login_account_locked"),
        ("user_expired", "password has expired", "login_password_expired"),
    ],
)
def test_bank_refusal_shows_failure_page(
    page: Page,
    partner: Partner,
    callback_server: CallbackServer,
    username: str,
    problem: str,
    error: str,
) -> None:
    agree(page, partner.connect_url())
    log_in(page, username)
    on_page(page, f"We could not connect to {BANK_NAME}")
    assert problem in notice(page)
    # No way to retry or cancel on this page: only back to the app.
    expect(page.get_by_role("button", name=re.compile("Cancel"))).to_have_count(0)
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()

    payload = wait_for_callback(page, callback_server)
    assert payload["status"] == "error"
    assert payload["error"] == error
    assert problem in payload["message"]
    assert_clean(page)


def go_to_bank(page: Page, partner: Partner) -> None:
    agree(page, partner.connect_url())
    log_in(page, "user_redirect")
    on_page(page, f"Continue at {BANK_NAME}")
    page.get_by_role("link", name=f"Continue to {BANK_NAME}").click()
    page.wait_for_url(re.compile(r"/sandbox-bank/authorize\?"))
    assert page.url.startswith(f"{partner.server.url}/sandbox-bank/authorize?")
    on_page(page, "Share your account data?")
    expect(page.get_by_role("heading", name=BANK_NAME)).to_be_visible()


def test_redirect_to_bank_and_approve(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    go_to_bank(page, partner)
    page.get_by_role("button", name="Approve").click()
    # Back on the connect page (through /v2/connect/return) while the first fetch runs.
    on_page(page, "Fetching your accounts…")
    assert urlsplit(page.url).path == "/v2/connect/session"

    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_clean(page)
    assert_data_readable(partner, login_id, secret)


def test_redirect_to_bank_and_deny(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    go_to_bank(page, partner)
    page.get_by_role("button", name="Deny").click()
    # Refusing at the bank is the user's choice not to connect: no retry, no attempts counted,
    # the flow ends and the app is told the user cancelled.
    on_page(page, f"We could not connect to {BANK_NAME}")
    assert urlsplit(page.url).path == "/v2/connect/session"
    message = notice(page)
    assert "declined the consent" in message
    assert "attempt" not in message
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()

    payload = wait_for_callback(page, callback_server)
    assert payload == {"status": "cancelled", "message": "The bank declined the consent"}
    assert_clean(page)


def test_decoupled_approval_refreshes_by_itself(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    agree(page, partner.connect_url())
    log_in(page, "user_decoupled")
    on_page(page, "Approve in your banking app")
    expect(page.get_by_text("this page checks again by itself")).to_be_visible()
    # with JavaScript the page asks in the background (no reload every second); without it,
    # the meta refresh does (test_a_slow_bank_shows_the_progress_page_without_javascript)
    expect(page.locator('script[src="/v2/connect/static/poll.js"]')).to_have_count(1)
    expect(page.locator('meta[name="bankhub-poll"]')).to_have_attribute("content", "1")

    # No clicks: the page polls the bank until the approval arrives.
    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_clean(page)
    assert_data_readable(partner, login_id, secret)


def test_security_question_then_device_choice(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    agree(page, partner.connect_url())
    log_in(page, "user_question")
    on_page(page, re.compile("what is your favourite colour"))
    answer = page.get_by_label("Answer")
    expect(answer).to_have_attribute("type", "text")
    answer.fill("blue")
    page.get_by_role("button", name="Continue").click()

    on_page(page, "Where should we send login notifications?")
    page.get_by_label("Phone ending in 42").check()
    page.get_by_role("button", name="Continue").click()

    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_clean(page)
    assert_data_readable(partner, login_id, secret)


def assert_token_expire(payload: dict[str, Any], says: str) -> None:
    assert set(payload) == {"status", "error", "message"}, payload
    assert payload["status"] == "error"
    assert payload["error"] == "TokenExpire"
    assert says in payload["message"]


def test_used_connect_url_shows_token_expire(
    make_page: MakePage, partner: Partner, callback_server: CallbackServer
) -> None:
    connect_url = partner.connect_url()
    first = make_page()
    first.goto(connect_url)
    on_page(first, f"{APP_NAME} asks to read your bank data")

    # The link is single-use: another browser (no session cookie) is refused, with the way
    # back to the app.
    other = make_page()
    response = other.goto(connect_url)
    assert response is not None
    assert response.status == 400
    on_page(other, "This link can no longer be used", ended=True)
    alert = other.get_by_role("alert")
    expect(alert).to_have_attribute("data-code", "TokenExpire")
    expect(alert).to_contain_text("was used already")

    # The browser that opened it first still has its session.
    first.goto(connect_url)
    on_page(first, f"{APP_NAME} asks to read your bank data")

    other.get_by_role("link", name=f"Return to {APP_NAME}").click()
    assert_token_expire(wait_for_callback(other, callback_server), "used already")


def test_a_link_that_names_no_token_says_so(page: Page, partner: Partner) -> None:
    """Nothing names an app to go back to: the plain error page, no way back to offer."""
    response = page.goto(f"{partner.server.url}/v2/connect/term/{uuid.uuid4()}")
    assert response is not None
    assert response.status == 400
    on_page(page, "Connection unavailable", ended=True)
    expect(page.get_by_role("alert")).to_have_attribute("data-code", "TokenExpire")
    expect(page.get_by_text("Error code: TokenExpire")).to_be_visible()
    expect(page.get_by_role("link")).to_have_count(0)


def test_cancel_on_consent_page(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    page.goto(partner.connect_url())
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name=f"Cancel and return to {APP_NAME}").click()

    assert wait_for_callback(page, callback_server) == {"status": "cancelled"}
    assert_clean(page)


def test_works_without_javascript(
    make_page: MakePage, partner: Partner, callback_server: CallbackServer
) -> None:
    page = make_page(java_script_enabled=False)
    agree(page, partner.connect_url())
    log_in(page, "user_good")
    on_page(page, "Fetching your accounts…")
    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_data_readable(partner, login_id, secret)


def test_pages_log_no_console_errors(page: Page, partner: Partner) -> None:
    """Strict: the consent page, as any end user's browser loads it, logs no console error."""
    page.goto(partner.connect_url())
    expect(
        page.get_by_role("heading", name=f"{APP_NAME} asks to read your bank data")
    ).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert_no_page_errors(page)


# --- no dead ends -------------------------------------------------------------------------------


def test_back_after_success_offers_the_way_back(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    agree(page, partner.connect_url())
    log_in(page, "user_good")
    _, secret = assert_success(wait_for_callback(page, callback_server))

    page.go_back()  # from the app's page, back to the connect page
    assert urlsplit(page.url).path == "/v2/connect/session"
    on_page(page, f"{BANK_NAME} is connected", ended=True)
    assert "completed already" in notice(page)
    assert secret not in page.content()
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()
    assert_token_expire(wait_for_callback(page, callback_server), "used already")
    assert_clean(page, ended=True)


def test_reloading_the_failure_page_shows_it_again(
    page: Page, partner: Partner, callback_server: CallbackServer
) -> None:
    agree(page, partner.connect_url())
    log_in(page, "user_locked")
    on_page(page, f"We could not connect to {BANK_NAME}")
    page.reload()
    on_page(page, f"We could not connect to {BANK_NAME}")
    assert "locked" in notice(page)
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()
    payload = wait_for_callback(page, callback_server)
    assert payload["error"] == "login_account_locked"
    assert_clean(page)


def test_the_bank_sending_the_user_back_to_another_browser(
    make_page: MakePage, partner: Partner, callback_server: CallbackServer
) -> None:
    """A banking app opens the redirect back in the phone's other browser: that browser has no
    connect session. It ends there with the way back, and so does the first browser."""
    first = make_page()
    go_to_bank(first, partner)
    other = make_page()
    other.goto(first.url)  # the bank's page, now in the browser the bank's app chose
    on_page(other, "Share your account data?")
    other.get_by_role("button", name="Approve").click()
    on_page(other, f"We could not connect to {BANK_NAME}", ended=True)
    assert urlsplit(other.url).path == "/v2/connect/return"
    assert "another browser" in notice(other)
    other.get_by_role("link", name=f"Return to {APP_NAME}").click()
    assert_token_expire(wait_for_callback(other, callback_server), "another browser")

    first.goto(f"{partner.server.url}/v2/connect/session")
    on_page(first, f"We could not connect to {BANK_NAME}", ended=True)
    first.get_by_role("link", name=f"Return to {APP_NAME}").click()
    assert_token_expire(wait_for_callback(first, callback_server), "another browser")
    assert_clean(first, ended=True)
    assert_clean(other, ended=True)


def test_a_slow_bank_shows_the_progress_page_without_javascript(
    make_page: MakePage, slow_partner: Partner, callback_server: CallbackServer
) -> None:
    page = make_page(java_script_enabled=False)
    agree(page, slow_partner.connect_url())
    log_in(page, "user_slow")
    # Answered at once: the bank is still thinking, and the page asks again by itself.
    on_page(page, f"Waiting for {BANK_NAME}…")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(1)
    expect(page.get_by_text("no need to send the form again")).to_be_visible()
    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_data_readable(slow_partner, login_id, secret)


# --- the end user's language, words and accessibility ---------------------------------------------

SPARBANK_DE = 3
STATEMENT_FILE = 11


def _lang(page: Page) -> str:
    value = page.evaluate("document.documentElement.lang")
    assert isinstance(value, str)
    return value


def shot(page: Page, name: str) -> None:
    """A full-page screenshot for a person to look at, where ``BANKHUB_SHOTS`` names a folder
    (a test writes nothing outside the repository by default)."""
    folder = os.environ.get("BANKHUB_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_the_language_comes_from_the_token_the_browser_or_the_bank_country(
    make_page: MakePage, partner: Partner, callback_server: CallbackServer
) -> None:
    # the partner's locale wins over the browser's English, and holds across the bank's
    # redirect: the page the user sees after the round trip is still German
    page = make_page()
    page.goto(partner.connect_url(locale="de"))
    on_page(page, f"{APP_NAME} bittet um Zugriff auf Ihre Bankdaten")
    assert _lang(page) == "de"
    page.get_by_role("button", name="Ich stimme zu, weiter").click()
    on_page(page, f"Bei {BANK_NAME} anmelden")
    # the sandbox bank's own words are in its catalog too
    page.get_by_label("Benutzername").fill("user_redirect")
    page.get_by_label("Passwort").fill("pass_good")
    page.get_by_role("button", name="Anmelden").click()
    page.get_by_role("link", name=f"Weiter zu {BANK_NAME}").click()
    page.wait_for_url(re.compile(r"/sandbox-bank/authorize\?"))
    # the bank is told the page's language (ui_locales) and speaks it, not the browser's
    assert _lang(page) == "de"
    page.get_by_role("button", name="Freigeben").click()
    assert_success(wait_for_callback(page, callback_server))
    page.goto(f"{partner.server.url}/v2/connect/session")  # back to the connect page
    on_page(page, f"{BANK_NAME} ist verbunden", ended=True)
    assert _lang(page) == "de"

    # no locale with the token: the browser's Accept-Language (a Vietnamese phone)
    phone = make_page(phone=True, locale="vi-VN")
    phone.goto(partner.connect_url())
    on_page(phone, f"{APP_NAME} đề nghị được xem dữ liệu ngân hàng của Quý khách")
    assert _lang(phone) == "vi"
    # the switcher: a link per language, the chosen one kept for the next steps
    phone.get_by_role("link", name="Français").click()
    on_page(phone, f"{APP_NAME} demande à consulter vos données bancaires")
    phone.get_by_role("button", name="J’accepte, continuer").click()
    on_page(phone, f"Connexion à {BANK_NAME}")
    assert _lang(phone) == "fr"

    # a browser language the page does not speak: the bank's country chooses
    japanese = make_page(locale="ja-JP")
    japanese.goto(partner.connect_url(SPARBANK_DE))  # the browser says only ja-JP
    on_page(japanese, f"{APP_NAME} bittet um Zugriff auf Ihre Bankdaten")
    assert _lang(japanese) == "de"


def test_a_wrong_password_in_german_keeps_the_username_and_says_what_to_do(
    make_page: MakePage, partner: Partner
) -> None:
    for phone in (False, True):
        page = make_page(phone=phone)
        page.goto(partner.connect_url(locale="de"))
        page.get_by_role("button", name="Ich stimme zu, weiter").click()
        page.get_by_label("Benutzername").fill("user_good")
        page.get_by_label("Passwort").fill("pass_wrong")
        page.get_by_role("button", name="Anmelden").click()
        on_page(page, f"Bei {BANK_NAME} anmelden")
        said = notice(page)
        assert f"{BANK_NAME} hat den Benutzernamen oder das Passwort nicht akzeptiert." in said
        assert "Sie haben noch 4 Versuche. Nach 5 falschen Versuchen" in said
        username, password = page.get_by_label("Benutzername"), page.get_by_label("Passwort")
        expect(username).to_have_value("user_good")
        expect(password).to_have_value("")
        for field in (username, password):
            expect(field).to_have_attribute("aria-invalid", "true")
            described = field.get_attribute("aria-describedby") or ""
            assert "notice" in described.split(), described
        help_id = (username.get_attribute("aria-describedby") or "").split()[0]
        expect(page.locator(f"#{help_id}")).to_have_class("help")
        assert_accessible(page, f"the credentials step after a wrong password (phone={phone})")


def _walk(page: Page, partner: Partner, where: str) -> None:
    """Every step of the connect page, each checked by axe."""
    page.goto(partner.connect_url())
    on_page(page, f"{APP_NAME} asks to read your bank data")
    assert_accessible(page, f"{where}: consent")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, f"Log in to {BANK_NAME}")
    assert_accessible(page, f"{where}: credentials")

    # a security question (code step), then a device choice (a fieldset with its legend)
    log_in(page, "user_question")
    expect(page.get_by_label(re.compile("Answer", re.IGNORECASE))).to_be_visible()
    assert_accessible(page, f"{where}: code")
    page.get_by_role("textbox").fill("wrong")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("textbox")).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, f"{where}: code after a wrong answer")
    page.get_by_role("textbox").fill("Blue")
    page.get_by_role("button", name="Continue").click()
    group = page.get_by_role("group", name="Where should we send login notifications?")
    expect(group).to_be_visible()
    assert page.locator("fieldset > legend").count() == 1
    assert_accessible(page, f"{where}: choice")

    page.goto(partner.connect_url())
    page.get_by_role("button", name="I agree, continue").click()
    log_in(page, "user_decoupled")
    on_page(page, "Approve in your banking app")
    assert_accessible(page, f"{where}: decoupled")

    page.goto(partner.connect_url())
    page.get_by_role("button", name="I agree, continue").click()
    log_in(page, "user_redirect")
    on_page(page, f"Continue at {BANK_NAME}")
    assert_accessible(page, f"{where}: redirect")
    page.get_by_role("link", name=f"Continue to {BANK_NAME}").click()
    on_page(page, "Share your account data?")
    assert_accessible(page, f"{where}: the sandbox bank")

    page.goto(partner.connect_url())
    page.get_by_role("button", name="I agree, continue").click()
    log_in(page, "user_locked")
    on_page(page, f"We could not connect to {BANK_NAME}")
    assert_accessible(page, f"{where}: failed")
    page.goto(partner.connect_url(STATEMENT_FILE))
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, "Upload a statement file")
    assert_accessible(page, f"{where}: upload")
    page.goto(f"{partner.server.url}/v2/connect/term/{uuid.uuid4()}")
    on_page(page, "Connection unavailable", ended=True)
    assert_accessible(page, f"{where}: error")


def test_axe_finds_no_serious_violation_on_any_step(make_page: MakePage, partner: Partner) -> None:
    _walk(make_page(), partner, "desktop")
    phone = make_page(phone=True)
    _walk(phone, partner, "phone")
    fits_phone(phone)


def test_screenshots_of_consent_and_credentials_in_vi_and_de(
    make_page: MakePage, partner: Partner
) -> None:
    """Looked at by a person (not compared): each language on a desk and on a phone."""
    for locale, agree_button, username, password in (
        ("vi", "Tôi đồng ý, tiếp tục", "Tên đăng nhập", "Mật khẩu"),
        ("de", "Ich stimme zu, weiter", "Benutzername", "Passwort"),
    ):
        for phone in (False, True):
            page = make_page(phone=phone)
            page.goto(partner.connect_url(locale=locale))
            expect(page.get_by_role("button", name=agree_button)).to_be_visible()
            view = "phone" if phone else "desktop"
            shot(page, f"consent-{locale}-{view}")
            assert_accessible(page, f"consent in {locale} on {view}")
            page.get_by_role("button", name=agree_button).click()
            page.get_by_label(username).fill("user_good")
            page.get_by_label(password).fill("pass_wrong")
            page.get_by_role("button", name=re.compile("Đăng nhập|Anmelden")).click()
            expect(page.get_by_role("alert")).to_be_visible()
            shot(page, f"credentials-{locale}-{view}")
            assert_accessible(page, f"credentials in {locale} on {view}")
            if phone:
                fits_phone(page)
