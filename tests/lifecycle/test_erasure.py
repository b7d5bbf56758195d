"""Erasing a customer leaves nothing of theirs anywhere; an export is exactly what the API says."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import make_url

from bankhub.audit.models import AuditEntry
from bankhub.connectors.base import AccountRecord, ProviderUnavailable
from bankhub.connectors.sandbox import SandboxConnector
from bankhub.customers.models import Customer
from bankhub.db import tenancy
from bankhub.db.engine import Database, Scrubbed
from bankhub.db.models import Base
from bankhub.events.models import Event
from bankhub.lifecycle import erasure
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.payments.models import Payment, PaymentItem, PaymentStatusChange
from bankhub.webhooks import services as webhooks
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.api.connect_client import connect, create_customer
from tests.api.test_payments import initiate, switch_on
from tests.conftest import BASE_URL, Harness

NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
#: at least this many of A's transaction texts must be A's alone for the search to mean something
MIN_DISTINCT_DESCRIPTIONS = 20


# --- helpers ---------------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code, body
    return body


async def erase(
    h: Harness, customer_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await h.client.request(
        "DELETE", "/v2/customer", json={"customer_id": customer_id}, headers=headers or h.headers()
    )


async def export(
    h: Harness, customer_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await h.client.get(
        "/v2/customer/export", params={"customer_id": customer_id}, headers=headers or h.headers()
    )


async def all_transactions(h: Harness, secret: str, per_page: int = 1000) -> list[dict[str, Any]]:
    """Every page of ``GET /v2/transaction`` of the login, following ``Link: rel=next``."""
    rows: list[dict[str, Any]] = []
    url: str | None = f"/v2/transaction?per_page={per_page}"
    while url is not None:
        response = await h.client.get(url, headers=h.headers(login_secret=secret))
        assert response.status_code == 200, response.text
        rows.extend(response.json()["data"])
        found = NEXT.search(response.headers.get("link", ""))
        url = found.group(1).removeprefix(BASE_URL) if found else None
    return rows


async def all_events(h: Harness) -> list[dict[str, Any]]:
    """Every page of ``GET /v2/event``."""
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        response = await h.client.get(
            "/v2/event", params={"cursor": cursor, "limit": "7"}, headers=h.headers()
        )
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["data"])
        if not body["has_more"]:
            return rows
        cursor = body["next_cursor"]


async def accounts_of(h: Harness, secret: str) -> list[dict[str, Any]]:
    response = await h.client.get("/v2/account", headers=h.headers(login_secret=secret))
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def database_text(h: Harness) -> str:
    """Every row of every table, as text: ``repr`` of the row and each text value as stored."""
    parts: list[str] = []
    async with h.hub.db.transaction() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                parts.append(repr(row))
                for value in row:
                    if isinstance(value, str):
                        parts.append(value)
                    elif isinstance(value, dict | list):
                        parts.append(json.dumps(value, ensure_ascii=False, default=str))
    return "\n".join(parts)


def _read_dir(path: Path) -> bytes:
    return b"\x00".join(p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


async def database_files(h: Harness) -> bytes:
    """On SQLite, the raw bytes of every file in the database's directory (the database, its
    ``-wal`` and ``-shm``, any journal), read as an outsider would while bankhub runs: its
    connections stay open, so nothing is folded into the file by closing them."""
    if h.hub.db.dialect != "sqlite":
        return b""
    path = Path(str(make_url(h.hub.db.url).database))
    data = await asyncio.to_thread(_read_dir, path.parent)
    assert len(data) > 0
    return data


_TOAST = (
    "SELECT reltoastrelid::regclass::text FROM pg_class "
    "WHERE oid = CAST(:t AS regclass) AND reltoastrelid <> 0"
)
_INDEXES = "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = CAST(:t AS regclass)"
#: every line pointer's tuple data, dead tuples' too (NULL once VACUUM removed the tuple)
_HEAP_TUPLES = (
    "SELECT i.t_data FROM generate_series(0, "
    "pg_relation_size(CAST(:r AS regclass)) / current_setting('block_size')::int - 1) AS b, "
    "LATERAL heap_page_items(get_raw_page(CAST(:n AS text), b::int)) AS i "
    "WHERE i.t_data IS NOT NULL"
)
#: every entry of every page of a B-tree but its meta page (block 0)
_INDEX_TUPLES = (
    "SELECT i.data FROM generate_series(1, "
    "pg_relation_size(CAST(:r AS regclass)) / current_setting('block_size')::int - 1) AS b, "
    "LATERAL bt_page_items(get_raw_page(CAST(:n AS text), b::int)) AS i"
)


def _hex_bytes(value: str | None) -> bytes:
    return bytes.fromhex(value.replace(" ", "")) if value else b""


async def database_pages(h: Harness) -> bytes:
    """On PostgreSQL, after a CHECKPOINT (the pages in the files are the server's), the data of
    every tuple, live or dead, in every page of the erased tables, their TOAST tables and their
    indexes, read with pageinspect as a tool reading the files page by page finds them."""
    if h.hub.db.dialect != "postgresql":
        return b""
    found: list[bytes] = []
    async with h.hub.db.engine.connect() as connection:
        conn = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pageinspect")
        await conn.exec_driver_sql("CHECKPOINT")
        for table in erasure.ERASED_TABLES:
            toast = (await conn.execute(text(_TOAST), {"t": table})).scalar_one_or_none()
            for heap in [table] if toast is None else [table, toast]:
                rows = await conn.execute(text(_HEAP_TUPLES), {"r": heap, "n": heap})
                found.extend(bytes(value) for value in rows.scalars())
            indexes = list((await conn.execute(text(_INDEXES), {"t": table})).scalars())
            for index in indexes:
                rows = await conn.execute(text(_INDEX_TUPLES), {"r": index, "n": index})
                found.extend(_hex_bytes(value) for value in rows.scalars())
    assert found
    return b"\x00".join(found)


async def stored_bytes(h: Harness) -> bytes:
    """What the database's files hold: every file's bytes on SQLite, every page's tuples on
    PostgreSQL (docs/security.md, "Erasure", says why these differ)."""
    return await database_files(h) + await database_pages(h)


def spaced_forms(value: str) -> set[str]:
    return {value, "".join(value.split())}


class FetchSpy:
    """Keeps every account the sandbox reports, as it reports them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.records: list[AccountRecord] = []
        original = SandboxConnector.fetch_accounts

        async def spy(connector: SandboxConnector) -> list[AccountRecord]:
            records = await original(connector)
            self.records.extend(records)
            return records

        monkeypatch.setattr(SandboxConnector, "fetch_accounts", spy)

    def take(self) -> list[AccountRecord]:
        taken, self.records = self.records, []
        return taken


async def add_webhook_endpoint(h: Harness) -> None:
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        await webhooks.create_endpoint(
            session,
            h.hub.keyring,
            h.clock(),
            app.id,
            "http://127.0.0.1:9/hook",
            None,
            allow_http=True,
        )


# --- erasure ---------------------------------------------------------------------------------


async def test_erasing_a_customer_leaves_nothing_of_theirs_anywhere(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    fetched = FetchSpy(monkeypatch)
    await add_webhook_endpoint(h)  # so that events have stored deliveries to erase too

    # B first: what the database holds about B (and the app) before A exists
    customer_b = await create_customer(h, f"keep-me-{secrets.token_hex(6)}")
    b_login = await connect(h, "user_good", 2, customer_id=customer_b)
    b_records = fetched.take()
    b_accounts = await accounts_of(h, b_login["secret"])
    b_transactions = await all_transactions(h, b_login["secret"])
    before_a = await database_text(h)

    identifier = f"erase-me-{secrets.token_hex(8)}@example.org"
    customer_a = await create_customer(h, identifier)
    a_logins = [
        await connect(h, "user_good", 1, customer_id=customer_a),
        await connect(h, "user_dynamic", 3, customer_id=customer_a),
    ]
    a_records = fetched.take()
    assert len(a_records) == 6  # three accounts per login
    a_descriptions: set[str] = set()
    for login in a_logins:
        a_descriptions.update(t["description"] for t in await all_transactions(h, login["secret"]))

    # a webhook receiver that echoed A's identifier back, stored with the attempt
    async with h.hub.db.transaction() as session:
        delivery = (
            await session.execute(
                select(WebhookDelivery)
                .join(Event, Event.id == WebhookDelivery.event_id)
                .where(Event.login_id == a_logins[0]["login_id"])
                .limit(1)
            )
        ).scalar_one()
        session.add(
            WebhookAttempt(
                app_id=delivery.app_id,
                delivery_id=delivery.id,
                attempted_at=h.clock(),
                duration_ms=12,
                outcome="failed",
                status_code=500,
                error="HTTP 500",
                response_excerpt=f"unknown user {identifier}",
            )
        )

    numbers: set[str] = set()
    for record in a_records:
        for value in (record.number, record.iban):
            if value:
                numbers |= spaced_forms(value)
    b_numbers = {v for r in b_records for v in (r.number, r.iban) if v}
    assert numbers
    assert not numbers & b_numbers
    b_descriptions = {t["description"] for t in b_transactions}
    descriptions = {
        d for d in a_descriptions if len(d) >= 6 and d not in b_descriptions and d not in before_a
    }
    assert len(descriptions) >= MIN_DISTINCT_DESCRIPTIONS, sorted(descriptions)
    wanted = {identifier, *numbers, *descriptions}
    held = await database_text(h)
    assert identifier in held  # the search finds what is there
    # descriptions are sealed at rest (S19): not in clear even before the erasure
    assert [d for d in descriptions if d in held] == []
    # The raw search finds what is stored in clear (the identifier at least; account numbers
    # too unless they are encrypted at rest), so finding nothing afterwards means something
    # whether or not a field is encrypted.
    raw = await stored_bytes(h)
    readable = {v for v in wanted if v.encode() in raw}
    assert identifier in readable
    assert [d for d in descriptions if d.encode() in raw] == []

    response = await erase(h, customer_a)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "data": {"customer_id": customer_a, "deleted": True, "logins": 2},
        "version": "v2",
    }

    # the moment the answer is there: no row, no file, no page holds any of it
    text_after = await database_text(h)
    assert sorted(v for v in wanted if v in text_after) == []
    raw = await stored_bytes(h)
    assert sorted(v for v in wanted if v.encode() in raw) == []

    # A is gone from the API; B is exactly as before
    for login in a_logins:
        gone = await h.client.get("/v2/login", headers=h.headers(login_secret=login["secret"]))
        assert_error(gone, 404, "LoginNotFound")
    assert_error(await export(h, customer_a), 404, "CustomerNotFound")
    assert_error(await erase(h, customer_a), 404, "CustomerNotFound")
    assert await accounts_of(h, b_login["secret"]) == b_accounts
    assert [t["id"] for t in await all_transactions(h, b_login["secret"])] == [
        t["id"] for t in b_transactions
    ]
    async with h.hub.db.transaction() as session:
        a_ids = [login["login_id"] for login in a_logins]
        for table, column in ((Login, Login.id), (Event, Event.login_id)):
            count = await session.execute(
                select(func.count()).select_from(table).where(column.in_(a_ids))
            )
            assert count.scalar_one() == 0
        orphans = await session.execute(
            select(func.count(WebhookDelivery.id)).where(
                WebhookDelivery.event_id.not_in(select(Event.id))
            )
        )
        assert orphans.scalar_one() == 0
        assert (await session.execute(select(func.count(WebhookAttempt.id)))).scalar_one() == 0
    deleted = [e["payload"] for e in await all_events(h) if e["type"] == "login.deleted"]
    assert deleted == [
        {"login_id": i, "deleted": True, "event_type": "login.deleted"} for i in a_ids
    ]


async def test_erasing_a_customer_erases_their_payments_and_keeps_the_others(
    harness: Harness,
) -> None:
    """A payment is the customer's: erasing the customer takes their payments, transfers,
    status history and ``payment.status`` events; another customer's payment stays as it was."""
    h = harness
    await switch_on(h)
    customer_a = await create_customer(h, f"erase-me-{secrets.token_hex(6)}")
    customer_b = await create_customer(h, f"keep-me-{secrets.token_hex(6)}")
    a_payment = await initiate(h, customer_a)
    b_payment = await initiate(h, customer_b)
    b_before = (await h.client.get(f"/v2/payment/{b_payment['id']}", headers=h.headers())).json()

    assert (await erase(h, customer_a)).status_code == 200

    gone = await h.client.get(f"/v2/payment/{a_payment['id']}", headers=h.headers())
    assert_error(gone, 404, "PaymentNotFound")
    after = await h.client.get(f"/v2/payment/{b_payment['id']}", headers=h.headers())
    assert after.json() == b_before
    async with h.hub.db.transaction() as session:
        for column in (Payment.id, PaymentItem.payment_id, PaymentStatusChange.payment_id):
            left = await session.execute(
                select(func.count()).select_from(column.class_).where(column == a_payment["id"])
            )
            assert left.scalar_one() == 0, column
    events = [e["payload"].get("payment_id") for e in await all_events(h)]
    assert a_payment["id"] not in events
    assert b_payment["id"] in events


async def test_erasure_withdraws_each_consent_and_survives_a_bank_that_fails(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    revoked: list[tuple[str, str]] = []

    async def failing(connector: SandboxConnector) -> None:
        state = connector.context.state.load()
        revoked.append((str(connector.context.institution["slug"]), str(state["username"])))
        raise ProviderUnavailable("the bank is down")

    customer = await create_customer(h, f"revoke-{secrets.token_hex(6)}")
    first = await connect(h, "user_good", 1, customer_id=customer)
    second = await connect(h, "user_dynamic", 3, customer_id=customer)
    monkeypatch.setattr(SandboxConnector, "revoke", failing)

    # named in the query this time
    response = await h.client.delete(
        "/v2/customer", params={"customer_id": customer}, headers=h.headers()
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"customer_id": customer, "deleted": True, "logins": 2}
    services = [h.hub.catalogue.get(i) for i in (1, 3)]
    slugs = [service.slug for service in services if service is not None]
    assert revoked == [(slugs[0], "user_good"), (slugs[1], "user_dynamic")]
    async with h.hub.db.transaction() as session:
        left = await session.execute(
            select(func.count(Login.id)).where(
                Login.id.in_([first["login_id"], second["login_id"]])
            )
        )
        assert left.scalar_one() == 0
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "customer.erased"))
        ).scalar_one()
    assert entry.detail["consents_withdrawn"] == 0


