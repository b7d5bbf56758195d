"""GoCardless Bank Account Data in the hub: secrets at rest, the shared token pair, the
institutions in the catalogue, and a login through the connect page against the peer provider,
on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from bankhub.banks import gocardless, services
from bankhub.banks.gocardless import DbTokenVault, GoCardless, InstitutionRefresh
from bankhub.banks.logos import LogoFetcher
from bankhub.banks.models import Bank, BankLogo
from bankhub.connectors.gocardless.client import TokenPair
from bankhub.logins.models import Login
from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.banks.logo_host import LogoHost
from tests.conftest import BASE_URL, FakeClock, Harness, make_settings, run_harness
from tests.connectors.gocardless.peer import (
    IBANS,
    INSTITUTION,
    SECRET_ID,
    SECRET_KEY,
    PeerProvider,
    running,
)

LINK = re.compile(r'href="([^"]+/start/[^"]+)"')


@pytest.fixture
def peer(clock: FakeClock) -> Iterator[PeerProvider]:
    with running(PeerProvider(clock)) as provider:
        yield provider


@pytest.fixture
async def gc(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock, peer: PeerProvider
) -> AsyncIterator[Harness]:
    """The harness with GoCardless pointed at the peer, for Germany and the UK."""
    settings = make_settings(
        tmp_path,
        migrated_database_url,
        gocardless_url=peer.base_url,
        gocardless_countries="de, GB",
    )
    async for running_harness in run_harness(settings, clock, migrated=True):
        yield running_harness


async def configure(h: Harness, secret_key: str = SECRET_KEY) -> None:
    async with h.hub.db.transaction(write=True) as session:
        await gocardless.set_secrets(session, h.hub.keyring, h.clock, SECRET_ID, secret_key)


async def enable_peer_bank(h: Harness) -> int:
    """Configure, import Germany's institutions, enable Peer Bank: its service id."""
    await configure(h)
    outcome, skipped = await h.hub.gocardless.import_institutions(
        ["DE"], reserved_ids=h.hub.catalogue.base_ids
    )
    assert not skipped
    (service_id,) = outcome.added
    async with h.hub.db.transaction(write=True) as session:
        await services.set_enabled(session, h.clock, [service_id], True)
    h.hub.live.invalidate()
    await h.hub.live.ensure(h.hub.db)
    return service_id


async def link_through_the_page(h: Harness, service_id: int, *, choice: str = "approve") -> Any:
    """A user on the connect page: consent, continue, approve at the provider, come back."""
    customer = await create_customer(h, f"gc-{datetime.now(UTC).timestamp()}")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, service_id))
    await driver.agree()
    page = await driver.post("/v2/connect/credentials", {})
    link = LINK.search(page)
    assert link, page
    async with httpx.AsyncClient() as browser:
        at_bank = await browser.get(html.unescape(link.group(1)), params={"choice": choice})
    assert at_bank.status_code == 302
    location = at_bank.headers["location"]
    assert location.startswith(f"{BASE_URL}/v2/connect/return?state=")
    assert "ref=" in location
    back = await h.client.get(location.removeprefix(BASE_URL), follow_redirects=False)
    assert back.status_code == 303
    await driver.show()
    return await driver.end()


# --- secrets and tokens --------------------------------------------------------------------------


async def test_secrets_encrypted_at_rest(gc: Harness) -> None:
    h = gc
    await configure(h)
    async with h.hub.db.transaction() as session:
        row = (await session.execute(text("SELECT * FROM gocardless_settings"))).mappings().one()
        assert await gocardless.configured(session)
    stored = " ".join(str(v) for v in row.values())
    assert SECRET_ID not in stored
    assert SECRET_KEY not in stored
    vault = DbTokenVault(h.hub.db, h.hub.keyring, h.clock)
    loaded = await vault.load()
    assert loaded.secrets is not None
    assert (loaded.secrets.secret_id, loaded.secrets.secret_key) == (SECRET_ID, SECRET_KEY)


