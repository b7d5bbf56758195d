"""Each of the seed's 16 error codes, produced by a real condition, with the table's status."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bankhub.connectors.sandbox import bank
from tests.api.connect_client import CALLBACK, ConnectDriver, connect, create_customer, create_token
from tests.conftest import Harness


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message", "extra"}
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert isinstance(body["extra"], dict)
    return body


async def test_bad_request_for_a_malformed_date(harness: Harness) -> None:
    payload = await connect(harness)
    response = await harness.client.get(
        "/v2/transaction?from_date=26-08-2016",
        headers=harness.headers(login_secret=payload["secret"]),
    )
    assert_error(response, 400, "BadRequest")


async def test_account_not_found_for_another_logins_account(harness: Harness) -> None:
    h = harness
    first = await connect(h, "user_good")
    second = await connect(h, "user_good", customer_id=await create_customer(h, "someone-else"))
    accounts = (
        await h.client.get("/v2/account", headers=h.headers(login_secret=first["secret"]))
    ).json()
    foreign = accounts["data"][0]["id"]
    response = await h.client.get(
        f"/v2/transaction?account_id={foreign}", headers=h.headers(login_secret=second["secret"])
    )
    body = assert_error(response, 404, "AccountNotFound")
    assert body["extra"] == {"account_id": foreign}


async def test_client_not_found_for_an_unknown_client_id(harness: Harness) -> None:
    response = await harness.client.post(
        "/v2/customer",
        json={"identifier": "x"},
        headers={"client-id": "nobody", "service-secret": "x", "content-type": "application/json"},
    )
    assert_error(response, 404, "ClientNotFound")


async def test_connect_error_when_the_bank_is_down(harness: Harness) -> None:
    h = harness
    payload = await connect(h, "user_good")
    h.clock.advance(minutes=10)
    service = h.hub.catalogue.get(1)
    assert service is not None
    slug = service.slug
    bank.set_outage(slug, True)
    try:
        response = await h.client.put(
            "/v2/login/refresh", headers=h.headers(login_secret=payload["secret"])
        )
    finally:
        bank.set_outage(slug, False)
    body = assert_error(response, 503, "ConnectError")
    assert body["extra"]["status"] == "login_provider_unavailable"
    login = (
        await h.client.get("/v2/login", headers=h.headers(login_secret=payload["secret"]))
    ).json()
    assert login["data"]["status"] == "login_provider_unavailable"


async def test_content_input_invalid_for_a_non_json_body(harness: Harness) -> None:
    h = harness
    headers = {**h.headers(), "content-type": "text/plain"}
    response = await h.client.post("/v2/customer", content=b"identifier=x", headers=headers)
    assert_error(response, 400, "ContentInputInvalid")
    broken = await h.client.post("/v2/customer", content=b'{"identifier": ', headers=h.headers())
    assert_error(broken, 400, "ContentInputInvalid")


async def test_credential_invalid_for_a_wrong_secret(harness: Harness) -> None:
    headers = {**harness.headers(), "service-secret": "wrong"}
    response = await harness.client.post("/v2/customer", json={"identifier": "x"}, headers=headers)
    assert_error(response, 400, "CredentialInvalid")
    missing = {"client-id": harness.creds["client_id"], "content-type": "application/json"}
    response = await harness.client.post("/v2/customer", json={"identifier": "x"}, headers=missing)
    assert_error(response, 400, "CredentialInvalid")


async def _fail_inserts_into(h: Harness, table: str) -> None:
    """Make the database refuse writes to one table, as a full disk or a broken replica would."""
    async with h.hub.db.transaction() as session:
        if h.hub.db.dialect == "sqlite":
            await session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'storage refused the write'); END"
                )
            )
        else:
            await session.execute(
                text(
                    "CREATE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'storage refused the write'; END $$"
                )
            )
            await session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_write()"
                )
            )


async def test_customer_create_error_when_storage_refuses(harness: Harness) -> None:
    await _fail_inserts_into(harness, "customers")
    response = await harness.client.post(
        "/v2/customer", json={"identifier": "x"}, headers=harness.headers()
    )
    assert_error(response, 500, "CustomerCreateError")


async def test_customer_exists(harness: Harness) -> None:
    customer_id = await create_customer(harness, "dup")
    response = await harness.client.post(
        "/v2/customer", json={"identifier": "dup"}, headers=harness.headers()
    )
    body = assert_error(response, 400, "CustomerExists")
    assert body["message"] == 'Customer "dup" is exists'
    assert body["extra"] == {"identifier": "dup", "customer_id": customer_id}


async def test_customer_not_found(harness: Harness) -> None:
    response = await harness.client.post(
        "/v2/token",
        json={
            "customer_id": "115eff49-1323-4f09-9fc1-c8009d81777b",
            "service_id": 1,
            "callback_url": CALLBACK,
        },
        headers=harness.headers(),
    )
    assert_error(response, 404, "CustomerNotFound")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"identifier": ""},
        {"identifier": 42},
        {"identifier": "x", "admin": True},
    ],
)
async def test_data_invalid(harness: Harness, body: dict[str, object]) -> None:
    response = await harness.client.post("/v2/customer", json=body, headers=harness.headers())
    assert_error(response, 400, "DataInvalid")


@pytest.mark.parametrize(
    "callback",
    ["javascript:alert(1)", "http://x/\r\nSet-Cookie: a=b", "data:text/html,x", "nohost"],
)
async def test_data_invalid_for_a_dangerous_callback(harness: Harness, callback: str) -> None:
    customer_id = await create_customer(harness, "cb")
    response = await harness.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 1, "callback_url": callback},
        headers=harness.headers(),
    )
    assert_error(response, 400, "DataInvalid")


async def test_internal_error_is_generic(harness: Harness) -> None:
    payload = await connect(harness)
    async with harness.hub.db.transaction() as session:
        await session.execute(text("DROP TABLE transactions"))
    response = await harness.client.get(
        "/v2/transaction", headers=harness.headers(login_secret=payload["secret"])
    )
    body = assert_error(response, 500, "InternalError")
    assert body["message"] == "Sorry server is crash. Please try again."
    assert "transactions" not in response.text
    assert "Traceback" not in response.text


async def test_login_not_found(harness: Harness) -> None:
    response = await harness.client.get(
        "/v2/account", headers=harness.headers(login_secret="d16bdfd0-5bd2-46d3-96c2-12313sdsda")
    )
    body = assert_error(response, 404, "LoginNotFound")
    assert body["extra"] == {"loginSecret": "d16bdfd0-5bd2-46d3-96c2-12313sdsda"}


async def test_server_maintenance_while_the_switch_is_on(harness: Harness) -> None:
    from bankhub.events import flags

    async with harness.hub.db.transaction() as session:
        await flags.set_flag(session, harness.hub.clock, flags.MAINTENANCE, "on")
    harness.hub.maintenance.invalidate()
    response = await harness.client.get("/v2/service", headers=harness.headers())
    assert_error(response, 503, "ServerMaintenance")
    assert (await harness.client.get("/healthz")).status_code == 200
    async with harness.hub.db.transaction() as session:
        await flags.set_flag(session, harness.hub.clock, flags.MAINTENANCE, "off")
    harness.hub.maintenance.invalidate()
    assert (await harness.client.get("/v2/service", headers=harness.headers())).status_code == 200


async def test_service_not_found(harness: Harness) -> None:
    customer_id = await create_customer(harness, "svc")
    response = await harness.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 99999, "callback_url": CALLBACK},
        headers=harness.headers(),
    )
    assert_error(response, 404, "ServiceNotFound")


async def test_token_create_error_when_storage_refuses(harness: Harness) -> None:
    customer_id = await create_customer(harness, "tok")
    await _fail_inserts_into(harness, "connect_tokens")
    response = await harness.client.post(
        "/v2/token",
        json={"customer_id": customer_id, "service_id": 1, "callback_url": CALLBACK},
        headers=harness.headers(),
    )
    assert_error(response, 500, "TokenCreateError")


async def test_token_expire_for_an_old_or_used_token(harness: Harness) -> None:
    h = harness
    customer_id = await create_customer(h, "late")
    old = await create_token(h, customer_id)
    h.clock.advance(minutes=31)
    driver = ConnectDriver(h)
    page = await driver.open(old)
    assert driver.status == 400
    assert 'data-code="TokenExpire"' in page

    fresh = await create_token(h, customer_id)
    first = ConnectDriver(h)
    await first.open(fresh)
    assert first.status == 200
    h.client.cookies.clear()
    again = ConnectDriver(h)
    page = await again.open(fresh)
    assert again.status == 400
    assert 'data-code="TokenExpire"' in page


async def test_connect_session_idles_out_after_five_minutes(harness: Harness) -> None:
    h = harness
    driver = ConnectDriver(h)
    await driver.open(await create_token(h, await create_customer(h, "idle")))
    h.clock.advance(minutes=5, seconds=1)
    page = await driver.show()
    assert driver.status == 400
    assert 'data-code="TokenExpire"' in page


async def test_unknown_route_and_method(harness: Harness) -> None:
    assert_error(await harness.client.get("/v2/nothing"), 404, "NotFound")
    assert_error(await harness.client.patch("/v2/customer"), 405, "MethodNotAllowed")
