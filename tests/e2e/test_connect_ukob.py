"""A UK Open Banking bank connected through the hosted connect page in headless Chromium.

The real ``bankhub serve`` process reaches the peer bank (``tests/connectors/ukob/peer.py``: an
authlib authorization server and a stateful Read/Write API) over mutual TLS with the bank's
transport certificate and signs its JWTs with the signing key, both named in the catalogue
entry as an operator would name them. The user agrees, continues to the bank, approves there;
the bank answers in the URL fragment (the hybrid flow), the return step's page hands it back to
bankhub, and the partner's callback gets a login whose accounts and transactions it reads
through ``/v2/account`` and ``/v2/transaction``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.connectors.ukob.peer import API, CLIENT_ID, SIGNING_KID, ObBank, running, tpp_jwks
from tests.connectors.xs2a.eidas_pki import EidasPki, make_eidas_pki
from tests.e2e.test_connect_browser import (
    APP_NAME,
    SERVER_ENV,
    CallbackServer,
    Partner,
    _partner,
    assert_clean,
    assert_success,
    on_page,
    wait_for_callback,
)
from tests.seed_shapes import TRANSACTION_KEYS
from tests.support.browser_plugin import MakePage
from tests.support.loopback import partner_site
from tests.support.server_plugin import LiveServerFactory

UK_SERVICE_ID = 90
UK_BANK = "Peer Bank UK"


@pytest.fixture(scope="module")
def callback_server() -> Iterator[CallbackServer]:
    with partner_site(lifetime=3600) as site:
        yield CallbackServer(site)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> EidasPki:
    return make_eidas_pki(tmp_path_factory.mktemp("ukob-e2e-pki"))


@pytest.fixture
def uk_bank(pki: EidasPki) -> Iterator[ObBank]:
    peer = ObBank(tpp_jwks(pki.qseal.certificate))
    with running(peer, pki, public_tls=True) as served:
        yield served


def catalogue_with(bank: ObBank, pki: EidasPki, directory: Path) -> Path:
    """The shipped catalogue plus the UK bank, as an operator's ``BANKHUB_CATALOGUE_FILE``."""
    services: list[dict[str, Any]] = json.loads(
        files("bankhub.catalogue").joinpath("services.json").read_text()
    )
    params = {
        "base_url": f"{bank.mtls_origin}{API}",
        "well_known_url": f"{bank.public_origin}/.well-known/openid-configuration",
        "client_id": CLIENT_ID,
        "signing_key_id": SIGNING_KID,
        "financial_id": "0015800001041RHAAY",
        "ca_bundle": str(pki.bank_ca),
        "qwac_cert_file": str(pki.qwac.cert),
        "qwac_key_file": str(pki.qwac.key),
        "qseal_cert_file": str(pki.qseal.cert),
        "qseal_key_file": str(pki.qseal.key),
    }
    services.append(
        {
            "id": UK_SERVICE_ID,
            "slug": "peer-bank-uk",
            "name": UK_BANK,
            "provider": "bankhub",
            "type": "bank",
            "country_code": "GB",
            "has_balance": True,
            "color": {"primary": "00395D", "secondary": "FFFFFF"},
            "call_to_action": None,
            "connector": "ukob",
            "params": params,
        }
    )
    path = directory / "services.json"
    path.write_text(json.dumps(services))
    # media live beside the catalogue file: the shipped ones, and the UK bank's (borrowed)
    shipped = Path(str(files("bankhub.catalogue").joinpath("media")))
    shutil.copytree(shipped, directory / "media")
    for name in ("logo", "cover-small", "cover-medium", "cover-large"):
        borrowed = shipped / f"example-sparkasse-musterstadt-de-{name}.png"
        shutil.copy(borrowed, directory / "media" / f"peer-bank-uk-{name}.png")
    return path


@pytest.fixture
def partner(
    live_server: LiveServerFactory,
    callback_server: CallbackServer,
    uk_bank: ObBank,
    pki: EidasPki,
    tmp_path: Path,
) -> Iterator[Partner]:
    env = {**SERVER_ENV, "BANKHUB_CATALOGUE_FILE": str(catalogue_with(uk_bank, pki, tmp_path))}
    for made in _partner(live_server, callback_server, env):
        uk_bank.redirect_uris.append(f"{made.server.url}/v2/connect/return")
        yield made


def test_uk_open_banking_redirect_reaches_the_callback_with_data(
    make_page: MakePage, partner: Partner, callback_server: CallbackServer, uk_bank: ObBank
) -> None:
    page = make_page(ignore_https_errors=True)  # the bank's pages are served by a test CA
    response = page.goto(partner.connect_url(UK_SERVICE_ID))
    assert response is not None
    assert response.status == 200
    on_page(page, f"{APP_NAME} asks to read your bank data")
    page.get_by_role("button", name="I agree, continue").click()
    # nothing to type: the user authenticates at the bank, not here
    on_page(page, f"Connect to {UK_BANK}")  # nothing to type: the user logs in at the bank
    page.get_by_role("button", name="Continue").click()
    on_page(page, f"Continue at {UK_BANK}")
    page.get_by_role("link", name=f"Continue to {UK_BANK}").click()
    page.wait_for_url(re.compile(r"/authorize\?"))
    assert page.url.startswith(f"{uk_bank.public_origin}/authorize?")
    expect(page.get_by_role("heading", name=UK_BANK)).to_be_visible()
    page.get_by_role("link", name="Approve").click()

    login_id, secret = assert_success(wait_for_callback(page, callback_server))
    assert_clean(page)
    (consent,) = uk_bank.consents.values()
    assert consent.status == "Authorised"

    accounts = partner.get("/v2/account", secret)
    assert {a["login_id"] for a in accounts} == {login_id}
    assert sorted((a["name"], a["balance"], a["type"], a["currency"]) for a in accounts) == [
        ("Everyday", "1230.45", "current", "GBP"),
        ("Rainy day", "-15.00", "savings", "GBP"),
    ]
    current = next(a for a in accounts if a["name"] == "Everyday")
    rows = partner.get("/v2/transaction", secret, account_id=current["id"])
    assert rows
    for row in rows:
        assert set(row) == TRANSACTION_KEYS
        assert row["currency"] == "GBP"
    assert sorted(row["amount"] for row in rows) == sorted(["-12.50", "2500.00", "-99.99", "-7.25"])
    token_calls = [e for e in uk_bank.exchanges if e.path == "/token" and e.status == 200]
    assert len(token_calls) >= 3  # client credentials twice, the code once
    assert urlsplit(page.url).path.startswith("/v2/")
