"""The XS2A connector through the hub: the connect page (plain HTTP), the partner's refreshes and
the scheduler against the peer bank, on SQLite and PostgreSQL. Consent status and validity are
honoured, the bank's daily quota of unattended reads is kept, a bank's refusal to be asked more
is surfaced with its retry time."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from bankhub.events.models import Event
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from tests.api.connect_client import ConnectDriver, create_customer, create_token
from tests.conftest import FakeClock, Harness, make_settings, run_harness
from tests.connectors.xs2a.conftest import PASSWORD, PSU_ID
from tests.connectors.xs2a.peer import PeerBank, running

SERVICE_ID = 900
BANK_HISTORY_DAYS = 90


def peer_service(bank: PeerBank, **params: Any) -> dict[str, Any]:
    return {
        "id": SERVICE_ID,
        "slug": "peer-bank-de",
        "name": "Peer Bank",
        "provider": "bankhub",
        "type": "bank",
        "country_code": "DE",
        "has_balance": True,
        "color": {"primary": "003366", "secondary": "FFFFFF"},
        "connector": "xs2a",
        "params": {
            "base_url": bank.base_url,
            "sca_approaches": ["EMBEDDED"],
            "psu_id_required": True,
            "frequency_per_day": 3,
            "history_days": BANK_HISTORY_DAYS,
            "with_balance": True,
            **params,
        },
    }


@pytest.fixture
async def hub_bank(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[Harness, PeerBank]]:
    """The hub with the peer bank (embedded SCA) in its catalogue as service 900."""
    clock.now = datetime(2026, 11, 20, 0, 10, tzinfo=UTC)
    with running(PeerBank(approaches=("EMBEDDED",), methods=("sms",))) as bank:
        shipped = json.loads(files("bankhub.catalogue").joinpath("services.json").read_text())
        catalogue = tmp_path / "catalogue.json"
        catalogue.write_text(json.dumps([*shipped, peer_service(bank)]))
        settings = make_settings(tmp_path, migrated_database_url, catalogue_file=catalogue)
        async for h in run_harness(settings, clock, migrated=True):
            yield h, bank


async def connect_embedded(h: Harness, bank: PeerBank) -> dict[str, Any]:
    """A whole connect at the peer bank with the user present; the callback payload."""
    customer = await create_customer(h, f"xs2a-{len(bank.consents)}")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, SERVICE_ID))
    await driver.agree()
    page = await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    assert "code" in page.lower(), page[:2000]
    await driver.answer(code=bank.code)
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
    return callback.payload


async def refresh(h: Harness, secret: str) -> tuple[int, dict[str, Any]]:
    response = await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=secret))
    return response.status_code, response.json()


async def login_row(h: Harness, login_id: int) -> Login:
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, login_id)
        assert login is not None
        return login


async def status_events(h: Harness, login_id: int) -> list[str]:
    async with h.hub.db.transaction() as session:
        rows = (
            await session.execute(
                select(Event).where(Event.type == "login.status", Event.login_id == login_id)
            )
        ).scalars()
        return [str(e.payload["status"]) for e in rows]


def unattended_reads(bank: PeerBank, day: date) -> dict[str, int]:
    """What the bank counted against ``frequencyPerDay`` on ``day``, per resource."""
    counted: dict[str, int] = {}
    for consent in bank.consents.values():
        for (when, resource), count in consent.reads.items():
            if when == day.isoformat():
                counted[resource] = counted.get(resource, 0) + count
    return counted


def transaction_reads(bank: PeerBank, since: int = 0) -> list[dict[str, str]]:
    return [
        {k: v[-1] for k, v in parse_qs(urlsplit(t).query).items()}
        for _, t, _ in bank.requests[since:]
        if "/transactions" in t and "pageIndex" not in t
    ]


# --- consent honoured ------------------------------------------------------------------------


@pytest.mark.parametrize("ended", ["revokedByPsu", "expired", "rejected"])
async def test_a_consent_ended_at_the_bank_expires_the_login_and_tells_the_partner(
    hub_bank: tuple[Harness, PeerBank], ended: str
) -> None:
    h, bank = hub_bank
    payload = await connect_embedded(h, bank)
    (consent,) = bank.consents.values()
    consent.status = ended  # the user withdrew it at the bank, or the bank ended it
    h.clock.advance(minutes=6)
    status, body = await refresh(h, payload["secret"])
    assert (status, body["data"]["status"]) == (200, "login_consent_expired"), body
    assert await status_events(h, payload["login_id"]) == ["login_consent_expired"]
    login = await login_row(h, payload["login_id"])
    assert login.next_sync_at is None  # nothing unattended until the user reconnects


async def test_a_401_consent_expired_on_a_read_expires_the_login(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = hub_bank
    payload = await connect_embedded(h, bank)
    bank.fail("/v1/accounts", 401, code="CONSENT_EXPIRED")  # after the status said valid
    h.clock.advance(minutes=6)
    status, body = await refresh(h, payload["secret"])
    assert (status, body["data"]["status"]) == (200, "login_consent_expired"), body
    assert await status_events(h, payload["login_id"]) == ["login_consent_expired"]


async def test_the_consents_valid_until_is_the_logins_and_the_sweep_ends_it(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = hub_bank
    bank.max_valid_days = 30  # the bank grants less than the 90 days asked for
    payload = await connect_embedded(h, bank)
    (consent,) = bank.consents.values()
    login = await login_row(h, payload["login_id"])
    # the consent lasts through validUntil (inclusive); the login's ends with it
    assert login.consent_expires_at is not None
    end = datetime.combine(consent.valid_until + timedelta(days=1), datetime.min.time(), UTC)
    assert login.consent_expires_at.replace(tzinfo=UTC) == end
    h.clock.now = login.consent_expires_at.replace(tzinfo=UTC) + timedelta(minutes=1)
    before = len(bank.requests)
    await Runner(h.hub).run_once()
    assert (await login_row(h, payload["login_id"])).status == "consent_expired"
    assert "login_consent_expired" in await status_events(h, payload["login_id"])
    assert len(bank.requests) == before  # an expired consent is not taken to the bank


# --- the bank's daily quota of unattended reads ----------------------------------------------


async def test_a_simulated_day_keeps_the_banks_frequency_per_day(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    """Scheduler and partner together, every 20 minutes for a day: the bank counts at most
    ``frequencyPerDay`` (3 here, the bank's param below the connector's 4) unattended reads of
    each resource, never answers 429, and a reconnect with the user present is not counted."""
    h, bank = hub_bank
    payload = await connect_embedded(h, bank)
    day = h.clock().date()
    assert unattended_reads(bank, day) == {}  # the first fetch had the user present
    runner = Runner(h.hub)
    refused = 0
    reconnected = False
    while True:
        h.clock.advance(minutes=20)
        if h.clock().date() != day:
            break
        await runner.run_once()
        status, body = await refresh(h, payload["secret"])
        if status == 400:
            refused += 1
            assert body["error"] == "BadRequest"
            assert body["extra"]["next_refresh_possible_at"]
        else:
            assert status == 200, body
            assert body["data"]["status"] == "login_active", body
        if not reconnected and h.clock().hour == 12:
            before = dict(unattended_reads(bank, day))
            again = await reconnect_embedded(h, bank, payload["secret"])
            assert again["login_id"] == payload["login_id"]
            payload = again  # a reconnect hands out a new login secret
            reconnected = True
            assert unattended_reads(bank, day) == before  # the user was there
    assert reconnected
    counted = unattended_reads(bank, day)
    assert counted, "no unattended read happened"
    assert max(counted.values()) <= 3, counted
    assert counted[""] == 3, counted  # the account list: the quota was used, not left idle
    assert refused > 0
    assert not any(s == 429 for s in bank_statuses(bank))
    assert (await login_row(h, payload["login_id"])).status == "active"
    # the next day (the bank's too) starts a fresh quota
    h.clock.advance(hours=7)
    bank.advance(1)
    await runner.run_once()
    assert 1 <= unattended_reads(bank, day + timedelta(days=1)).get("", 0) <= 3


def bank_statuses(bank: PeerBank) -> list[int]:
    return [s for s in bank.answered]


async def reconnect_embedded(h: Harness, bank: PeerBank, secret: str) -> dict[str, Any]:
    response = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": "http://localhost:2000/v2"},
        headers=h.headers(login_secret=secret),
    )
    assert response.status_code == 200, response.text
    driver = ConnectDriver(h)
    await driver.open(response.json()["data"]["connect_url"])
    await driver.agree()
    await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    await driver.answer(code=bank.code)
    callback = await driver.finish()
    assert callback.payload["status"] == "success", callback.payload
    return callback.payload


# --- honest limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(429, None), (429, "ACCESS_EXCEEDED"), (403, "ACCESS_EXCEEDED")]
)
async def test_a_bank_refusing_more_requests_rate_limits_the_login_until_its_retry_time(
    hub_bank: tuple[Harness, PeerBank], status: int, code: str | None
) -> None:
    h, bank = hub_bank
    payload = await connect_embedded(h, bank)
    bank.fail("/v1/accounts", status, code=code, retry_after="7200")
    h.clock.advance(minutes=6)
    asked_at = h.clock()
    answer, body = await refresh(h, payload["secret"])
    retry = asked_at + timedelta(hours=2)
    assert answer == 503, body
    assert body["error"] == "ConnectError"
    assert body["extra"]["status"] == "login_rate_limited"
    assert body["extra"]["next_refresh_possible_at"] == wire(retry)
    login = await login_row(h, payload["login_id"])
    assert login.status == "rate_limited"
    assert login.next_sync_at is not None
    assert login.next_sync_at.replace(tzinfo=UTC) >= retry  # the scheduler waits too
    shown = await h.client.get("/v2/login", headers=h.headers(login_secret=payload["secret"]))
    assert shown.json()["data"]["next_refresh_possible_at"] == wire(retry)
    # before the bank's time, nothing is sent to it
    h.clock.advance(minutes=30)
    before = len(bank.requests)
    answer, body = await refresh(h, payload["secret"])
    assert (answer, body["extra"]["next_refresh_possible_at"]) == (400, wire(retry))
    await Runner(h.hub).run_once()
    assert len(bank.requests) == before
    # after it, the login recovers
    h.clock.now = retry + timedelta(seconds=1)
    answer, body = await refresh(h, payload["secret"])
    assert (answer, body["data"]["status"]) == (200, "login_active"), body


def wire(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def test_the_first_sync_reads_the_banks_depth_and_later_ones_the_gap(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = hub_bank
    connected_on = h.clock().date()
    payload = await connect_embedded(h, bank)
    first = transaction_reads(bank)
    assert {q["dateFrom"] for q in first} == {
        (connected_on - timedelta(days=BANK_HISTORY_DAYS)).isoformat()
    }
    login = await login_row(h, payload["login_id"])
    assert login.consent_history_days == BANK_HISTORY_DAYS
    h.clock.advance(days=3)
    bank.advance(3)
    seen = len(bank.requests)
    status, body = await refresh(h, payload["secret"])
    assert status == 200, body
    later = transaction_reads(bank, seen)
    # the gap since the last refresh, with the engine's overlap for late bookings
    assert {q["dateFrom"] for q in later} == {(connected_on - timedelta(days=30)).isoformat()}


# --- the connect page says what the bank is doing ----------------------------------------------


def notice(page: str) -> str:
    """The text the failure page shows the user."""
    found = re.search(r'<p class="notice" role="alert">(.*?)</p>', page, re.S)
    assert found, page
    return html.unescape(found.group(1))


async def _connect_until_failed(h: Harness, bank: PeerBank) -> ConnectDriver:
    customer = await create_customer(h, "xs2a-failing")
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, customer, SERVICE_ID))
    await driver.agree()
    await driver.post("/v2/connect/credentials", {"psu_id": PSU_ID, "password": PASSWORD})
    await driver.answer(code=bank.code)
    return driver


async def test_the_connect_page_says_when_the_bank_limits_requests(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = hub_bank
    bank.fail("/v1/accounts", 429, code="ACCESS_EXCEEDED", retry_after="5400")
    driver = await _connect_until_failed(h, bank)
    callback = await driver.end()
    assert "We could not connect to Peer Bank" in driver.page
    page = notice(driver.page)
    # 00:10 + 90 minutes, in the user's words; the partner gets the bank's own
    assert "Peer Bank is getting too many requests for your accounts right now" in page
    assert "asked us to wait until 01:40 UTC" in page
    assert "ACCESS_EXCEEDED" not in page
    assert callback.payload["error"] == "ConnectError"
    assert "ACCESS_EXCEEDED" in callback.payload["message"]


async def test_the_connect_page_says_when_the_banks_consent_has_ended(
    hub_bank: tuple[Harness, PeerBank],
) -> None:
    h, bank = hub_bank
    bank.fail("/v1/accounts", 401, code="CONSENT_INVALID")
    driver = await _connect_until_failed(h, bank)
    callback = await driver.end()
    page = notice(driver.page)
    assert "your permission to share your account data has ended" in page
    assert "CONSENT_INVALID" not in page
    assert callback.payload["error"] == "login_consent_expired"
