"""Payments on the hosted connect page in headless Chromium, against one real ``bankhub serve``
shared by the module: every sandbox scenario (docs/payments.md "The sandbox bank"), single and
batch, and the user cancelling on the page, each checked at the partner's callback, in
``GET /v2/payment/{id}`` (or the batch) with its history, and in the event feed's
``payment.status`` events; a pending or bank-cancelled payment's later status comes through the
server's own payments sweep (its period, the bank's settling time and the decoupled approval's
delay are set short for the module, so no test waits long).

Then the dashboard's Payments pages on the same server, in file order like a team's day: the
owner creates the team (a developer and a viewer join by their invitation links), switches
payments on and the app to sandbox only after giving password and code again, the developer
makes a test payment and walks through the sandbox bank's scenario, lists, filters and opens
payments, and the viewer sees them with creditor accounts masked, no test payment form, and a
forged one refused."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pyotp
import pytest
from babel.dates import format_date
from playwright.sync_api import Page, expect

from bankhub.dashboard import totp
from bankhub.payments.validation import is_target2_day
from tests.support.axe import assert_accessible
from tests.support.browser import assert_no_page_errors, page_errors
from tests.support.browser_plugin import MakePage
from tests.support.live_server import LiveServer
from tests.support.loopback import PartnerSite, partner_site

SPARBANK, BANK_NAME = 3, "Sandbox Sparbank DE"
APP_NAME = "Demo app"
IBAN = "DE89370400440532013000"


@pytest.fixture(scope="module")
def site() -> Iterator[PartnerSite]:
    with partner_site(lifetime=3600) as partner:
        yield partner


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    started = LiveServer.start(
        data_dir=tmp_path_factory.mktemp("payments") / "data",
        env={
            "BANKHUB_PAYMENT_SWEEP_SECONDS": "0.3",
            "BANKHUB_SANDBOX_PAYMENT_SETTLE_SECONDS": "1",
            "BANKHUB_SANDBOX_DECOUPLED_DELAY_SECONDS": "0.5",
        },
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    creds = server.demo_credentials()
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10.0) as client:
        on = client.put(
            "/v2/payment/settings",
            json={
                "enabled": True,
                "chosen_by": "e2e",
                "daily_count": 1000,
                "daily_amount": "100000",
            },
        )
        assert on.status_code == 200, on.text
        yield client


def _customer(api: httpx.Client) -> str:
    made = api.post("/v2/customer", json={"identifier": f"payer-{uuid.uuid4()}"})
    assert made.status_code == 200, made.text
    customer_id: str = made.json()["data"]["customer_id"]
    return customer_id


def _callback(page: Page, site: PartnerSite) -> dict[str, Any]:
    page.wait_for_url(lambda url: url.startswith(f"{site.origin}/v2/"), timeout=20_000)
    payload: dict[str, Any] = json.loads(unquote(urlsplit(page.url).path.rsplit("/", 1)[-1]))
    return payload


def _clean(page: Page) -> None:
    errors = page_errors(page)
    assert not errors.console, errors
    assert not errors.page, errors


def _log_in(page: Page, username: str) -> None:
    page.get_by_role("button", name=f"Continue to {BANK_NAME}").click()
    expect(page.get_by_role("heading", name=f"Log in to {BANK_NAME}")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pass_good")
    page.get_by_role("button", name="Log in").click()


def _choose_account(page: Page) -> None:
    """No debtor account named: the user picks one at the bank."""
    expect(page.get_by_role("heading", name="be paid from?")).to_be_visible()
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name="Continue").click()


def _code(page: Page) -> None:
    page.get_by_label("Code").fill("123456")
    page.get_by_role("button", name="Continue").click()


# --- every scenario of the sandbox bank ----------------------------------------------------------

#: user → (the callback's status, the status when the flow ends, the final status, the history)
SCENARIOS: dict[str, tuple[str, str, str, list[str]]] = {
    "user_good": ("success", "executed", "executed", ["pending_authorisation", "executed"]),
    "user_otp": ("success", "executed", "executed", ["pending_authorisation", "executed"]),
    "user_decoupled": ("success", "executed", "executed", ["pending_authorisation", "executed"]),
    "user_redirect": ("success", "executed", "executed", ["pending_authorisation", "executed"]),
    "user_nofunds": ("error", "rejected", "rejected", ["pending_authorisation", "rejected"]),
    "user_pending": (
        "success",
        "accepted",
        "executed",
        ["pending_authorisation", "accepted", "executed"],
    ),
    "user_bankcancel": (
        "success",
        "accepted",
        "cancelled",
        ["pending_authorisation", "accepted", "cancelled"],
    ),
    "cancel": ("cancelled", "cancelled", "cancelled", ["pending_authorisation", "cancelled"]),
}


def _create(api: httpx.Client, site: PartnerSite, kind: str) -> dict[str, Any]:
    base = {"customer_id": _customer(api), "service_id": SPARBANK}
    if kind == "single":
        body = {
            **base,
            "callback_url": f"{site.origin}/v2",
            "creditor_name": "Café Zoë",
            "creditor_iban": IBAN,
            "amount": "23.40",
            "currency": "EUR",
        }
        answer = api.post("/v2/payment", json=body, headers={"idempotency-key": uuid.uuid4().hex})
    else:
        transfers = [
            {"creditor_name": f"Supplier {n}", "creditor_iban": IBAN, "amount": "10"}
            | {"currency": "EUR"}
            for n in range(3)
        ]
        body = {**base, "callback_url": f"{site.origin}/v2", "payments": transfers}
        answer = api.post(
            "/v2/payment/batch", json=body, headers={"idempotency-key": uuid.uuid4().hex}
        )
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def _at_the_bank(page: Page) -> None:
    """The bank's own page (redirect): continue there and approve."""
    page.get_by_role("link", name=f"Continue to {BANK_NAME}").click()
    page.wait_for_url(re.compile(r"/sandbox-bank/"))
    page.get_by_role("button", name="Approve").click()


