"""FinTS end to end: python-fints' own dummy bank behind the hosted connect page, in Chromium.

One ``bankhub serve`` process and one dummy FinTS server serve the whole module (a start costs
seconds on a shared machine); each test picks how the dummy bank behaves (its TAN challenge,
its TAN methods) by swapping the server's handler class, which it builds per request. The
catalogue's FinTS example bank points at the dummy. The dummy's transactions are from 2015 and
bankhub asks for the last year, so a first fetch stores the account and its balance, and the
statement request the bank received carries that date range.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import segno
from playwright.sync_api import Page, expect

from bankhub.catalogue import load_catalogue
from tests.connectors.fints.dummy import (
    GOOD_PIN,
    USER,
    Approval,
    DummyServer,
    Wrapper,
    chain,
    decoupled_login,
    dummy_server,
    institute_message,
    login_tan,
    tan_media,
)
from tests.e2e.test_connect_browser import (
    APP_NAME,
    CallbackServer,
    Partner,
    assert_clean,
    assert_success,
    on_page,
    wait_for_callback,
)
from tests.support.live_server import LiveServer
from tests.support.loopback import partner_site

CATALOGUE = Path(__file__).resolve().parents[2] / "src" / "bankhub" / "catalogue"
FINTS_SLUG = "example-musterbank-fints-de"
MAINTENANCE = (
    "Wartungsarbeiten",
    "Am Sonntag ist das Online-Banking von 2 bis 6 Uhr nicht erreichbar.",
)


@dataclass
class Bank:
    """The module's dummy FinTS server; :meth:`behave` picks its behaviour for one test."""

    running: DummyServer
    base: type

    def behave(self, wrapper: Wrapper | None) -> None:
        dialogs = self.running.dialogs
        handler = self.base if wrapper is None else wrapper(self.base, dialogs)
        self.running.server.RequestHandlerClass = handler

    def statement_requests(self) -> list[bytes]:
        return [
            found.group(1)
            for dialog in self.running.dialogs.values()
            for message in dialog["in_messages"]
            if (found := re.search(rb"'(HKKAZ:\d+:7\+[^']*)'", message))
        ]


@pytest.fixture(scope="module")
def bank() -> Iterator[Bank]:
    with dummy_server(lifetime=900) as running:
        yield Bank(running, running.server.RequestHandlerClass)


def _catalogue(directory: Path, fints_url: str) -> Path:
    """The shipped catalogue with its FinTS example bank pointed at the dummy server."""
    entries = json.loads((CATALOGUE / "services.json").read_text(encoding="utf-8"))
    for entry in entries:
        if entry["slug"] == FINTS_SLUG:
            entry["params"]["fints_url"] = fints_url
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "services.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    (directory / "media").symlink_to(CATALOGUE / "media")
    return path


@pytest.fixture(scope="module")
def callback_server() -> Iterator[CallbackServer]:
    with partner_site(lifetime=3600) as site:
        yield CallbackServer(site)


@pytest.fixture(scope="module")
def fints_partner(
    bank: Bank, callback_server: CallbackServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Partner]:
    root = tmp_path_factory.mktemp("fints-e2e")
    catalogue = _catalogue(root / "catalogue", bank.running.url)
    server = LiveServer.start(
        data_dir=root / "data",
        env={
            "BANKHUB_CATALOGUE_FILE": str(catalogue),
            "BANKHUB_FINTS_PRODUCT_ID": "TEST-123",
        },
    )
    try:
        creds = server.demo_credentials()
        headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
        with httpx.Client(base_url=server.url, headers=headers, timeout=20.0) as client:
            yield Partner(server, callback_server, client)
    finally:
        server.stop()


def _service_id() -> int:
    (service,) = [s for s in load_catalogue().services if s.slug == FINTS_SLUG]
    return service.id


