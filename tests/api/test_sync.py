"""Refresh, its cool-down, idempotent upserts, and reconnect keeping every id."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bankhub.accounts.models import Transaction
from bankhub.events.models import Event
from tests.api.connect_client import connect, reconnect
from tests.conftest import Harness


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
    assert {"status": "login_consent_expired", "login_id": payload["login_id"]} in statuses
