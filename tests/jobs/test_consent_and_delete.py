"""Consent expiry is announced before it happens, and a deleted login leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bankhub.accounts.models import Account, Transaction
from bankhub.connectors.sandbox import SandboxConnector
from bankhub.events.models import Event
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from tests.api.connect_client import connect
from tests.conftest import Harness


async def events_of(h: Harness, kind: str) -> list[dict[str, Any]]:
    async with h.hub.db.transaction() as session:
        rows = await session.execute(
            select(Event.payload).where(Event.type == kind).order_by(Event.id)
        )
        return list(rows.scalars())


async def test_notices_at_seven_days_and_one_day_then_expiry(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    runner = Runner(h.hub)
    assert await runner.consent.sweep() == 0  # 90 days to go
    h.clock.advance(days=83, hours=1)
    assert await runner.consent.sweep() == 1
    assert await runner.consent.sweep() == 0  # sent once only
    h.clock.advance(days=6)
    assert await runner.consent.sweep() == 1
    notices = await events_of(h, "consent.expiring")
    assert [n["days_left"] for n in notices] == [7, 1]
    assert all(n["login_id"] == payload["login_id"] for n in notices)
    h.clock.advance(days=1)
    assert await runner.consent.sweep() == 1
    expired = {"status": "login_consent_expired", "login_id": payload["login_id"]}
    assert {**expired, "event_type": "login.status"} in await events_of(h, "login.status")
    async with h.hub.db.transaction() as session:
        login = await session.get(Login, payload["login_id"])
        assert login is not None
        assert login.status == "consent_expired"
        assert login.next_sync_at is None
    assert await runner.consent.sweep() == 0


async def test_a_short_consent_gets_the_last_notice_only(harness: Harness) -> None:
    h = harness
    short = await connect(h, "user_consent_short")
    runner = Runner(h.hub)
    assert await runner.consent.sweep() == 1
    assert [n["days_left"] for n in await events_of(h, "consent.expiring")] == [1]
    h.clock.advance(minutes=6)
    assert await runner.consent.sweep() == 1
    read = await h.client.get("/v2/login", headers=h.headers(login_secret=short["secret"]))
    assert read.json()["data"]["status"] == "login_consent_expired"


async def test_delete_login_removes_its_data_and_tells_the_partner(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    revoked: list[str] = []
    original = SandboxConnector.revoke

    async def spy(self: SandboxConnector) -> None:
        revoked.append(str(self.context.institution["slug"]))
        await original(self)

    monkeypatch.setattr(SandboxConnector, "revoke", spy)
    kept = await connect(h, "user_good")
    gone = await connect(h, "user_dynamic")
    headers = h.headers(login_secret=gone["secret"])
    response = await h.client.delete("/v2/login", headers=headers)
    assert response.status_code == 200
    assert response.json()["data"] == {"id": gone["login_id"], "deleted": True}
    service = h.hub.catalogue.get(1)
    assert service is not None
    assert revoked == [service.slug]
    assert (await h.client.get("/v2/account", headers=headers)).status_code == 404

    async with h.hub.db.transaction() as session:
        accounts = await session.execute(
            select(func.count(Account.id)).where(Account.login_id == gone["login_id"])
        )
        assert accounts.scalar_one() == 0
        left = await session.execute(
            select(func.count(Transaction.id)).join(Account, Account.id == Transaction.account_id)
        )
        kept_rows = left.scalar_one()
        logins = await session.execute(select(Event.login_id).where(Event.login_id.is_not(None)))
        assert gone["login_id"] not in set(logins.scalars())
    assert kept_rows > 0
    assert await events_of(h, "login.deleted") == [
        {"login_id": gone["login_id"], "deleted": True, "event_type": "login.deleted"}
    ]
    still = await h.client.get("/v2/account", headers=h.headers(login_secret=kept["secret"]))
    assert still.status_code == 200
    assert len(still.json()["data"]) == 3