async def test_erasure_withdraws_consent_upstream_when_the_bank_answers(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    revoked: list[str] = []
    original = SandboxConnector.revoke

    async def spy(connector: SandboxConnector) -> None:
        revoked.append(str(connector.context.state.load()["username"]))
        await original(connector)

    monkeypatch.setattr(SandboxConnector, "revoke", spy)
    customer = await create_customer(h, f"revoke-{secrets.token_hex(6)}")
    await connect(h, "user_good", 1, customer_id=customer)
    await connect(h, "user_dynamic", 3, customer_id=customer)
    assert (await erase(h, customer)).status_code == 200
    assert revoked == ["user_good", "user_dynamic"]
    async with h.hub.db.transaction() as session:
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "customer.erased"))
        ).scalar_one()
    assert entry.detail["consents_withdrawn"] == 2


# --- export ----------------------------------------------------------------------------------


async def test_export_holds_exactly_what_the_api_returns(harness: Harness) -> None:
    h = harness
    identifier = f"export-{secrets.token_hex(6)}"
    customer = await create_customer(h, identifier)
    logins = [
        await connect(h, "user_good", 1, customer_id=customer),
        await connect(h, "user_dynamic", 3, customer_id=customer),
    ]
    other = await connect(h, "user_good", 2)  # another customer of the same app

    response = await export(h, customer)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"data", "exported_at", "version"}
    assert body["version"] == "v2"
    assert body["exported_at"] == "2026-11-20T09:00:00.000Z"
    data = body["data"]
    assert data["customer"] == {
        "customer_id": customer,
        "identifier": identifier,
        "created_at": "2026-11-20T09:00:00.000Z",
    }
    assert [item["id"] for item in data["logins"]] == [login["login_id"] for login in logins]
    events = await all_events(h)
    for item, login in zip(data["logins"], logins, strict=True):
        secret = login["secret"]
        read = await h.client.get("/v2/login", headers=h.headers(login_secret=secret))
        as_login = {
            k: v for k, v in item.items() if k not in {"accounts", "transactions", "events"}
        }
        assert as_login == read.json()["data"]
        assert item["accounts"] == await accounts_of(h, secret)
        transactions = await all_transactions(h, secret, per_page=40)
        assert len(transactions) > 40  # several pages were compared
        assert item["transactions"] == transactions
        mine = [e for e in events if e["login_id"] == login["login_id"]]
        assert mine
        assert item["events"] == mine
    everything = json.dumps(data)
    assert str(other["login_id"]) not in {str(i["id"]) for i in data["logins"]}
    assert other["secret"] not in everything

    # a deactivated login is still exported in full
    off = await h.client.put(
        "/v2/login/deactivate", headers=h.headers(login_secret=logins[0]["secret"])
    )
    assert off.status_code == 200
    again = (await export(h, customer)).json()["data"]["logins"][0]
    assert again["active"] is False
    assert again["transactions"] == data["logins"][0]["transactions"]