async def test_one_token_pair_for_every_process(gc: Harness, peer: PeerProvider) -> None:
    """Two processes (two GoCardless accesses on one database) share the stored pair: the
    provider issues one, and it is stored encrypted."""
    h = gc
    await configure(h)
    token = await h.hub.gocardless.keeper.access_token()
    other = GoCardless(h.hub.db, h.hub.keyring, h.hub.http, h.clock, peer.base_url)
    assert await other.keeper.access_token() == token
    assert peer.tokens_issued == 1
    async with h.hub.db.transaction() as session:
        row = (await session.execute(text("SELECT * FROM gocardless_settings"))).mappings().one()
    assert token not in " ".join(str(v) for v in row.values())
    assert row["token_version"] == 2  # the secrets, then the pair


async def test_a_pair_is_stored_only_over_the_version_read(gc: Harness) -> None:
    h = gc
    await configure(h)
    vault = DbTokenVault(h.hub.db, h.hub.keyring, h.clock)
    version = (await vault.load()).version
    now = h.clock()
    pair = TokenPair("a", now + timedelta(days=1), "r", now + timedelta(days=30))
    assert await vault.store(pair, version)
    stale = TokenPair("b", now + timedelta(days=1), "r", now + timedelta(days=30))
    assert not await vault.store(stale, version)
    loaded = (await vault.load()).pair
    assert loaded is not None
    assert loaded.access == "a"


async def test_new_secrets_drop_the_old_pair(gc: Harness, peer: PeerProvider) -> None:
    h = gc
    await configure(h)
    await h.hub.gocardless.keeper.access_token()
    await configure(h)
    stored = await DbTokenVault(h.hub.db, h.hub.keyring, h.clock).load()
    assert stored.pair is None


# --- the institutions in the catalogue -----------------------------------------------------------


async def test_daily_refresh_imports_each_country_once_a_day(
    gc: Harness, peer: PeerProvider
) -> None:
    h = gc
    refresh = InstitutionRefresh(h.hub.gocardless, reserved_ids=h.hub.catalogue.base_ids)
    assert await refresh.sweep() is None  # not configured: nothing to import
    await configure(h)
    other = InstitutionRefresh(h.hub.gocardless, reserved_ids=h.hub.catalogue.base_ids)
    outcome = await refresh.sweep()
    assert outcome is not None
    assert len(outcome.added) == 2  # Peer Bank (DE), Short Bank (GB; its IE is not enabled)
    assert await other.sweep() is None  # another runner the same day finds nothing due
    async with h.hub.db.transaction() as session:
        banks = {b.key: b for b in (await session.execute(select(Bank))).scalars()}
    peer_bank = banks[f"gocardless:DE:{INSTITUTION}"]
    assert not peer_bank.enabled
    assert (peer_bank.name, peer_bank.bic, peer_bank.connector) == (
        "Peer Bank",
        "PEERDEBB",
        "gocardless",
    )
    assert peer_bank.params == {
        "institution_id": INSTITUTION,
        "history_days": 540,
        "consent_days": 90,
    }
    assert peer_bank.logo_url == "https://cdn.example/peer.png"
    assert "gocardless:GB:SHORTBANK_SHRTGB2L" in banks
    # a day later the list is read again; a renamed bank keeps its service id
    peer.institutions[INSTITUTION]["name"] = "Peer Bank AG"
    h.clock.advance(days=1, seconds=1)
    again = await other.sweep()
    assert again is not None
    assert again.updated == [peer_bank.id]
    assert again.added == []


async def test_the_daily_refresh_fetches_the_logos_of_the_banks_it_stored(
    gc: Harness, peer: PeerProvider, host: LogoHost, outbound: httpx.AsyncClient
) -> None:
    h = gc
    await configure(h)
    peer.institutions[INSTITUTION]["logo"] = host.url("/logo.png")
    for institution_id, institution in peer.institutions.items():
        if institution_id != INSTITUTION:
            institution["logo"] = host.url("/script.svg")
    fetcher = LogoFetcher(outbound, allow_private=True, timeout=2.0)
    refresh = InstitutionRefresh(
        h.hub.gocardless, reserved_ids=h.hub.catalogue.base_ids, logos=fetcher
    )
    assert await refresh.sweep() is not None
    async with h.hub.db.transaction() as session:
        banks = {b.id: b.key for b in (await session.execute(select(Bank))).scalars()}
        kept = {r.bank_id: r for r in (await session.execute(select(BankLogo))).scalars()}
    assert set(kept) == set(banks)  # each bank with a logo URL was tried once
    for bank_id, row in kept.items():
        if banks[bank_id] == f"gocardless:DE:{INSTITUTION}":
            assert row.png is not None
            assert row.failure is None
        else:
            assert row.png is None
            assert row.failure is not None
            assert "SVG" in row.failure
    assert sorted(host.asked) == sorted(["/logo.png"] + ["/script.svg"] * (len(banks) - 1))


