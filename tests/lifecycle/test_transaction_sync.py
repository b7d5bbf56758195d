"""/v2/transaction/sync reports exactly what changed; ids stay stable; pendings link to bookings."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from bankhub.accounts import details
from bankhub.accounts.models import Transaction
from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    AuthFlow,
    ConnectorInfo,
    TransactionRecord,
)
from bankhub.db import tenancy
from bankhub.logins.models import Login
from bankhub.logins.services import add_login
from bankhub.partners.models import App
from tests.api.connect_client import connect, create_customer, reconnect
from tests.conftest import Harness
from tests.support.banks import ScriptedBank, service_for

Rows = dict[int, dict[str, Any]]


async def read_all(h: Harness, secret: str, account_id: int) -> Rows:
    rows: Rows = {}
    page = 1
    while True:
        response = await h.client.get(
            f"/v2/transaction?account_id={account_id}&page={page}",
            headers=h.headers(login_secret=secret),
        )
        assert response.status_code == 200, response.text
        rows.update({r["id"]: r for r in response.json()["data"]})
        if "link" not in response.headers:
            return rows
        page += 1


async def feed(
    h: Harness, secret: str, account_id: int, cursor: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int], str]:
    added: list[dict[str, Any]] = []
    modified: list[dict[str, Any]] = []
    removed: list[int] = []
    while True:
        response = await h.client.get(
            f"/v2/transaction/sync?account_id={account_id}&cursor={cursor}&count=50",
            headers=h.headers(login_secret=secret),
        )
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        added += data["added"]
        modified += data["modified"]
        removed += [r["id"] for r in data["removed"]]
        cursor = data["next_cursor"]
        if not data["has_more"]:
            return added, modified, removed, cursor


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The /v2/transaction fields of a sync item."""
    return {k: v for k, v in row.items() if k not in ("status", "pending_transaction_id")}


async def accounts_of(h: Harness, secret: str) -> list[int]:
    listed = await h.client.get("/v2/account", headers=h.headers(login_secret=secret))
    return [a["id"] for a in listed.json()["data"]]


async def test_the_feed_is_exactly_what_changed_and_links_pendings(harness: Harness) -> None:
    h = harness
    login = await connect(h, "user_dynamic")
    secret = login["secret"]
    known: dict[int, Rows] = {}
    status: dict[int, str] = {}
    cursors: dict[int, str] = {}
    for account_id in await accounts_of(h, secret):
        added, modified, removed, cursors[account_id] = await feed(h, secret, account_id, "")
        assert modified == []
        assert removed == []
        known[account_id] = {r["id"]: public(r) for r in added}
        status.update({r["id"]: r["status"] for r in added})
        assert known[account_id] == await read_all(h, secret, account_id)

    links = 0
    for _ in range(4):
        h.clock.advance(hours=7)
        refreshed = await h.client.put("/v2/login/refresh", headers=h.headers(login_secret=secret))
        assert refreshed.json()["data"]["refreshed"] is True
        for account_id, before in known.items():
            after = await read_all(h, secret, account_id)
            added, modified, removed, cursors[account_id] = await feed(
                h, secret, account_id, cursors[account_id]
            )
            assert {r["id"] for r in added} == after.keys() - before.keys()
            assert set(removed) == before.keys() - after.keys()
            changed = {i for i in before.keys() & after.keys() if before[i] != after[i]}
            assert {r["id"] for r in modified} == changed
            for row in added + modified:
                assert public(row) == after[row["id"]]

            gone_pending = {i for i in removed if status[i] == "pending"}
            for row in added:
                linked = row["pending_transaction_id"]
                if linked is not None:
                    # a link joins a booked item to a pending one it replaced: same purchase
                    assert row["status"] == "booked"
                    assert linked in gone_pending
                    assert before[linked]["description"] == row["description"]
                    links += 1
            for pending_id in gone_pending:
                twins = [
                    r
                    for r in added
                    if r["status"] == "booked"
                    and r["description"] == before[pending_id]["description"]
                ]
                if len(twins) == 1:  # the bank booked it: the booked item must name it
                    assert twins[0]["pending_transaction_id"] == pending_id
            status.update({r["id"]: r["status"] for r in added + modified})
            known[account_id] = after
    assert links >= 2, "the dynamic bank should have booked some pending items"


