"""Retention: data not fetched again within the app's window is purged, logged and audited.

The tests move the injected clock past the window without syncing, so they do not depend on
syncs refreshing ``fetched_at``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bankhub.accounts.changes import REMOVED, TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.api.schemas import wire_time
from bankhub.audit.models import AuditEntry
from bankhub.events.models import Event
from bankhub.jobs.runner import Runner
from bankhub.lifecycle import retention
from bankhub.lifecycle.retention import PurgeReport, purge
from bankhub.partners.models import App
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.api.connect_client import connect
from tests.conftest import Harness


async def purge_now(h: Harness, **kwargs: Any) -> PurgeReport:
    return await purge(h.hub.db, h.hub.clock, **kwargs)


async def app_id_of(h: Harness, client_id: str | None = None) -> int:
    async with h.hub.db.transaction() as session:
        app_id = (
            await session.execute(
                select(App.id).where(App.client_id == (client_id or h.creds["client_id"]))
            )
        ).scalar_one()
    return int(app_id)


async def transactions_of(h: Harness, login_id: int) -> list[tuple[int, int]]:
    """``(transaction id, account id)`` of the login's stored transactions."""
    async with h.hub.db.transaction() as session:
        rows = await session.execute(
            select(Transaction.id, Transaction.account_id)
            .join(Account, Account.id == Transaction.account_id)
            .where(Account.login_id == login_id)
            .order_by(Transaction.id)
        )
        return [(int(t), int(a)) for t, a in rows]


async def accounts_count(h: Harness, login_id: int) -> int:
    async with h.hub.db.transaction() as session:
        return int(
            (
                await session.execute(
                    select(func.count(Account.id)).where(Account.login_id == login_id)
                )
            ).scalar_one()
        )


async def removed_changes(h: Harness) -> list[TransactionChange]:
    async with h.hub.db.transaction() as session:
        return list(
            (
                await session.execute(
                    select(TransactionChange)
                    .where(TransactionChange.kind == REMOVED)
                    .order_by(TransactionChange.id)
                )
            ).scalars()
        )


async def audit_entries(h: Harness, action: str) -> list[AuditEntry]:
    async with h.hub.db.transaction() as session:
        return list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
                )
            ).scalars()
        )


def creds_headers(creds: dict[str, str]) -> dict[str, str]:
    return {
        "client-id": creds["client_id"],
        "service-secret": creds["service_secret"],
        "content-type": "application/json",
    }


# --- the default window ----------------------------------------------------------------------


async def test_default_window_purges_after_24_hours_and_reports_removals(
    harness: Harness,
) -> None:
    h = harness
    start = h.clock()
    payload = await connect(h, "user_good")
    login_id, secret = payload["login_id"], payload["secret"]
    stored = await transactions_of(h, login_id)
    assert stored
    accounts = await accounts_count(h, login_id)
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=secret))
    assert listed.json()["data"]

    h.clock.advance(hours=23)
    report = await purge_now(h)
    assert (report.transactions, report.apps) == (0, [])
    assert await transactions_of(h, login_id) == stored
    assert await audit_entries(h, retention.ACTION) == []

    h.clock.advance(hours=2)
    report = await purge_now(h)
    assert report.transactions == len(stored)
    assert [a.client_id for a in report.apps] == [h.creds["client_id"]]
    assert await transactions_of(h, login_id) == []
    assert await accounts_count(h, login_id) == accounts  # accounts remain

    removed = await removed_changes(h)
    assert sorted((c.transaction_id, c.account_id) for c in removed) == stored
    assert {c.changed_at for c in removed} == {h.clock()}
    assert {c.app_id for c in removed} == {await app_id_of(h)}

    [entry] = await audit_entries(h, retention.ACTION)
    assert entry.actor == "system:retention"
    assert entry.app_id == await app_id_of(h)
    assert entry.at == h.clock()
    assert entry.detail["transactions"] == len(stored)
    assert entry.detail["older_than"] == wire_time(h.clock() - timedelta(hours=24))
    assert entry.detail["older_than"] > wire_time(start)

    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=secret))
    assert listed.status_code == 200
    assert listed.json()["data"] == []

    again = await purge_now(h)
    assert (again.transactions, again.changes, again.webhook_excerpts) == (0, 0, 0)
    assert again.apps == []
    assert len(await audit_entries(h, retention.ACTION)) == 1
    assert len(await removed_changes(h)) == len(stored)