def _log_in(page: Page, partner: Partner) -> None:
    page.goto(partner.connect_url(_service_id()))
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, re.compile(r"^Log in to "))
    page.get_by_label("Login name").fill(USER)
    page.get_by_label("PIN").fill(GOOD_PIN)
    page.get_by_role("button", name="Log in").click()


def _linked(page: Page, partner: Partner, bank: Bank, before: int) -> str:
    """The callback says success, the account is readable, and the bank was asked for the
    last year's statements; returns the login-secret."""
    login_id, secret = assert_success(wait_for_callback(page, partner.callback))
    assert_clean(page)
    accounts = partner.get("/v2/account", secret)
    assert [(a["login_id"], a["name"], Decimal(a["balance"]), a["currency"]) for a in accounts] == [
        (login_id, "Girokonto", Decimal("1423.60"), "EUR")
    ]
    # the balance comes from a whole statement; the transactions are asked for by date
    sent = bank.statement_requests()[before:]
    starts = [
        datetime.strptime(found.group(1).decode(), "%Y%m%d").replace(tzinfo=UTC).date()
        for s in sent
        if (found := re.search(rb"\+N\+(\d{8})", s))
    ]
    assert starts, f"the first fetch asked for no date range: {sent!r}"
    year_ago = datetime.now(UTC).date() - timedelta(days=365)
    assert all(abs((start - year_ago).days) <= 2 for start in starts), (starts, year_ago)
    return secret


def _animates(page: Page, selector: str) -> bool:
    """Whether the image's pixels change by themselves (SMIL; the page runs no script)."""
    first = page.locator(selector).screenshot()
    return any(page.locator(selector).screenshot() != first for _ in range(20))


def test_chiptan_flicker_code_with_the_manual_fallback(
    page: Page, fints_partner: Partner, bank: Bank
) -> None:
    tan = "88112345"
    hhd = f"CHLGUC  00312908{tan}1012345678900523,42CHLGTEXT0034Geben Sie den Startcode als TAN an"
    bank.behave(login_tan(tan=tan, challenge=hhd))
    before = len(bank.statement_requests())
    _log_in(page, fints_partner)
    on_page(page, "Geben Sie den Startcode als TAN an")
    flicker = page.get_by_role("img", name=re.compile("Flicker code"))
    expect(flicker).to_be_visible()
    source = flicker.get_attribute("src")
    assert source is not None
    assert source.startswith("data:image/svg+xml;base64,")
    # a data: image still decodes after it is attached: wait for it rather than read it half-way
    page.wait_for_function("document.querySelector('figure img').naturalWidth > 0")
    assert _animates(page, "figure img"), "the flicker code does not animate"
    expect(page.get_by_text(tan)).to_be_hidden()  # the manual fallback is folded away

    page.get_by_text("No optical reader?").click()
    expect(page.get_by_text(tan, exact=True)).to_be_visible()
    expect(page.get_by_text("1234567890", exact=True)).to_be_visible()
    expect(page.get_by_text("23,42", exact=True)).to_be_visible()

    page.get_by_label("TAN").fill(tan)
    page.get_by_role("button", name="Continue").click()
    _linked(page, fints_partner, bank, before)


def test_phototan_image_is_shown_and_its_tan_links_the_bank(
    page: Page, fints_partner: Partner, bank: Bank
) -> None:
    out = io.BytesIO()
    segno.make("photoTAN:" + "4711-0815-" * 30, error="h").save(out, kind="png", scale=8)
    png = out.getvalue()
    container = len(b"image/png").to_bytes(2, "big") + b"image/png"
    container += len(png).to_bytes(2, "big") + png
    bank.behave(login_tan(challenge="Bitte scannen Sie die Grafik", hhduc=container))
    before = len(bank.statement_requests())
    _log_in(page, fints_partner)
    on_page(page, "Bitte scannen Sie die Grafik")
    image = page.get_by_role("img", name=re.compile("Scan this image"))
    expect(image).to_be_visible()
    width, _ = segno.make("photoTAN:" + "4711-0815-" * 30, error="h").symbol_size(scale=8)
    expect(page.locator("figure img")).to_have_js_property("naturalWidth", width)
    page.get_by_label("TAN").fill("123456")
    page.get_by_role("button", name="Continue").click()
    _linked(page, fints_partner, bank, before)
    # the image went to the browser only: the server's log never saw it
    log = fints_partner.server.log_path.read_bytes()
    assert base64.b64encode(png)[20:60] not in log