async def test_remint_keeps_every_id_and_reports_the_new_bank_ids_as_modified(
    harness: Harness,
) -> None:
    h = harness
    first = await connect(h, "user_remint")
    accounts = await accounts_of(h, first["secret"])
    cursors: dict[int, str] = {}
    before: dict[int, Rows] = {}
    for account_id in accounts:
        added, _, _, cursors[account_id] = await feed(h, first["secret"], account_id, "")
        before[account_id] = {r["id"]: public(r) for r in added}

    h.clock.advance(minutes=1)
    second = await reconnect(h, first["secret"], "user_remint")
    assert second["login_id"] == first["login_id"]
    assert await accounts_of(h, second["secret"]) == accounts
    for account_id in accounts:
        after = await read_all(h, second["secret"], account_id)
        assert after.keys() == before[account_id].keys()
        added, modified, removed, _ = await feed(
            h, second["secret"], account_id, cursors[account_id]
        )
        assert added == []
        assert removed == []
        assert {r["id"] for r in modified} == set(after)
        for row in modified:
            old = before[account_id][row["id"]]
            assert row["original_id"] != old["original_id"]
            assert {k: v for k, v in public(row).items() if k != "original_id"} == {
                k: v for k, v in old.items() if k != "original_id"
            }


async def test_sync_needs_an_account_of_the_login(harness: Harness) -> None:
    h = harness
    mine = await connect(h, "user_good")
    other = await connect(h, "user_good")
    foreign = (await accounts_of(h, other["secret"]))[0]
    headers = h.headers(login_secret=mine["secret"])
    missing = await h.client.get("/v2/transaction/sync", headers=headers)
    assert missing.json()["error"] == "BadRequest"
    refused = await h.client.get(f"/v2/transaction/sync?account_id={foreign}", headers=headers)
    assert refused.status_code == 404
    assert refused.json()["error"] == "AccountNotFound"
    bad = await h.client.get(
        f"/v2/transaction/sync?account_id={foreign}&cursor=abc", headers=headers
    )
    assert bad.json()["error"] == "BadRequest"


class RewordingBank(ScriptedBank):
    """A bank without transaction ids whose texts change between two answers."""

    info = ConnectorInfo("rewording", "1", (), (AuthFlow.CREDENTIALS,))
    accounts = (AccountRecord("giro", "Giro", AccountType.CURRENT, "EUR", Decimal("10.00")),)


async def test_a_booking_reworded_by_a_bank_without_ids_is_modified_not_stored_twice(
    harness: Harness,
) -> None:
    """Without a bank id a booking is known by its content, text included: when the text of a
    booking changes (a bank completing it, a reader keeping words it dropped before), the row
    keeps its id and is reported modified; a new booking of the same day and amount next to
    an unchanged one is still a new row."""
    h = harness
    h.hub.registry.register("rewording", RewordingBank)
    engine = h.hub.engine
    service = service_for("rewording")
    day = date(2026, 11, 2)
    customer = await create_customer(h, "reworded")

    async def sync(listed: list[tuple[date, str, str]]) -> tuple[Any, dict[int, str]]:
        RewordingBank.transactions = tuple(
            TransactionRecord(None, day, Decimal(amount), "EUR", text)
            for day, amount, text in listed
        )
        with tenancy.everything():
            async with h.hub.db.transaction() as session:
                login = (await session.execute(select(Login))).scalars().first()
                if login is None:
                    app = (
                        await session.execute(
                            select(App).where(App.client_id == h.creds["client_id"])
                        )
                    ).scalar_one()
                    login, _ = add_login(
                        session,
                        engine.hasher,
                        h.hub.clock(),
                        app_id=app.id,
                        customer_id=customer,
                        service_id=1,
                    )
                    await session.flush()
                run = engine.build(service)
                summary = await engine.apply(session, login, await engine.fetch(run, None))
                rows = (await session.execute(select(Transaction))).scalars().all()
                texts = {row.id: details.opened(engine.box, row).description for row in rows}
        return summary, texts

    first, before = await sync([(day, "-42.00", "Strom November"), (day, "-9.99", "Abo")])
    assert first.inserted == 2
    second, after = await sync(
        [(day, "-42.00", "Strom November BIC GENODEF1"), (day, "-9.99", "Abo")]
    )
    assert (second.inserted, second.updated) == (0, 1)
    assert set(after) == set(before)  # the same rows, the same ids
    reworded = next(i for i, text in before.items() if text == "Strom November")
    assert after[reworded] == "Strom November BIC GENODEF1"
    third, latest = await sync(
        [
            (day, "-42.00", "Strom November BIC GENODEF1"),
            (day, "-42.00", "Strom Dezember"),  # a second booking of that day and amount
            (day, "-9.99", "Abo"),
        ]
    )
    assert (third.inserted, third.updated) == (1, 0)
    assert sorted(latest.values()) == ["Abo", "Strom Dezember", "Strom November BIC GENODEF1"]
