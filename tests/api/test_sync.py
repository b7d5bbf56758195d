"""Refresh, its cool-down, idempotent upserts, reconnect keeping every id (and only for the same
bank identity), statement logins that have nothing to refresh, and how far back syncs read."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bankhub.accounts.models import Transaction
from bankhub.connectors.base import AccountRecord, TransactionRecord
from bankhub.connectors.sandbox import SandboxConnector
from bankhub.db.models import Base
from bankhub.events.models import Event
from bankhub.logins.models import Login
from tests.api.connect_client import (
    CALLBACK,
    Callback,
    ConnectDriver,
    connect,
    create_customer,
    reconnect,
)
from tests.conftest import FakeClock, Harness, make_settings, run_harness
from tests.statements.corpus import read


async def _all_transactions(h: Harness, secret: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await h.client.get(
            f"/v2/transaction?page={page}", headers=h.headers(login_secret=secret)
        )
        assert response.status_code == 200, response.text
        rows.extend(response.json()["data"])
        if "link" not in response.headers:
            return rows
        page += 1


async def _count_rows(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        return int((await session.execute(select(func.count(Transaction.id)))).scalar_one())


async def _refresh(h: Harness, secret: str) -> dict[str, Any]:
    response = await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_refresh_shape_and_cooldown(harness: Harness) -> None:
    h = harness
    payload = await connect(h)
    secret = payload["secret"]
    h.clock.advance(minutes=1)
    data = await _refresh(h, secret)
    assert data["id"] == payload["login_id"]
    assert data["refreshed"] is True
    assert data["last_refresh_at"].endswith("Z")
    assert data["next_refresh_possible_at"] > data["last_refresh_at"]
    again = await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=secret))
    assert again.status_code == 400
    body = again.json()
    assert body["error"] == "BadRequest"
    assert body["extra"]["next_refresh_possible_at"] == data["next_refresh_possible_at"]
    h.clock.advance(minutes=5)
    assert (await _refresh(h, secret))["refreshed"] is True


async def test_repeated_refreshes_never_duplicate(harness: Harness) -> None:
    h = harness
    payload = await connect(h)
    before = await _count_rows(h)
    ids_before = {r["id"] for r in await _all_transactions(h, payload["secret"])}
    for _ in range(3):
        h.clock.advance(minutes=6)
        await _refresh(h, payload["secret"])
    assert await _count_rows(h) == before
    assert {r["id"] for r in await _all_transactions(h, payload["secret"])} == ids_before


async def test_dynamic_bank_adds_new_rows_and_books_pendings_without_duplicates(
    harness: Harness,
) -> None:
    h = harness
    payload = await connect(h, "user_dynamic")
    seen = await _all_transactions(h, payload["secret"])
    for _ in range(4):
        h.clock.advance(hours=7)
        await _refresh(h, payload["secret"])
        rows = await _all_transactions(h, payload["secret"])
        keys = [r["original_id"] for r in rows]
        assert len(keys) == len(set(keys))
        assert len(rows) >= len(seen) - 5  # only pendings that booked may go away
        seen = rows
    async with h.hub.db.transaction() as session:
        kinds = set((await session.execute(select(Event.type))).scalars())
    assert "transactions.new" in kinds


async def test_reconnect_keeps_login_and_account_ids(harness: Harness) -> None:
    h = harness
    first = await connect(h, "user_good")
    accounts = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=first["secret"]))
    ).json()["data"]
    rows = await _all_transactions(h, first["secret"])
    h.clock.advance(minutes=1)
    second = await reconnect(h, first["secret"], "user_good")
    assert second["login_id"] == first["login_id"]
    assert second["secret"] != first["secret"]
    stale = await h.client.get("/v2/account", headers=h.headers(login_secret=first["secret"]))
    assert stale.status_code == 404
    again = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=second["secret"]))
    ).json()["data"]
    assert [a["id"] for a in again] == [a["id"] for a in accounts]
    assert {r["id"] for r in await _all_transactions(h, second["secret"])} == {
        r["id"] for r in rows
    }


async def test_reconnect_keeps_ids_when_the_bank_remints(harness: Harness) -> None:
    h = harness
    first = await connect(h, "user_remint")
    headers = h.headers(login_secret=first["secret"])
    accounts = (await h.client.get("/v2/account", headers=headers)).json()["data"]
    rows = await _all_transactions(h, first["secret"])
    h.clock.advance(minutes=1)
    second = await reconnect(h, first["secret"], "user_remint")
    assert second["login_id"] == first["login_id"]
    again = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=second["secret"]))
    ).json()["data"]
    assert {a["id"] for a in again} == {a["id"] for a in accounts}
    assert {a["original_id"] for a in again}.isdisjoint({a["original_id"] for a in accounts})
    rows_again = await _all_transactions(h, second["secret"])
    assert {r["id"] for r in rows_again} == {r["id"] for r in rows}
    assert {r["original_id"] for r in rows_again}.isdisjoint({r["original_id"] for r in rows})


async def test_needs_user_failures_on_refresh_set_the_status(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    data = await _refresh(h, payload["secret"])
    assert data["refreshed"] is False
    assert data["status"] == "login_consent_expired"
    async with h.hub.db.transaction() as session:
        statuses = [
            e.payload
            for e in (
                await session.execute(select(Event).where(Event.type == "login.status"))
            ).scalars()
        ]
    expired = {"status": "login_consent_expired", "login_id": payload["login_id"]}
    assert {**expired, "event_type": "login.status"} in statuses


# --- a reconnect must be the same bank identity --------------------------------------------------

#: every table a reconnect could write account data, status or events to
DATA_TABLES = (
    "logins",
    "accounts",
    "transactions",
    "transaction_changes",
    "events",
    "webhook_deliveries",
    "sync_runs",
)


async def _data_rows(h: Harness) -> dict[str, list[str]]:
    """Every row of the data tables, as text, for comparing before and after."""
    rows: dict[str, list[str]] = {}
    async with h.hub.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in DATA_TABLES:
                found = (await session.execute(select(table))).all()
                rows[table.name] = sorted(repr(tuple(row)) for row in found)
    assert rows.keys() == set(DATA_TABLES)
    return rows


async def _reconnect_as(h: Harness, secret: str, username: str) -> Callback:
    response = await h.client.post(
        "/v2/token/reconnect",
        json={"callback_url": CALLBACK},
        headers=h.headers(login_secret=secret),
    )
    assert response.status_code == 200, response.text
    h.client.cookies.clear()
    driver = ConnectDriver(h)
    await driver.open(response.json()["data"]["connect_url"])
    await driver.agree()
    await driver.login(username)
    return await driver.end()


async def _login_status(h: Harness, secret: str) -> str:
    response = await h.client.get("/v2/login", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text
    status: str = response.json()["data"]["status"]
    return status


async def test_a_reconnect_as_another_bank_user_is_refused_and_changes_nothing(
    harness: Harness,
) -> None:
    h = harness
    first = await connect(h, "user_good")
    h.clock.advance(minutes=1)
    before = await _data_rows(h)
    callback = await _reconnect_as(h, first["secret"], "user_dynamic")
    assert callback.payload["status"] == "error"
    assert callback.payload["error"] == "CredentialInvalid"
    assert "different bank user" in callback.payload["message"]
    assert "secret" not in callback.payload
    assert await _data_rows(h) == before  # the login, its accounts and history as they were
    assert await _login_status(h, first["secret"]) == "login_active"  # the secret still works
    # the right bank user renews the login as before
    again = await reconnect(h, first["secret"], "user_good")
    assert again["login_id"] == first["login_id"]


async def test_a_login_without_an_identity_key_is_proved_by_its_accounts(
    harness: Harness,
) -> None:
    """Logins made before bankhub kept the identity key: the account set decides."""
    h = harness
    first = await connect(h, "user_good")
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, first["login_id"])
        assert login is not None
        assert login.bank_identity  # kept from the first connect on
        login.bank_identity = None
    h.clock.advance(minutes=1)
    before = await _data_rows(h)
    refused = await _reconnect_as(h, first["secret"], "user_dynamic")
    assert refused.payload["error"] == "CredentialInvalid"
    assert await _data_rows(h) == before
    second = await reconnect(h, first["secret"], "user_good")  # shares the accounts: accepted
    assert second["login_id"] == first["login_id"]
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, first["login_id"])
        assert login is not None
        assert login.bank_identity  # and now kept


# --- a statement login has nothing to refresh ----------------------------------------------------


async def test_refreshing_a_statement_login_is_a_clear_400_that_changes_nothing(
    harness: Harness,
) -> None:
    h = harness
    customer_id = await create_customer(h, "statement-refresh")
    headers = h.headers()
    del headers["content-type"]
    imported = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer_id},
        files={"file": ("ing.csv", read("csv/ing.csv"), "application/octet-stream")},
        headers=headers,
    )
    assert imported.status_code == 200, imported.text
    data = imported.json()["data"]
    h.clock.advance(minutes=10)
    before = await _data_rows(h)
    response = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=data["secret"])
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "BadRequest"
    assert "statement login" in body["message"]
    assert "POST /v2/statement" in body["message"]
    assert body["extra"] == {"id": data["login_id"], "refreshed": False, "service_id": 11}
    assert await _data_rows(h) == before
    assert await _login_status(h, data["secret"]) == "login_active"


# --- how far back a sync reads -------------------------------------------------------------------


@dataclass
class Reads:
    since: list[date | None] = field(default_factory=list)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Reads:
    """The ``since`` of every transaction read the sandbox is asked for."""
    seen = Reads()
    fetch = SandboxConnector.fetch_transactions

    async def recorded(
        self: SandboxConnector, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        seen.since.append(since)
        return await fetch(self, account, since, until)

    monkeypatch.setattr(SandboxConnector, "fetch_transactions", recorded)
    return seen


SHALLOW_DAYS = 45


@pytest.fixture
async def shallow_bank(
    tmp_path: Path, migrated_database_url: str, clock: FakeClock
) -> AsyncIterator[Harness]:
    """The built-in catalogue, except that bank 1 keeps only 45 days of history."""
    entries = json.loads((files("bankhub.catalogue") / "services.json").read_text("utf-8"))
    for entry in entries:
        if entry["id"] == 1:
            entry["params"]["history_days"] = SHALLOW_DAYS
    catalogue = tmp_path / "services.json"
    catalogue.write_text(json.dumps(entries), "utf-8")
    settings = make_settings(tmp_path, migrated_database_url, catalogue_file=catalogue)
    async for running in run_harness(settings, clock, migrated=True):
        yield running


async def test_the_first_sync_reads_as_far_back_as_the_bank_keeps(
    shallow_bank: Harness, reads: Reads
) -> None:
    h = shallow_bank
    today = h.clock().date()
    payload = await connect(h, "user_good")  # two years at the bank, which keeps 45 days
    assert set(reads.since) == {today - timedelta(days=SHALLOW_DAYS)}
    rows = await _all_transactions(h, payload["secret"])
    assert rows
    assert min(r["date"] for r in rows) >= (today - timedelta(days=SHALLOW_DAYS)).isoformat()
    login = await h.client.get("/v2/login", headers=h.headers(login_secret=payload["secret"]))
    assert login.json()["data"]["consent"]["history_days"] == SHALLOW_DAYS


async def test_a_refresh_reads_what_is_new_and_never_past_the_consent(
    harness: Harness, reads: Reads
) -> None:
    h = harness
    payload = await connect(h, "user_good")
    start = h.clock().date()
    # the sandbox banks keep five years, and the user consented to that much
    assert set(reads.since) == {start - timedelta(days=5 * 365 + 1)}
    h.clock.advance(days=2)
    reads.since.clear()
    await _refresh(h, payload["secret"])
    assert set(reads.since) == {start - timedelta(days=30)}  # what is new, and late bookings
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, payload["login_id"])
        assert login is not None
        login.consent_history_days = 10  # a consent to ten days of history
    h.clock.advance(days=1)
    reads.since.clear()
    await _refresh(h, payload["secret"])
    assert set(reads.since) == {h.clock().date() - timedelta(days=10)}
