"""A GoCardless login in headless Chromium, against the real ``bankhub serve`` process and the
stateful peer provider on loopback: link → redirect → linked → expired.

The operator's steps are the real commands: ``bankhub banks gocardless-secret`` stores the
secrets, ``bankhub banks gocardless-import DE`` reads the provider's institution list and
``bankhub banks enable`` shows the bank to partners. The user agrees on the connect page, goes to
the provider's link, approves there and comes back through ``/v2/connect/return`` to the
partner's callback; the partner then reads ``/v2/account`` and ``/v2/transaction``. The
provider expires the requisition, and the next refresh turns the login to
``login_consent_expired``.

The bank's logo is on a loopback https host (a throwaway CA that bankhub is told to trust):
the import fetches it, and the connect page shows it from bankhub's own origin, under the
page's unchanged Content-Security-Policy, without the browser asking any other host. The whole
flow runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from tests.banks.logo_host import LogoHost, logo_host
from tests.conftest import upgrade_now
from tests.connectors.gocardless.peer import (
    INSTITUTION,
    SECRET_ID,
    SECRET_KEY,
    PeerProvider,
    running,
)
from tests.e2e.test_connect_browser import (
    APP_NAME,
    CallbackServer,
    Partner,
    _partner,
    assert_clean,
    assert_success,
    callback_server,  # noqa: F401 - the fixture, for this module
    on_page,
    wait_for_callback,
)
from tests.seed_shapes import TRANSACTION_KEYS
from tests.support.server_plugin import LiveServerFactory

BANK = "Peer Bank"
#: the connect page's policy, as it was before banks had logos of their own
CONNECT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@pytest.fixture
def logo_site(tmp_path: Path) -> Iterator[LogoHost]:
    with logo_host(tmp_path, lifetime=600.0) as host:
        yield host


def _trust(logo_site: LogoHost) -> dict[str, str]:
    assert logo_site.pki is not None
    return {"BANKHUB_CA_BUNDLE": str(logo_site.pki.ca)}


@pytest.fixture
def peer(logo_site: LogoHost) -> Iterator[PeerProvider]:
    with running(PeerProvider(lambda: datetime.now(UTC))) as provider:
        for institution in provider.institutions.values():
            institution["logo"] = logo_site.url("/logo.jpg")
        yield provider


def _bankhub(partner: Partner, peer: PeerProvider, *args: str, **extra: str) -> str:
    """A ``bankhub`` command against the live server's data dir, as its operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANKHUB_")}
    env |= {
        "BANKHUB_DATA_DIR": str(partner.server.data_dir),
        "BANKHUB_ENV": "test",
        "NO_COLOR": "1",
        "COLUMNS": "300",
    }
    env |= {"BANKHUB_GOCARDLESS_URL": peer.base_url, **extra}
    done = subprocess.run(
        [sys.executable, "-m", "bankhub", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=partner.server.data_dir.parent,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """The live server's database, and so the operator's commands': its data dir's SQLite
    file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return {}
    url = str(request.getfixturevalue("postgres_url"))
    upgrade_now(url)  # as the operator does before serving on PostgreSQL
    return {"BANKHUB_DATABASE_URL": url}


@pytest.fixture
def gc_partner(
    live_server: LiveServerFactory,
    callback_server: CallbackServer,  # noqa: F811 - the shared fixture
    peer: PeerProvider,
    logo_site: LogoHost,
    database: dict[str, str],
) -> Iterator[Partner]:
    env = {
        "BANKHUB_GOCARDLESS_URL": peer.base_url,
        "BANKHUB_CATALOGUE_REFRESH_SECONDS": "0",
        **_trust(logo_site),
        **database,
    }
    yield from _partner(live_server, callback_server, env)


def test_link_redirect_linked_expired(
    page: Page,
    gc_partner: Partner,
    callback_server: CallbackServer,  # noqa: F811 - the shared fixture
    peer: PeerProvider,
    logo_site: LogoHost,
    database: dict[str, str],
) -> None:
    partner = gc_partner
    said = _bankhub(
        partner,
        peer,
        "banks",
        "gocardless-secret",
        "--secret-id",
        SECRET_ID,
        BANKHUB_GOCARDLESS_SECRET_KEY=SECRET_KEY,
        **database,
    )
    assert SECRET_KEY not in said
    report = json.loads(
        _bankhub(
            partner,
            peer,
            *("banks", "gocardless-import", "DE", "--json"),
            **_trust(logo_site),
            **database,
        )
    )
    assert report["added"] == 1, report
    assert report["logos"] == {"kept": 1, "refused": [], "deferred": 0}, report
    listed = json.loads(_bankhub(partner, peer, "banks", "list", "--json", **database))
    (bank,) = [b for b in listed if b["key"] == f"gocardless:DE:{INSTITUTION}"]
    _bankhub(partner, peer, "banks", "enable", str(bank["id"]), **database)

    # the consent page shows the bank's own logo, from bankhub, under the page's own policy
    asked: list[str] = []

    def record(request: Request) -> None:
        asked.append(request.url)

    page.on("request", record)
    shown = page.goto(partner.connect_url(bank["id"]))
    assert shown is not None
    assert shown.headers["content-security-policy"] == CONNECT_CSP
    logo = page.locator("header.brand img")
    expect(logo).to_have_js_property("complete", True)
    expect(logo).to_have_js_property("naturalWidth", 128)  # re-encoded: 256 px at most 128
    assert logo.get_attribute("src") == (
        f"{partner.server.url}/media/services/bank-{bank['id']}-logo.png"
    )
    page.remove_listener("request", record)
    ours = urlsplit(partner.server.url).netloc
    assert asked
    assert {urlsplit(url).netloc for url in asked if not url.startswith("data:")} == {ours}, asked
    logo_site.asked.clear()

    # declined: refusing at the bank is the user's choice not to connect; the page says so
    # and offers the way back, which tells the partner the user cancelled
    page.get_by_role("button", name="I agree, continue").click()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("link", name=f"Continue to {BANK}").click()
    page.get_by_role("link", name="Decline").click()
    on_page(page, f"We could not connect to {BANK}")
    # the user declined: the page says it as their choice (the bank's words go to the callback)
    assert f"You declined the consent at {BANK}" in page.get_by_role("alert").inner_text()
    page.get_by_role("link", name=f"Return to {APP_NAME}").click()
    assert wait_for_callback(page, callback_server)["status"] == "cancelled"
    assert not peer.requisitions  # the rejected requisition was deleted at the provider

    # link: the connect page, then the provider's link
    page.goto(partner.connect_url(bank["id"]))
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    on_page(page, f"Connect to {BANK}")
    page.get_by_role("button", name="Continue").click()
    on_page(page, f"Continue to {BANK}")
    requisition = peer.only_requisition()
    assert requisition.status == "CR"
    page.get_by_role("link", name=f"Continue to {BANK}").click()
    # redirect: at the provider's (the peer's) pages, then back through /v2/connect/return
    page.wait_for_url(f"{peer.base_url}/start/{requisition.id}")
    page.get_by_role("link", name="Approve").click()
    payload = wait_for_callback(page, callback_server)
    login_id, secret = assert_success(payload)
    assert_clean(page)
    assert requisition.status == "LN"
    assert urlsplit(requisition.redirect).path == "/v2/connect/return"

    # linked: the partner reads what the provider gave
    accounts = partner.get("/v2/account", secret)
    assert len(accounts) == 2
    assert {a["login_id"] for a in accounts} == {login_id}
    assert {a["balance"] for a in accounts} == {"1234.56"}
    rows = partner.get("/v2/transaction", secret, account_id=accounts[0]["id"])
    assert len(rows) == 6
    for row in rows:
        assert set(row) == TRANSACTION_KEYS
    assert sum(1 for r in rows if (r["meta"] or {}).get("status") == "pending") == 1

    # expired: the provider ends the requisition; the next refresh says so
    peer.set_status(requisition.id, "EX")
    with httpx.Client(base_url=partner.server.url, headers=partner.client.headers) as client:
        refreshed = client.put("/v2/login/refresh", headers={"login-secret": secret})
        login = client.get("/v2/login", headers={"login-secret": secret})
    assert refreshed.status_code in (200, 400), refreshed.text
    assert login.json()["data"]["status"] == "login_consent_expired", login.text
    assert logo_site.asked == []  # the browser never asked the logo host