def _authorise(page: Page, user: str) -> None:
    """The user's way through the login and the payment's authorisation at the bank."""
    _log_in(page, user)
    if user == "user_otp":
        _code(page)
    elif user == "user_redirect":
        _at_the_bank(page)
    # user_decoupled: the page checks again by itself (meta refresh) until the app approved
    _choose_account(page)
    if user == "user_otp":
        expect(page.get_by_text("To approve")).to_be_visible()
        _code(page)  # the payment's, after the login's own
    elif user == "user_redirect":
        _at_the_bank(page)


def _read(api: httpx.Client, kind: str, payment_id: str) -> dict[str, Any]:
    path = f"/v2/payment/{payment_id}" if kind == "single" else f"/v2/payment/batch/{payment_id}"
    answer = api.get(path)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def _events(api: httpx.Client, payment_id: str) -> list[str]:
    """The payment's ``payment.status`` events in the feed, read to its end."""
    statuses: list[str] = []
    cursor = "0"
    while True:
        answer = api.get("/v2/event", params={"limit": "500", "cursor": cursor})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        statuses += [
            e["payload"]["status"]
            for e in body["data"]
            if e["type"] == "payment.status" and e["payload"]["payment_id"] == payment_id
        ]
        if not body["data"]:
            return statuses
        cursor = body["next_cursor"]


def _eventually(api: httpx.Client, kind: str, payment_id: str, status: str) -> dict[str, Any]:
    """The sweep's later status (the bank settles after 1 s, the sweep runs every 0.3 s)."""
    deadline = time.monotonic() + 15
    while True:
        seen = _read(api, kind, payment_id)
        if seen["status"] == status or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def _next_target2_day() -> date:
    day = datetime.now(UTC).date() + timedelta(days=10)
    while not is_target2_day(day):
        day += timedelta(days=1)
    return day