async def test_a_failed_import_is_tried_again_within_the_hour(
    gc: Harness, peer: PeerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    h = gc
    await configure(h, secret_key="wrong")
    refresh = InstitutionRefresh(h.hub.gocardless)
    with caplog.at_level(logging.DEBUG):
        assert await refresh.sweep() is None
    assert "refused the operator's secret id and key" in caplog.text
    h.clock.advance(minutes=30)
    assert await refresh.sweep() is None
    assert len(peer.calls("POST", "/token/new/")) == 1  # not tried again yet
    h.clock.advance(minutes=31)
    peer.fail("/token/new/", 503, {"summary": "Service unavailable", "status_code": 503})
    assert await refresh.sweep() is None
    assert len(peer.calls("POST", "/token/new/")) == 2


async def test_secrets_and_tokens_never_logged(
    gc: Harness, peer: PeerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    h = gc
    with caplog.at_level(logging.DEBUG):
        await configure(h)
        await InstitutionRefresh(h.hub.gocardless).sweep()
        token = await h.hub.gocardless.keeper.access_token()
        stored = await DbTokenVault(h.hub.db, h.hub.keyring, h.clock).load()
        logging.getLogger("bankhub.test").warning("%r %r", stored.secrets, stored.pair)
    assert "GoCardless institutions imported" in caplog.text
    assert SECRET_KEY not in caplog.text
    assert token not in caplog.text
    assert stored.pair is not None
    assert stored.pair.refresh not in caplog.text


# --- a login through the connect page ------------------------------------------------------------


async def test_connect_link_then_accounts_and_transactions(gc: Harness, peer: PeerProvider) -> None:
    h = gc
    service_id = await enable_peer_bank(h)
    callback = await link_through_the_page(h, service_id)
    assert callback.payload["status"] == "success", callback.payload
    secret = callback.payload["secret"]
    headers = h.headers(login_secret=secret)
    accounts = (await h.client.get("/v2/account", headers=headers)).json()["data"]
    assert len(accounts) == 2
    assert {a["balance"] for a in accounts} == {"1234.56"}
    transactions = (await h.client.get("/v2/transaction", headers=headers)).json()["data"]
    assert len(transactions) == 12  # 5 booked and 1 pending for each account
    assert sum(1 for t in transactions if (t["meta"] or {}).get("status") == "pending") == 2
    login = (await h.client.get("/v2/login", headers=headers)).json()["data"]
    assert login["status"] == "login_active"
    requisition = peer.only_requisition()
    assert requisition.status == "LN"
    # the consent is the agreement's 90 days from the link
    assert login["consent_expires_at"].startswith(
        (h.clock() + timedelta(days=90)).date().isoformat()
    )

    # reconnect: a new agreement and requisition, the same accounts
    response = await h.client.post(
        "/v2/token/reconnect", json={"callback_url": "http://localhost:2000/v2"}, headers=headers
    )
    assert response.status_code == 200, response.text
    driver = ConnectDriver(h)
    await driver.open(response.json()["data"]["connect_url"])
    await driver.agree()
    page = await driver.post("/v2/connect/credentials", {})
    link = LINK.search(page)
    assert link
    async with httpx.AsyncClient() as browser:
        at_bank = await browser.get(html.unescape(link.group(1)), params={"choice": "approve"})
    await h.client.get(at_bank.headers["location"].removeprefix(BASE_URL), follow_redirects=False)
    await driver.show()
    again = await driver.end()
    assert again.payload["status"] == "success", again.payload
    renewed = h.headers(login_secret=again.payload["secret"])
    after = (await h.client.get("/v2/account", headers=renewed)).json()["data"]
    assert sorted(a["id"] for a in after) == sorted(a["id"] for a in accounts)
    assert peer.only_requisition().id != requisition.id  # the old one was deleted

    # DELETE /v2/login deletes the requisition at the provider
    current = peer.only_requisition()
    deleted = await h.client.delete("/v2/login", headers=renewed)
    assert deleted.status_code == 200, deleted.text
    assert current.id not in peer.requisitions


async def test_declined_at_the_bank_returns_to_the_partner(gc: Harness, peer: PeerProvider) -> None:
    h = gc
    service_id = await enable_peer_bank(h)
    callback = await link_through_the_page(h, service_id, choice="decline")
    assert callback.payload["status"] == "cancelled", callback.payload


async def test_daily_limit_drives_next_refresh_possible_at(gc: Harness, peer: PeerProvider) -> None:
    """The first fetch and three refreshes use the provider's 4 reads of the day: the last
    refresh's next_refresh_possible_at is the provider's reset (midnight UTC), not the
    cooldown, and a refresh before it is refused with that time."""
    h = gc
    h.clock.now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    service_id = await enable_peer_bank(h)
    callback = await link_through_the_page(h, service_id)
    secret = callback.payload["secret"]
    headers = h.headers(login_secret=secret)
    midnight = "2026-11-21T00:00:00.000Z"
    for _ in range(3):
        h.clock.advance(minutes=10)
        response = await h.client.put("/v2/login/refresh", headers=headers)
        assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["next_refresh_possible_at"] == midnight
    h.clock.advance(minutes=10)
    refused = await h.client.put("/v2/login/refresh", headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["extra"]["next_refresh_possible_at"] == midnight
    async with h.hub.db.transaction() as session:
        login = (await session.execute(select(Login))).scalar_one()
    assert login.next_sync_at is not None
    assert login.next_sync_at.replace(tzinfo=UTC) >= datetime(2026, 11, 21, tzinfo=UTC)


async def test_expired_requisition_ends_the_consent(gc: Harness, peer: PeerProvider) -> None:
    h = gc
    service_id = await enable_peer_bank(h)
    callback = await link_through_the_page(h, service_id)
    headers = h.headers(login_secret=callback.payload["secret"])
    peer.set_status(peer.only_requisition().id, "EX")
    h.clock.advance(minutes=10)
    response = await h.client.put("/v2/login/refresh", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["refreshed"] is False
    login = (await h.client.get("/v2/login", headers=headers)).json()["data"]
    assert login["status"] == "login_consent_expired", login
    accounts = (await h.client.get("/v2/account", headers=headers)).json()["data"]
    assert len(accounts) == len(IBANS)  # what was read stays readable


async def test_a_429_holds_the_login_until_the_providers_reset(
    gc: Harness, peer: PeerProvider
) -> None:
    """A read the provider refuses with 429 and a reset: the login is rate limited, and
    neither a manual refresh nor the scheduler tries before that reset."""
    h = gc
    service_id = await enable_peer_bank(h)
    callback = await link_through_the_page(h, service_id)
    headers = h.headers(login_secret=callback.payload["secret"])
    peer.fail(
        "/balances/",
        429,
        {"summary": "Rate limit exceeded", "detail": "Try again in 3600 s", "status_code": 429},
        headers={"HTTP_X_RATELIMIT_RESET": "3600", "HTTP_X_RATELIMIT_REMAINING": "0"},
    )
    h.clock.advance(minutes=10)
    response = await h.client.put("/v2/login/refresh", headers=headers)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "ConnectError"
    assert body["extra"]["status"] == "login_rate_limited"
    reset = h.clock() + timedelta(hours=1)
    wire = reset.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert body["extra"]["next_refresh_possible_at"] == wire
    assert response.headers["retry-after"] == "3600"
    login = (await h.client.get("/v2/login", headers=headers)).json()["data"]
    assert login["status"] == "login_rate_limited"
    h.clock.advance(minutes=30)
    refused = await h.client.put("/v2/login/refresh", headers=headers)
    assert refused.status_code == 400, refused.text
    async with h.hub.db.transaction() as session:
        stored = (await session.execute(select(Login))).scalar_one()
    assert stored.next_sync_at is not None
    assert stored.next_sync_at.replace(tzinfo=UTC) >= reset
    h.clock.advance(minutes=31)
    assert (await h.client.put("/v2/login/refresh", headers=headers)).status_code == 200