def test_sms_tan_after_choosing_the_method_and_a_refused_tan(
    page: Page, fints_partner: Partner, bank: Bank
) -> None:
    bank.behave(chain(institute_message(*MAINTENANCE), login_tan(mechanisms="942:962")))
    before = len(bank.statement_requests())
    _log_in(page, fints_partner)
    on_page(page, "Choose how you want to receive TANs")
    told = page.get_by_role("region", name="Messages from your bank")
    expect(told).to_have_text(f"{MAINTENANCE[0]}: {MAINTENANCE[1]}")
    page.get_by_label("mobile TAN").check()
    page.get_by_role("button", name="Continue").click()
    on_page(page, "Geben Sie TAN 123456 an")
    expect(page.locator("figure")).to_have_count(0)  # a code field, no image
    expect(told).to_have_text(f"{MAINTENANCE[0]}: {MAINTENANCE[1]}")
    page.get_by_label("TAN").fill("999999")
    page.get_by_role("button", name="Continue").click()
    on_page(page, re.compile(r"The bank refused the TAN \(9941 TAN ungültig\)"))
    page.get_by_label("TAN").fill("123456")
    page.get_by_role("button", name="Continue").click()
    secret = _linked(page, fints_partner, bank, before)
    # the partner reads the bank's message on the login too
    login = fints_partner.client.get("/v2/login", headers={"login-secret": secret})
    assert login.json()["data"]["notices"] == [f"{MAINTENANCE[0]}: {MAINTENANCE[1]}"]


def test_pushtan_approval_is_polled_by_the_page_itself(
    page: Page, fints_partner: Partner, bank: Bank
) -> None:
    approval = Approval()
    bank.behave(decoupled_login(approval))
    before = len(bank.statement_requests())
    _log_in(page, fints_partner)
    on_page(page, "Approve in your banking app")
    expect(page.get_by_text("Bitte bestätigen Sie den Zugriff in Ihrer App")).to_be_visible()
    expect(page.locator('meta[name="bankhub-poll"]')).to_have_count(1)
    # the page polls the bank (static/poll.js; a meta refresh without JavaScript): wait for a
    # poll that found no approval
    for _ in range(100):
        if approval.polls:
            break
        page.wait_for_timeout(100)
    assert approval.polls, "the page never asked the bank again"
    # a poll the bank is slow to answer shows the waiting page, which reloads itself until
    # the bank's answer (still "not approved") brings the approval step back
    expect(page.get_by_role("heading", name="Approve in your banking app")).to_be_visible(
        timeout=30_000
    )
    approval.approved = True
    _linked(page, fints_partner, bank, before)
    assert approval.polls >= 1


def test_the_tan_device_is_chosen_on_the_page(
    page: Page, fints_partner: Partner, bank: Bank
) -> None:
    phones = (("Handy Anna", "0170****12"), ("Handy Ben", "0151****34"))
    bank.behave(chain(tan_media(*phones), login_tan(only_if=b"+Handy Ben")))
    before = len(bank.statement_requests())
    _log_in(page, fints_partner)
    on_page(page, "Choose the device that should receive your TANs")
    expect(page.get_by_label("Handy Anna (0170****12)")).to_be_visible()
    page.get_by_label("Handy Ben (0151****34)").check()
    page.get_by_role("button", name="Continue").click()
    on_page(page, "Geben Sie TAN 123456 an")  # sent to the device chosen
    page.get_by_label("TAN").fill("123456")
    page.get_by_role("button", name="Continue").click()
    _linked(page, fints_partner, bank, before)