async def test_another_app_cannot_export_or_erase(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h, "theirs")
    login = await connect(h, "user_good", 1, customer_id=customer)
    creds = await h.new_app()
    intruder = {
        "client-id": creds["client_id"],
        "service-secret": creds["service_secret"],
        "content-type": "application/json",
    }
    missing = str(uuid.uuid4())
    for customer_id in (customer, missing, "not-a-uuid"):
        for response in (
            await export(h, customer_id, intruder),
            await erase(h, customer_id, intruder),
        ):
            body = assert_error(response, 404, "CustomerNotFound")
            assert body["extra"] == {"customer_id": customer_id}
    for response in (await export(h, missing), await erase(h, missing)):
        assert_error(response, 404, "CustomerNotFound")
    assert len(await accounts_of(h, login["secret"])) == 3
    unauthenticated = await h.client.request(
        "DELETE", "/v2/customer", json={"customer_id": customer}
    )
    assert unauthenticated.status_code >= 400
    assert (await export(h, customer)).status_code == 200


async def test_malformed_requests_are_refused_by_the_usual_rules(harness: Harness) -> None:
    h = harness
    customer = await create_customer(h, "malformed")
    url = "/v2/customer"
    headers = h.headers()
    plain = {**headers, "content-type": "text/plain"}
    cases: list[tuple[dict[str, str], bytes, str]] = [
        (plain, json.dumps({"customer_id": customer}).encode(), "ContentInputInvalid"),
        (headers, b'{"customer_id": ', "ContentInputInvalid"),
        (headers, json.dumps({"customer_id": customer, "x": 1}).encode(), "DataInvalid"),
        (headers, json.dumps({"customer_id": 7}).encode(), "DataInvalid"),
        (headers, json.dumps({"customer_id": None}).encode(), "DataInvalid"),
        (headers, json.dumps({"customer_id": "x" * 65}).encode(), "DataInvalid"),
        (headers, json.dumps(["customer_id"]).encode(), "DataInvalid"),
        (headers, b"{}", "DataInvalid"),
        (headers, b"", "DataInvalid"),
    ]
    for case_headers, content, code in cases:
        response = await h.client.request("DELETE", url, content=content, headers=case_headers)
        body = assert_error(response, 400, code)
        if code == "DataInvalid":
            assert body["extra"]["problems"]
    assert_error(await h.client.get("/v2/customer/export", headers=headers), 400, "BadRequest")
    assert (await export(h, customer)).status_code == 200  # nothing was erased

    # the body wins over the query
    response = await h.client.request(
        "DELETE",
        url,
        params={"customer_id": str(uuid.uuid4())},
        json={"customer_id": customer},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["customer_id"] == customer


# --- audit -----------------------------------------------------------------------------------


async def test_erasure_and_export_are_audited_without_personal_data(harness: Harness) -> None:
    h = harness
    identifier = f"audited-{secrets.token_hex(6)}"
    customer = await create_customer(h, identifier)
    first = await connect(h, "user_good", 1, customer_id=customer)
    second = await connect(h, "user_dynamic", 3, customer_id=customer)
    descriptions = {t["description"] for t in await all_transactions(h, first["secret"])}
    descriptions |= {t["description"] for t in await all_transactions(h, second["secret"])}
    exported = (await export(h, customer)).json()["data"]
    deleted = await h.client.delete(
        "/v2/login", headers={**h.headers(login_secret=second["secret"]), "x-request-id": "r-1"}
    )
    assert deleted.json() == {"data": {"id": second["login_id"], "deleted": True}, "version": "v2"}
    assert (await erase(h, customer)).status_code == 200

    async with h.hub.db.transaction() as session:
        entries = (
            (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
        )
    by_action = {e.action: e for e in entries}
    assert {"customer.exported", "login.erased", "customer.erased"} <= set(by_action)
    actor = f"app:{h.creds['client_id']}"
    first_export = exported["logins"][0]
    assert by_action["customer.exported"].target_id == customer
    export_detail = dict(by_action["customer.exported"].detail)
    assert len(export_detail.pop("account_ids")) == 6
    assert export_detail.pop("key_id").startswith("key_")
    assert export_detail == {
        "resource": "customer_export",
        "route": "GET /v2/customer/export",
        "customer_id": customer,
        "login_ids": [first["login_id"], second["login_id"]],
        "logins": 2,
        "accounts": 6,
        "transactions": len(first_export["transactions"])
        + len(exported["logins"][1]["transactions"]),
        "events": len(first_export["events"]) + len(exported["logins"][1]["events"]),
    }
    login_erased = by_action["login.erased"]
    assert (login_erased.target_type, login_erased.target_id) == ("login", str(second["login_id"]))
    assert login_erased.request_id == "r-1"
    assert login_erased.detail["logins"] == 1
    assert login_erased.detail["accounts"] == 3
    erased = by_action["customer.erased"]
    assert (erased.target_type, erased.target_id) == ("customer", customer)
    assert erased.detail["logins"] == 1
    assert erased.detail["accounts"] == 3
    assert erased.detail["transactions"] == len(first_export["transactions"])
    for entry in (by_action["customer.exported"], login_erased, erased):
        assert entry.actor == actor
        assert entry.app_id is not None
        shown = repr((entry.detail, entry.target_id, entry.actor, entry.request_id))
        assert identifier not in shown
        assert not [d for d in descriptions if d in shown]


async def test_the_runner_empties_the_write_ahead_log_after_a_purge(
    harness: Harness, tmp_path: Path
) -> None:
    """A running server keeps its connections: rows deleted by a purge (not an erasure, which
    cleans up before it answers) must not linger in the WAL past the runner's sweep."""
    from bankhub.jobs.runner import Runner

    h = harness
    if h.hub.db.dialect != "sqlite":
        pytest.skip("PostgreSQL has no write-ahead log file of bankhub's to clean")
    marker = f"wal-canary-{secrets.token_hex(6)}"
    created = await h.client.post("/v2/customer", json={"identifier": marker}, headers=h.headers())
    customer_id = created.json()["data"]["customer_id"]
    async with h.hub.db.transaction() as session:
        await session.execute(delete(Customer).where(Customer.id == customer_id))
    wal = tmp_path / "bankhub.sqlite3-wal"
    before = await asyncio.to_thread(wal.read_bytes)
    assert marker.encode() in before  # the deleted row's page is still in the log
    await Runner(h.hub).housekeeping.sweep()
    after = await asyncio.to_thread(wal.read_bytes)
    assert marker.encode() not in after


async def sealed_values(h: Harness, login_id: int) -> set[str]:
    """The envelopes stored for a login's accounts and transactions (each one's random part)."""
    query = text(
        "SELECT t.details_enc FROM transactions t JOIN accounts a ON a.id = t.account_id"
        " WHERE a.login_id = :login UNION ALL"
        " SELECT a.iban_enc FROM accounts a WHERE a.login_id = :login UNION ALL"
        " SELECT a.bank_id_enc FROM accounts a WHERE a.login_id = :login"
    )
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            rows = (await session.execute(query, {"login": login_id})).scalars().all()
    # ``v1.<kid>.<base64url>``: a slice of the random part is found wherever the value is
    sealed = {value.rsplit(".", 1)[-1][8:48] for value in rows if value}
    assert sealed, "the login stored no envelope"
    return sealed


async def test_deleting_a_login_leaves_nothing_of_it_in_the_files(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DELETE /v2/login cleans up like a customer's erasure: the moment it answers, none of the
    login's account numbers or transaction texts is in any file (SQLite) or page (PostgreSQL)."""
    h = harness
    fetched = FetchSpy(monkeypatch)
    keep = await connect(h, "user_good", 2)
    kept = {t["description"] for t in await all_transactions(h, keep["secret"])}
    fetched.take()
    login = await connect(h, "user_dynamic", 3)
    numbers = {
        form
        for record in fetched.take()
        for value in (record.number, record.iban)
        if value
        for form in spaced_forms(value)
    }
    texts = {
        t["description"]
        for t in await all_transactions(h, login["secret"])
        if len(t["description"]) >= 6 and t["description"] not in kept
    }
    assert numbers
    assert texts
    # What is sealed at rest is not in clear to begin with: the rows' own ciphertexts are what
    # would linger in a file, so they are searched for too (unique random bytes, no false hit).
    wanted = numbers | texts | await sealed_values(h, login["login_id"])
    raw = await stored_bytes(h)
    assert {v for v in wanted if v.encode() in raw}  # the search finds them
    gone = await h.client.request(
        "DELETE", "/v2/login", headers=h.headers(login_secret=login["secret"])
    )
    assert gone.status_code == 200, gone.text
    raw = await stored_bytes(h)
    assert sorted(v for v in wanted if v.encode() in raw) == []


@pytest.mark.postgres
async def test_vacuum_runs_as_a_role_that_may_and_names_the_tables_it_may_not(
    app_role_harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL as deployed (S14) the runtime role owns no table and may not VACUUM: the
    clean-up after an erasure runs as the owner (BANKHUB_MIGRATION_DATABASE_URL); without it,
    every table is skipped, named and said to wait for autovacuum."""
    h = app_role_harness
    assert h.hub.db.maintenance_url is not None
    assert await erasure.scrub(h.hub.db) == Scrubbed(complete=True)
    runtime_only = Database(h.hub.db.url)
    try:
        with caplog.at_level(logging.WARNING, logger="bankhub.db.engine"):
            skipped = await erasure.scrub(runtime_only)
    finally:
        await runtime_only.dispose()
    assert skipped == Scrubbed(complete=False, skipped=erasure.ERASED_TABLES)
    assert "BANKHUB_MIGRATION_DATABASE_URL" in caplog.text