@pytest.mark.parametrize(
    ("locale", "amount", "month"),
    [("de-DE", "1.234,50\xa0€", "Zahlung freizugeben"), ("vi-VN", "1.234,50\xa0€", "phê duyệt")],
)
def test_the_payment_page_writes_the_amount_and_date_for_the_language(
    make_page: MakePage, api: httpx.Client, site: PartnerSite, locale: str, amount: str, month: str
) -> None:
    """The amount (a Decimal from the API's text, never a float) and the execution date as
    the end user's language writes them, with Babel's CLDR data."""
    day = _next_target2_day()
    body = {
        "customer_id": _customer(api),
        "service_id": SPARBANK,
        "callback_url": f"{site.origin}/v2",
        "creditor_name": "Café Zoë",
        "creditor_iban": IBAN,
        "amount": "1234.50",
        "currency": "EUR",
        "execution_date": day.isoformat(),
    }
    answer = api.post("/v2/payment", json=body, headers={"idempotency-key": uuid.uuid4().hex})
    assert answer.status_code == 200, answer.text
    for phone in (False, True):
        page = make_page(locale=locale, phone=phone)
        if phone:  # a link is used once: the phone gets a payment of its own
            answer = api.post(
                "/v2/payment", json=body, headers={"idempotency-key": uuid.uuid4().hex}
            )
            assert answer.status_code == 200, answer.text
        page.goto(answer.json()["data"]["connect_url"])
        expect(page.get_by_role("heading", name=re.compile(month))).to_be_visible()
        expect(page.locator("#amount")).to_have_text(amount)
        language = locale[:2]
        expect(page.locator("#execution-date")).to_have_text(
            format_date(day, "long", locale=language)
        )
        assert page.evaluate("document.documentElement.lang") == language
        assert_accessible(page, f"the payment step in {language} (phone={phone})")
        _clean(page)


@pytest.mark.parametrize("kind", ["single", "batch"])
@pytest.mark.parametrize("user", list(SCENARIOS))
def test_every_sandbox_scenario_end_to_end(
    page: Page, api: httpx.Client, site: PartnerSite, user: str, kind: str
) -> None:
    told, ended, final, history = SCENARIOS[user]
    data = _create(api, site, kind)
    page.goto(data["connect_url"])
    what = "a batch of payments" if kind == "batch" else "a payment"
    heading = f"{APP_NAME} asks you to approve {what}"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    if kind == "single":
        expect(page.locator("#creditor")).to_have_text("Cafe Zoe")  # in SEPA's characters
        expect(page.locator("#amount")).to_have_text("€23.40")
    else:
        expect(page.locator("#count")).to_have_text("3")
        expect(page.locator("#amount")).to_have_text("€30.00")
    _clean(page)
    if user == "cancel":
        page.get_by_role("button", name=f"Cancel and return to {APP_NAME}").click()
    else:
        _authorise(page, user)
    if user == "user_nofunds":
        # the page says why, and its only way on is back to the app
        expect(page.get_by_role("alert")).to_contain_text("AM04 insufficient funds")
        page.get_by_role("link", name=f"Return to {APP_NAME}").click()
    payload = _callback(page, site)
    assert payload["status"] == told, payload
    assert payload["payment_id"] == data["id"]
    if told == "error":
        assert payload["error"] == f"payment_{ended}"
        assert payload["message"] == "AM04 insufficient funds"
    seen = _read(api, kind, data["id"])
    # a bank that settles later may already have (the history below shows the way it went)
    assert seen["status"] in (ended, final), seen
    if final != ended:
        seen = _eventually(api, kind, data["id"], final)
    assert seen["status"] == final, seen
    assert [h["status"] for h in seen["history"]] == history
    if user == "user_bankcancel":
        assert seen["reason"] == "DS02 cancelled by the bank"
    if kind == "batch":
        assert [p["status"] for p in seen["payments"]] == [final] * 3
    assert _events(api, data["id"]) == history
    _clean(page)


