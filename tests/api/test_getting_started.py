"""The seed's "Getting started" flow, end to end, in the seed's shapes."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from tests.api.connect_client import (
    CALLBACK,
    ConnectDriver,
    connect,
    create_customer,
    create_token,
)
from tests.conftest import BASE_URL, Harness
from tests.seed_shapes import ACCOUNT_KEYS, SERVICE_KEYS, TRANSACTION_KEYS


async def test_service_catalogue_and_media(harness: Harness) -> None:
    h = harness
    public = await h.client.get("/service.json")
    assert public.status_code == 200
    services = public.json()
    assert len({s["country_code"] for s in services}) >= 4
    for service in services:
        assert set(service) == SERVICE_KEYS
        assert service["type"] in ("bank", "statement", "other")
        assert set(service["color"]) == {"primary", "secondary"}
        logo = await h.client.get(
            service["media_path"].removeprefix(BASE_URL) + service["logo_file_name"]
        )
        assert logo.status_code == 200
        assert logo.content.startswith(b"\x89PNG\r\n\x1a\n")
        stem, ext = service["cover_file_name"].rsplit(".", 1)
        for size in ("small", "medium", "large"):
            cover = await h.client.get(
                service["media_path"].removeprefix(BASE_URL) + f"{stem}-{size}.{ext}"
            )
            assert cover.status_code == 200, (service["name"], size)
            assert cover.headers["content-type"] == "image/png"
    for service in services:
        assert service["media_path"] == f"{BASE_URL}/media/services/"
    listed = await h.client.get("/v2/service", headers=h.headers())
    assert listed.status_code == 200
    assert listed.json()["version"] == "v2"
    assert listed.json()["data"] == services
    assert (await h.client.get("/media/services/..%2Fsecret.key")).status_code == 404


async def test_customer_token_connect_accounts_transactions(harness: Harness) -> None:
    h = harness
    created = await h.client.post(
        "/v2/customer", json={"identifier": "sample-identifier-user"}, headers=h.headers()
    )
    assert created.status_code == 200
    body = created.json()
    assert body["version"] == "v2"
    assert body["data"]["identifier"] == "sample-identifier-user"
    customer_id = body["data"]["customer_id"]
    uuid.UUID(customer_id)

    token = await h.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK},
        headers=h.headers(),
    )
    assert token.status_code == 200
    data = token.json()["data"]
    assert set(data) == {"id", "connect_url"}
    assert data["connect_url"] == f"{BASE_URL}/v2/connect/term/{data['id']}"

    driver = ConnectDriver(h)
    page = await driver.open(data["connect_url"])
    assert "asks to read your bank data" in page
    page = await driver.agree()
    assert 'name="password"' in page
    page = await driver.login("user_otp")
    assert 'name="code"' in page
    page = await driver.answer(code="000000")
    assert "attempts left" in page
    await driver.answer(code="123456")
    callback = await driver.finish()
    assert callback.location.startswith(CALLBACK + "/%7B")
    payload = callback.payload
    assert set(payload) == {"status", "login_id", "secret"}
    assert payload["status"] == "success"
    assert isinstance(payload["login_id"], int)
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", payload["secret"]
    )

    accounts = await h.client.get("/v2/account", headers=h.headers(login_secret=payload["secret"]))
    assert accounts.status_code == 200
    listed = accounts.json()
    assert listed["version"] == "v2"
    assert len(listed["data"]) == 3
    for account in listed["data"]:
        assert set(account) == ACCOUNT_KEYS
        assert account["login_id"] == payload["login_id"]
        Decimal(account["balance"])
    assert {a["type"] for a in listed["data"]} == {"current", "savings", "credit_card"}

    account_id = listed["data"][0]["id"]
    txs = await h.client.get(
        f"/v2/transaction?account_id={account_id}&from_date=2025-01-01&to_date=2026-12-31",
        headers=h.headers(login_secret=payload["secret"]),
    )
    assert txs.status_code == 200
    rows = txs.json()["data"]
    assert rows
    for row in rows:
        assert set(row) == TRANSACTION_KEYS
        assert "2025-01-01" <= row["date"] <= "2026-12-31"
        assert re.fullmatch(r"-?\d+\.\d{2,3}", row["amount"])
        assert row["category"]
    same = await h.client.get(
        f"/v2/transaction?account_id={account_id}&from_date=2025-01-01&end_date=2026-12-31",
        headers=h.headers(login_secret=payload["secret"]),
    )
    assert same.json() == txs.json()


async def test_mobile_app_secret_works(harness: Harness) -> None:
    h = harness
    response = await h.client.post(
        "/v2/customer", json={"identifier": "mobile-user"}, headers=h.headers(mobile=True)
    )
    assert response.status_code == 200


async def test_every_transaction_has_a_category_and_decimal_amounts(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good", service_id=1)
    headers = h.headers(login_secret=payload["secret"])
    rows = (await h.client.get("/v2/transaction", headers=headers)).json()["data"]
    assert len(rows) > 1000  # without page/per_page, every row (user_good has over 1,000)
    assert all(r["category"] for r in rows)
    assert any(r["category"] != "uncategorized" for r in rows)


async def test_pagination_link(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    headers = h.headers(login_secret=payload["secret"])
    first = await h.client.get("/v2/transaction?per_page=5", headers=headers)
    assert len(first.json()["data"]) == 5
    link = first.headers["link"]
    next_path = link[1 : link.index(">")].removeprefix(BASE_URL)
    second = await h.client.get(next_path, headers=headers)
    ids_first = {r["id"] for r in first.json()["data"]}
    ids_second = {r["id"] for r in second.json()["data"]}
    assert len(ids_second) == 5
    assert not ids_first & ids_second


async def test_login_read_and_activation(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    headers = h.headers(login_secret=payload["secret"])
    login = (await h.client.get("/v2/login", headers=headers)).json()["data"]
    assert login["id"] == payload["login_id"]
    assert login["status"] == "login_active"
    assert login["consent_expires_at"].endswith("Z")

    off = await h.client.put("/v2/login/deactivate", headers=headers)
    assert off.status_code == 200
    assert off.json()["data"] == {"id": payload["login_id"], "deActivate": True}
    blocked = await h.client.get("/v2/account", headers=headers)
    assert blocked.status_code == 400
    assert blocked.json()["error"] == "BadRequest"
    assert "deactivated" in blocked.json()["message"]
    refused = await h.client.put("/v2/login/refresh", headers=headers)
    assert refused.status_code == 400

    on = await h.client.put("/v2/login/activate", headers=headers)
    assert on.json()["data"] == {"id": payload["login_id"], "activate": True}
    assert (await h.client.get("/v2/account", headers=headers)).status_code == 200


async def test_openapi_is_served(harness: Harness) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.")
    for path in (
        "/v2/customer",
        "/v2/token",
        "/v2/token/reconnect",
        "/v2/account",
        "/v2/transaction",
        "/v2/login/refresh",
        "/v2/login/activate",
        "/v2/login/deactivate",
        "/service.json",
        "/v2/service",
    ):
        assert path in spec["paths"], path


async def test_customer_ids_are_scoped_to_the_app(harness: Harness) -> None:
    h = harness
    customer_id = await create_customer(h, "mine")
    other = await h.new_app()
    response = await h.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK},
        headers={
            "client-id": other["client_id"],
            "service-secret": other["service_secret"],
            "content-type": "application/json",
        },
    )
    assert response.status_code == 404
    assert response.json()["error"] == "CustomerNotFound"
    # the same identifier is free in another app
    again = await h.client.post(
        "/v2/customer",
        json={"identifier": "mine"},
        headers={
            "client-id": other["client_id"],
            "service-secret": other["service_secret"],
            "content-type": "application/json",
        },
    )
    assert again.status_code == 200
    assert await create_token(h, customer_id)