async def test_rows_fetched_within_the_window_stay(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    stored = await transactions_of(h, payload["login_id"])
    kept_id = stored[0][0]
    h.clock.advance(hours=25)
    async with h.hub.db.transaction() as session:
        row = await session.get(Transaction, kept_id)
        assert row is not None
        row.fetched_at = h.clock() - timedelta(hours=1)  # as a sync seeing it again would
    report = await purge_now(h)
    assert report.transactions == len(stored) - 1
    assert await transactions_of(h, payload["login_id"]) == [stored[0]]


async def test_old_change_log_rows_and_webhook_excerpts_are_purged(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    stored = await transactions_of(h, payload["login_id"])
    app_id = await app_id_of(h)
    async with h.hub.db.transaction() as session:
        issued = await webhooks.create_endpoint(
            session, h.hub.keyring, h.clock(), app_id, "http://127.0.0.1:9/hook", allow_http=True
        )
        event_id = (
            await session.execute(select(Event.id).where(Event.app_id == app_id).limit(1))
        ).scalar_one()
        delivery = WebhookDelivery(
            app_id=app_id,
            event_id=event_id,
            endpoint_id=issued.endpoint.id,
            status="failed",
            attempts=2,
            next_attempt_at=h.clock(),
            created_at=h.clock(),
        )
        session.add(delivery)
        await session.flush()
        for offset, excerpt in ((0, "old body"), (0, ""), (2, "newer body")):
            session.add(
                WebhookAttempt(
                    app_id=app_id,
                    delivery_id=delivery.id,
                    attempted_at=h.clock() + timedelta(hours=offset),
                    duration_ms=5,
                    outcome="rejected",
                    status_code=400,
                    response_excerpt=excerpt,
                )
            )

    h.clock.advance(hours=25)
    first = await purge_now(h)
    assert first.transactions == len(stored)
    assert first.webhook_excerpts == 1
    async with h.hub.db.transaction() as session:
        excerpts = (
            (
                await session.execute(
                    select(WebhookAttempt.response_excerpt).order_by(WebhookAttempt.id)
                )
            )
            .scalars()
            .all()
        )
    assert excerpts == ["", "", "newer body"]

    # The removed entries describe data that is gone: they go too once the window passes,
    # but for the newest entry of the log, whose id must never be handed out again.
    h.clock.advance(hours=24, seconds=1)
    second = await purge_now(h)
    assert second.transactions == 0
    assert second.changes == len(stored) - 1
    assert second.webhook_excerpts == 1
    [newest] = await removed_changes(h)
    assert newest.transaction_id == max(t for t, _ in stored)
    entries = await audit_entries(h, retention.ACTION)
    assert [e.detail["changes"] for e in entries][-1] == len(stored) - 1
    assert [e.detail["transactions"] for e in entries] == [len(stored), 0]


async def test_change_log_entries_of_stored_rows_stay(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    stored = await transactions_of(h, payload["login_id"])
    async with h.hub.db.transaction() as session:
        logged = (
            await session.execute(
                select(TransactionChange.transaction_id, TransactionChange.kind).order_by(
                    TransactionChange.id
                )
            )
        ).all()
    assert {kind for _, kind in logged} == {"added"}
    h.clock.advance(hours=25)
    async with h.hub.db.transaction() as session:
        # What a sync seeing every row again does: the rows stay, so what the log says of them
        # (a partner starting the feed without a cursor learns of them from it) stays too.
        await session.execute(
            update(Transaction).values(fetched_at=h.clock() - timedelta(minutes=1))
        )
    report = await purge_now(h)
    assert (report.transactions, report.changes) == (0, 0)
    assert report.apps == []
    assert await transactions_of(h, payload["login_id"]) == stored
    async with h.hub.db.transaction() as session:
        assert (
            await session.execute(
                select(TransactionChange.transaction_id, TransactionChange.kind).order_by(
                    TransactionChange.id
                )
            )
        ).all() == logged


# --- the app's choice ------------------------------------------------------------------------


async def test_opt_in_to_a_longer_window(harness: Harness) -> None:
    h = harness
    before = await h.client.get("/v2/app", headers=h.headers())
    assert before.status_code == 200, before.text
    assert before.json() == {
        "data": {
            "client_id": h.creds["client_id"],
            "name": "Test app",
            "retention_hours": 24,
            "retention_set_by": None,
            "retention_set_at": None,
            "credential_vault": False,
            "credential_vault_set_by": None,
            "credential_vault_set_at": None,
        },
        "version": "v2",
    }

    chosen = await h.client.put(
        "/v2/app/retention",
        json={"hours": 720, "chosen_by": "alice@partner.example"},
        headers={**h.headers(), "x-request-id": "req-retention-1"},
    )
    assert chosen.status_code == 200, chosen.text
    read = (await h.client.get("/v2/app", headers=h.headers(mobile=True))).json()["data"]
    assert chosen.json()["data"] == read
    assert read["retention_hours"] == 720
    assert read["retention_set_by"] == "alice@partner.example"
    assert read["retention_set_at"] == wire_time(h.clock())

    [entry] = await audit_entries(h, "app.retention_changed")
    assert entry.actor == f"app:{h.creds['client_id']}"
    assert entry.detail == {"old_hours": 24, "new_hours": 720, "chosen_by": "alice@partner.example"}
    assert entry.request_id == "req-retention-1"
    assert entry.at == h.clock()

    payload = await connect(h, "user_good")
    stored = await transactions_of(h, payload["login_id"])
    h.clock.advance(hours=25)
    assert (await purge_now(h)).transactions == 0
    h.clock.advance(hours=694)  # 719 h after the fetch
    assert (await purge_now(h)).transactions == 0
    h.clock.advance(hours=2)  # 721 h
    report = await purge_now(h)
    assert report.transactions == len(stored)
    assert report.apps[0].retention_hours == 720
    assert await transactions_of(h, payload["login_id"]) == []


@pytest.mark.parametrize(
    "body",
    [
        {"hours": 0, "chosen_by": "alice"},
        {"hours": 9000, "chosen_by": "alice"},
        {"hours": 8761, "chosen_by": "alice"},
        {"hours": -24, "chosen_by": "alice"},
        {"hours": "x", "chosen_by": "alice"},
        {"hours": "48", "chosen_by": "alice"},
        {"hours": 48.5, "chosen_by": "alice"},
        {"hours": True, "chosen_by": "alice"},
        {"hours": None, "chosen_by": "alice"},
        {"hours": 48},
        {"chosen_by": "alice"},
        {"hours": 48, "chosen_by": ""},
        {"hours": 48, "chosen_by": "   "},
        {"hours": 48, "chosen_by": "a" * 201},
        {"hours": 48, "chosen_by": 7},
        {"hours": 48, "chosen_by": "alice", "reason": "longer"},
        [48, "alice"],
    ],
)
async def test_invalid_retention_choices_are_refused(harness: Harness, body: Any) -> None:
    h = harness
    response = await h.client.put("/v2/app/retention", json=body, headers=h.headers())
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "DataInvalid"
    data = (await h.client.get("/v2/app", headers=h.headers())).json()["data"]
    assert (data["retention_hours"], data["retention_set_by"], data["retention_set_at"]) == (
        24,
        None,
        None,
    )
    assert await audit_entries(h, "app.retention_changed") == []


async def test_the_bounds_themselves_are_accepted(harness: Harness) -> None:
    h = harness
    for hours in (1, 8760):
        response = await h.client.put(
            "/v2/app/retention", json={"hours": hours, "chosen_by": "ops"}, headers=h.headers()
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["retention_hours"] == hours
    entries = await audit_entries(h, "app.retention_changed")
    assert [(e.detail["old_hours"], e.detail["new_hours"]) for e in entries] == [
        (24, 1),
        (1, 8760),
    ]


async def test_app_settings_need_the_apps_credentials(harness: Harness) -> None:
    h = harness
    missing = await h.client.get("/v2/app")
    assert (missing.status_code, missing.json()["error"]) == (404, "ClientNotFound")
    wrong = await h.client.put(
        "/v2/app/retention",
        json={"hours": 48, "chosen_by": "mallory"},
        headers={**h.headers(), "service-secret": "not-the-secret"},
    )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "CredentialInvalid")
    assert (await h.client.get("/v2/app", headers=h.headers())).json()["data"][
        "retention_hours"
    ] == 24


async def test_credential_vault_choice_is_recorded_and_audited(harness: Harness) -> None:
    h = harness
    on = await h.client.put(
        "/v2/app/credential-vault",
        json={"enabled": True, "chosen_by": "ops-bot"},
        headers=h.headers(),
    )
    assert on.status_code == 200, on.text
    data = on.json()["data"]
    assert data["credential_vault"] is True
    assert data["credential_vault_set_by"] == "ops-bot"
    assert data["credential_vault_set_at"] == wire_time(h.clock())
    assert data["retention_hours"] == 24
    h.clock.advance(minutes=5)
    off = await h.client.put(
        "/v2/app/credential-vault",
        json={"enabled": False, "chosen_by": "bob@partner.example"},
        headers=h.headers(),
    )
    read = (await h.client.get("/v2/app", headers=h.headers())).json()["data"]
    assert off.json()["data"] == read
    assert read["credential_vault"] is False
    assert read["credential_vault_set_by"] == "bob@partner.example"
    assert read["credential_vault_set_at"] == wire_time(h.clock())
    entries = await audit_entries(h, "app.credential_vault_changed")
    assert [e.detail for e in entries] == [
        {"old_enabled": False, "new_enabled": True, "chosen_by": "ops-bot"},
        {"old_enabled": True, "new_enabled": False, "chosen_by": "bob@partner.example"},
    ]
    for bad in (
        {"enabled": "yes", "chosen_by": "ops"},
        {"enabled": 1, "chosen_by": "ops"},
        {"enabled": True},
        {"enabled": True, "chosen_by": ""},
        {"enabled": True, "chosen_by": "ops", "scope": "all"},
    ):
        refused = await h.client.put("/v2/app/credential-vault", json=bad, headers=h.headers())
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"] == "DataInvalid"
    assert len(await audit_entries(h, "app.credential_vault_changed")) == 2


async def test_each_app_is_purged_by_its_own_window(harness: Harness) -> None:
    h = harness
    other_creds = await h.new_app("Longer app")
    other = Harness(h.hub, h.client, other_creds)
    chosen = await h.client.put(
        "/v2/app/retention",
        json={"hours": 48, "chosen_by": "carol@other.example"},
        headers=creds_headers(other_creds),
    )
    assert chosen.status_code == 200, chosen.text
    assert (await h.client.get("/v2/app", headers=h.headers())).json()["data"][
        "retention_hours"
    ] == 24

    mine = await connect(h, "user_good")
    theirs = await connect(other, "user_good")
    my_rows = await transactions_of(h, mine["login_id"])
    their_rows = await transactions_of(h, theirs["login_id"])
    assert my_rows
    assert their_rows

    h.clock.advance(hours=25)
    report = await purge_now(h)
    assert [(a.client_id, a.transactions) for a in report.apps] == [
        (h.creds["client_id"], len(my_rows))
    ]
    assert await transactions_of(h, mine["login_id"]) == []
    assert await transactions_of(h, theirs["login_id"]) == their_rows

    h.clock.advance(hours=24)
    report = await purge_now(h)
    assert [(a.client_id, a.transactions) for a in report.apps] == [
        (other_creds["client_id"], len(their_rows))
    ]
    assert await transactions_of(h, theirs["login_id"]) == []
    entries = await audit_entries(h, retention.ACTION)
    assert [e.app_id for e in entries] == [
        await app_id_of(h),
        await app_id_of(h, other_creds["client_id"]),
    ]


# --- running it ------------------------------------------------------------------------------


async def deactivate(h: Harness, secret: str) -> None:
    """No scheduled sync may fetch the rows again while the clock moves on."""
    response = await h.client.put("/v2/login/deactivate", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text


async def test_the_runners_run_once_purges(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    await deactivate(h, payload["secret"])
    stored = await transactions_of(h, payload["login_id"])
    runner = Runner(h.hub)
    h.clock.advance(hours=23)
    await runner.run_once()
    assert await transactions_of(h, payload["login_id"]) == stored
    h.clock.advance(hours=2)
    await runner.run_once()
    assert await transactions_of(h, payload["login_id"]) == []
    assert len(await removed_changes(h)) == len(stored)
    assert len(await audit_entries(h, retention.ACTION)) == 1


async def test_the_runners_loop_purges_and_stops(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    payload = await connect(h, "user_good")
    await deactivate(h, payload["secret"])
    stored = await transactions_of(h, payload["login_id"])
    h.clock.advance(hours=25)
    runner = Runner(h.hub)
    swept = asyncio.Event()
    reports: list[PurgeReport] = []
    original = runner.housekeeping.sweep

    async def spy() -> PurgeReport:
        report = await original()
        reports.append(report)
        swept.set()
        return report

    monkeypatch.setattr(runner.housekeeping, "sweep", spy)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_forever(stop))
    await asyncio.wait_for(swept.wait(), timeout=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert [r.transactions for r in reports] == [len(stored)]  # every 300 s: once so far
    assert await transactions_of(h, payload["login_id"]) == []


@pytest.mark.parametrize("batch", [97, retention.BATCH])
async def test_concurrent_purges_delete_and_count_each_row_once(
    harness: Harness, batch: int
) -> None:
    h = harness
    logins = [await connect(h, "user_good"), await connect(h, "user_good")]
    stored = [row for p in logins for row in await transactions_of(h, p["login_id"])]
    assert len(stored) > 10 * 97
    h.clock.advance(hours=25)
    reports = await asyncio.gather(*(purge_now(h, batch=batch) for _ in range(3)))
    assert not any(r.failed for r in reports)
    assert sum(r.transactions for r in reports) == len(stored)
    for p in logins:
        assert await transactions_of(h, p["login_id"]) == []
    removed = await removed_changes(h)
    assert sorted((c.transaction_id, c.account_id) for c in removed) == sorted(stored)
    entries = await audit_entries(h, retention.ACTION)
    assert sum(e.detail["transactions"] for e in entries) == len(stored)
    assert len(entries) == sum(len(r.apps) for r in reports)
    assert sum(e.detail["changes"] for e in entries) == sum(r.changes for r in reports)
    assert (await purge_now(h)).transactions == 0


async def test_a_purge_in_batches_removes_everything(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    stored = await transactions_of(h, payload["login_id"])
    h.clock.advance(hours=25)
    report = await purge_now(h, batch=100)
    assert report.transactions == len(stored)
    [entry] = await audit_entries(h, retention.ACTION)
    assert entry.detail["transactions"] == len(stored)
    assert await transactions_of(h, payload["login_id"]) == []