# --- the dashboard's Payments pages ---------------------------------------------------------------

OWNER, DEVELOPER, VIEWER = "owner@example.com", "dev@example.com", "viewer@example.com"
PHONE_WIDTH = 360
PASSWORDS = {
    OWNER: "lighthouse keepers count the waves",
    DEVELOPER: "a builder tests on quiet evenings",
    VIEWER: "a viewer reads quietly at noon",
}


@dataclass
class Team:
    """What the dashboard tests learn along the way, shared in file order."""

    server: LiveServer
    seeds: dict[str, str] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    last_step: dict[str, int] = field(default_factory=dict)
    #: the developer's test payment, once made
    test_payment: str = ""

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def code(self, email: str) -> str:
        """A code of a step this member has not used (the next one is accepted too)."""
        step = max(int(time.time()) // totp.STEP_SECONDS, self.last_step.get(email, -1) + 1)
        while step > int(time.time()) // totp.STEP_SECONDS + 1:
            time.sleep(0.5)  # a real server's clock: the only way to a fresh step
        self.last_step[email] = step
        return pyotp.TOTP(self.seeds[email]).at(step * totp.STEP_SECONDS)


@pytest.fixture(scope="module")
def team(server: LiveServer) -> Team:
    return Team(server)


def _enrol(page: Page, team: Team, email: str) -> None:
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    team.seeds[email] = page.locator("#manual-key").inner_text().strip()
    page.get_by_label("The 6-digit code the app shows now").fill(team.code(email))
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("link", name="I have saved them: continue").click()
    expect(page.get_by_text(f"{email} · ")).to_be_visible()
    team.states[email] = page.context.storage_state()


def _as(make_page: MakePage, team: Team, email: str, **options: Any) -> Page:
    return make_page(storage_state=team.states[email], **options)


def _fits_a_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert isinstance(width, int)
    assert width <= PHONE_WIDTH, f"{page.url} scrolls sideways: {width}px > {PHONE_WIDTH}px"


def _payments_path(server: LiveServer) -> str:
    return f"/dashboard/apps/{server.demo_credentials()['client_id']}/payments"


def test_dashboard_team_owner_developer_and_viewer(make_page: MakePage, team: Team) -> None:
    owner = make_page()
    owner.goto(team.url("/dashboard/sign-up"))
    owner.get_by_label("Email").fill(OWNER)
    owner.get_by_label("Password", exact=True).fill(PASSWORDS[OWNER])
    owner.get_by_label("Password again").fill(PASSWORDS[OWNER])
    owner.get_by_role("button", name="Create owner").click()
    _enrol(owner, team, OWNER)
    for email, role in ((DEVELOPER, "developer"), (VIEWER, "viewer")):
        owner.goto(team.url("/dashboard/team"))
        owner.get_by_label("Email").fill(email)
        owner.get_by_label("Role").select_option(role)
        owner.get_by_role("button", name="Invite").click()
        link = owner.locator("#invite-link").inner_text().strip()
        member = make_page()
        member.goto(link)
        member.get_by_label("Choose a password").fill(PASSWORDS[email])
        member.get_by_label("Password again").fill(PASSWORDS[email])
        member.get_by_role("button", name="Continue").click()
        _enrol(member, team, email)
    assert_no_page_errors(owner)


def test_the_owner_switches_payments_and_the_mode_after_reauthentication(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    client_id = team.server.demo_credentials()["client_id"]
    developer = _as(make_page, team, DEVELOPER)
    developer.goto(team.url(f"/dashboard/apps/{client_id}"))
    expect(developer.locator("#payments-switch")).to_contain_text("Payment initiation is on")
    expect(developer.get_by_role("button", name="Save payment settings")).to_have_count(0)

    # the owner's last password and code are older than the window (as an injected clock
    # would have it): the server forgets when they were given
    with sqlite3.connect(team.server.data_dir / "bankhub.sqlite3") as db:
        db.execute("UPDATE member_sessions SET reauth_at = NULL")
    owner = _as(make_page, team, OWNER)
    owner.goto(team.url(f"/dashboard/apps/{client_id}"))
    owner.get_by_label("Transfers a day (a batch counts each)").fill("999")
    owner.get_by_role("button", name="Save payment settings").click()
    expect(owner.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    assert api.get("/v2/payment/settings").json()["data"]["daily_count"] == 1000
    owner.get_by_label("Password").fill(PASSWORDS[OWNER])
    owner.get_by_label("Code from your authenticator app").fill(team.code(OWNER))
    owner.get_by_role("button", name="Confirm").click()
    owner.get_by_label("Transfers a day (a batch counts each)").fill("999")
    owner.get_by_role("button", name="Save payment settings").click()
    expect(owner.get_by_text("The payment settings were saved.")).to_be_visible()
    saved = api.get("/v2/payment/settings").json()["data"]
    assert (saved["enabled"], saved["daily_count"], saved["set_by"]) == (True, 999, OWNER)
    owner.locator('input[name="mode"][value="sandbox"]').check()
    owner.get_by_role("button", name="Save mode").click()
    expect(owner.get_by_text("The app's mode was saved.")).to_be_visible()
    assert_no_page_errors(owner)


def test_a_developer_makes_a_test_payment_through_the_sandbox_bank(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    page = _as(make_page, team, DEVELOPER, phone=True)
    page.goto(team.url(_payments_path(team.server)))
    _fits_a_phone(page)
    form = page.locator("#test-payment")
    form.get_by_label("Sandbox bank").select_option(str(SPARBANK))
    form.get_by_label("Creditor name").fill("Bäckerei Groß")
    form.get_by_label("Amount (each transfer)").fill("7.30")
    form.get_by_role("button", name=re.compile("Make the test payment")).click()
    heading = f"{APP_NAME} asks you to approve a payment"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.locator("#creditor")).to_have_text("Backerei Gross")
    _log_in(page, "user_otp")
    _code(page)
    _choose_account(page)
    _code(page)
    expect(page.get_by_text("The bank took the test payment.")).to_be_visible()
    expect(page.locator("#payment-status")).to_have_text("executed")
    expect(page.locator("#history tbody tr")).to_have_count(2)
    team.test_payment = page.url.rsplit("/", 1)[-1].split("?", 1)[0]
    seen = api.get(f"/v2/payment/{team.test_payment}").json()["data"]
    assert (seen["status"], seen["amount"], seen["creditor_name"]) == (
        "executed",
        "7.30",
        "Backerei Gross",
    )
    expect(page.locator("#transfers")).to_contain_text(IBAN)
    assert_no_page_errors(page)


def test_the_list_filters_and_opens_a_batch(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    page = _as(make_page, team, DEVELOPER)
    page.goto(team.url(_payments_path(team.server)))
    expect(page.locator(f'tr[data-payment="{team.test_payment}"]')).to_be_visible()
    page.get_by_label("Status").select_option("rejected")
    page.get_by_label("Kind").select_option("batch")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tr[data-payment]")
    expect(rows).to_have_count(1)  # the batch of user_nofunds
    expect(rows.first.locator(".status")).to_have_text("rejected")
    page.get_by_label("Amount from").fill("7")
    page.get_by_label("Amount to").fill("8")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Kind").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-payment", team.test_payment)
    page.get_by_label("Amount from").fill("")
    page.get_by_label("Amount to").fill("")
    page.get_by_label("Status").select_option("rejected")
    page.get_by_label("Kind").select_option("batch")
    page.get_by_role("button", name="Filter").click()
    rows.first.get_by_role("link").click()
    expect(page.locator("#payment-reason")).to_have_text("AM04 insufficient funds")
    expect(page.locator("#transfers tbody tr")).to_have_count(3)
    expect(page.locator("#transfers .status")).to_have_text(["rejected"] * 3)
    assert_no_page_errors(page)


def test_a_viewer_sees_payments_masked_and_cannot_make_one(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    page = _as(make_page, team, VIEWER, phone=True)
    page.goto(team.url(_payments_path(team.server)))
    expect(page.locator(f'tr[data-payment="{team.test_payment}"]')).to_be_visible()
    expect(page.locator("#test-payment")).to_have_count(0)
    expect(page.locator("#test-payment-role")).to_be_visible()
    _fits_a_phone(page)
    page.goto(team.url(f"{_payments_path(team.server)}/{team.test_payment}"))
    _fits_a_phone(page)
    expect(page.locator("#transfers")).to_contain_text("DE•••• 3000")
    expect(page.locator("#transfers")).not_to_contain_text(IBAN)
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf
    before = len(api.get("/v2/payment", params={"limit": "200"}).json()["data"])
    forged = page.request.post(
        team.url(f"{_payments_path(team.server)}/test"),
        form={
            "csrf": csrf,
            "idempotency_key": uuid.uuid4().hex,
            "service_id": str(SPARBANK),
            "kind": "single",
            "creditor_name": "Mallory",
            "creditor_iban": IBAN,
            "amount": "999",
            "currency": "EUR",
        },
        headers={"origin": team.server.url},
    )
    assert forged.status == 403
    assert len(api.get("/v2/payment", params={"limit": "200"}).json()["data"]) == before
    assert_no_page_errors(page)


# --- the dashboard's Signatures page (the team above, on the same server) ---------------------


def test_signature_keys_added_and_revoked_after_reauthentication(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    """A developer adds a required Ed25519 key on the Signatures page only after password and
    code again, the API then refuses the app's unsigned requests, and revoking the key serves
    them again; a viewer sees the key but no form, and a forged post is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = f"/dashboard/apps/{team.server.demo_credentials()['client_id']}/signatures"
    public = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with sqlite3.connect(team.server.data_dir / "bankhub.sqlite3") as db:
        db.execute("UPDATE member_sessions SET reauth_at = NULL")
    developer = _as(make_page, team, DEVELOPER)
    developer.goto(team.url(path.rsplit("/", 1)[0]))
    developer.get_by_role("link", name="Signatures", exact=True).click()
    expect(developer.get_by_role("heading", name="Signatures of")).to_be_visible()

    def fill() -> None:
        developer.get_by_label("Public key: PEM").fill(public)
        developer.get_by_label("Label (optional)").fill("browser")
        developer.get_by_label("Required: refuse the app's unsigned requests").check()
        developer.get_by_role("button", name="Add key").click()

    fill()
    expect(developer.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    assert api.get("/v2/signature/key").status_code == 200
    developer.get_by_label("Password").fill(PASSWORDS[DEVELOPER])
    developer.get_by_label("Code from your authenticator app").fill(team.code(DEVELOPER))
    developer.get_by_role("button", name="Confirm").click()
    # the change waited for the password and code and is carried out, not typed again
    expect(developer.get_by_text("The key was added.")).to_be_visible()
    row = developer.locator("table.signature-keys tbody tr").first
    expect(row).to_contain_text("required")
    expect(row).to_contain_text("ed25519")
    assert api.get("/v2/signature/key").json()["error"] == "SignatureRequired"

    viewer = _as(make_page, team, VIEWER)
    viewer.goto(team.url(path))
    expect(viewer.locator("table.signature-keys")).to_contain_text("browser")
    expect(viewer.locator("#add-signature-key")).to_have_count(0)
    expect(viewer.get_by_role("button", name="Revoke")).to_have_count(0)
    csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
    forged = viewer.request.post(
        team.url(path),
        form={"csrf": csrf or "", "public_key": public, "label": "mallory"},
        headers={"origin": team.server.url},
    )
    assert forged.status == 403

    developer.get_by_role("button", name="Revoke").click()
    expect(developer.get_by_text("The key was revoked; it no longer signs.")).to_be_visible()
    expect(row).to_contain_text("revoked")
    assert api.get("/v2/signature/key").status_code == 200
    assert_no_page_errors(developer)
    assert_no_page_errors(viewer)


def test_key_sources_added_synced_and_removed_on_the_signatures_page(
    make_page: MakePage, team: Team, api: httpx.Client
) -> None:
    """A developer points the app at a loopback ``.keys`` URL on the Signatures page (password
    and code again when the window has passed): the page shows the source's state, the key it
    brought and the line it skipped; a key added there appears after "Sync now"; removing the
    source revokes its keys; a viewer sees the sources but no form."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tests.signatures.key_host import key_host

    def line() -> str:
        return (
            ed25519.Ed25519PrivateKey.generate()
            .public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )

    path = f"/dashboard/apps/{team.server.demo_credentials()['client_id']}/signatures"
    with sqlite3.connect(team.server.data_dir / "bankhub.sqlite3") as db:
        db.execute("UPDATE member_sessions SET reauth_at = NULL")
    with key_host() as host:
        host.keys_file("/partner.keys", line() + " laptop", "ssh-dss AAAAB3NzaC1kc3M= old")
        developer = _as(make_page, team, DEVELOPER)
        developer.goto(team.url(path))

        def add() -> None:
            developer.get_by_label("URL (https)").fill(host.url("/partner.keys"))
            developer.get_by_role("button", name="Add source").click()

        add()
        expect(developer.get_by_role("heading", name="Confirm it is you")).to_be_visible()
        assert host.asked == []
        developer.get_by_label("Password").fill(PASSWORDS[DEVELOPER])
        developer.get_by_label("Code from your authenticator app").fill(team.code(DEVELOPER))
        developer.get_by_role("button", name="Confirm").click()
        # the change waited for the password and code and is carried out, not typed again
        expect(developer.get_by_text("The key source was added and synced")).to_be_visible()
        row = developer.locator("table.signature-sources tbody tr").first
        expect(row.locator("td.state")).to_have_text("ok")
        expect(row.locator("td.keys")).to_have_text("1")
        expect(row.locator("td.skipped")).to_contain_text("key type ssh-dss is not accepted")
        expect(row.locator("td.last-good")).not_to_have_text("never")
        expect(developer.locator("table.signature-keys")).to_contain_text("synced:")

        host.keys_file("/partner.keys", line() + " ci")
        row.get_by_role("button", name="Sync now").click()
        expect(developer.get_by_text("The key source was synced")).to_be_visible()
        expect(row.locator("td.keys")).to_have_text("1")
        keys = api.get("/v2/signature/key").json()["data"]
        synced = [k for k in keys if k["source"].startswith("synced:")]
        assert [k["revoked_by"] is None for k in synced] == [False, True]

        viewer = _as(make_page, team, VIEWER)
        viewer.goto(team.url(path))
        expect(viewer.locator("table.signature-sources")).to_contain_text("/partner.keys")
        expect(viewer.locator("#add-signature-source")).to_have_count(0)
        expect(viewer.get_by_role("button", name="Sync now")).to_have_count(0)

        row.get_by_role("button", name="Remove").click()
        expect(developer.get_by_text("The key source was removed")).to_be_visible()
        expect(developer.locator("table.signature-sources")).to_contain_text("No key sources")
    keys = api.get("/v2/signature/key").json()["data"]
    assert all(k["revoked_at"] for k in keys if k["source"].startswith("synced:"))
    assert_no_page_errors(developer)
    assert_no_page_errors(viewer)
