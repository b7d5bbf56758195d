"""POST /v2/statement: multipart imports through the sync engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import Harness
from tests.statements.corpus import read
from tests.statements.uploads import multipart_headers as _multipart_headers
from tests.statements.uploads import new_customer as _customer
from tests.statements.uploads import stored as _stored
from tests.statements.uploads import upload as _upload

ING = "csv/ing.csv"


@pytest.mark.parametrize(
    ("name", "accounts"),
    [
        ("camt/camt053.v2.multi.statement.xml", [("EUR", 2, "20.00")]),
        ("mt940/ASNB/mt940.txt", [("EUR", 8, "501.23")]),
        ("mt940/betterplace/sepa_snippet.sta", [("EUR", 4, "1125250.4"), ("EUR", 7, None)]),
        ("ofx/bank_medium.ofx", [("CAD", 3, "382.34")]),
        (ING, [("EUR", 20, None)]),
    ],
)
async def test_import_corpus_files_with_exact_counts(
    harness: Harness, name: str, accounts: list[tuple[str, int, str | None]]
) -> None:
    h = harness
    customer = await _customer(h)
    response = await _upload(h, customer, name.rsplit("/", 1)[-1], read(name))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == "v2"
    data = body["data"]
    assert len(data["secret"]) == 36
    got = [(a["currency"], a["imported"]) for a in data["accounts"]]
    assert got == [(currency, count) for currency, count, _ in accounts]
    for account, (_, _, closing) in zip(data["accounts"], accounts, strict=True):
        if closing is not None:
            assert account["closing_balance"] == closing
        assert account["number_masked"].startswith("•••• ")
    # The login-secret from the answer reads the import back like any login.
    read_back = await h.client.get(
        "/v2/transaction", headers=h.headers(login_secret=data["secret"])
    )
    assert read_back.status_code == 200
    assert len(read_back.json()["data"]) == sum(count for _, count, _ in accounts)
    login = await h.client.get("/v2/login", headers=h.headers(login_secret=data["secret"]))
    assert login.json()["data"]["id"] == data["login_id"]
    assert login.json()["data"]["status"] == "login_active"


async def test_reimporting_the_same_file_adds_nothing(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    name = "mt940/vr-teilhaberbank.mta"
    first = (await _upload(h, customer, "a.mta", read(name))).json()["data"]
    assert first["accounts"][0]["imported"] == 5
    again = await _upload(h, customer, "a.mta", read(name), login_id=first["login_id"])
    assert again.status_code == 200, again.text
    second = again.json()["data"]
    assert second["login_id"] == first["login_id"]
    assert second["secret"] is None  # shown once, when the login was created
    assert second["accounts"][0]["id"] == first["accounts"][0]["id"]
    assert second["accounts"][0]["imported"] == 0
    assert await _stored(h) == (1, 1, 5)


async def test_same_camt_twice_and_two_mt940_files(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    camt = read("camt/camt053.v2.multi.statement.xml")
    first = (await _upload(h, customer, "s.xml", camt)).json()["data"]
    second = (await _upload(h, customer, "s.xml", camt, login_id=first["login_id"])).json()
    assert second["data"]["accounts"][0]["imported"] == 0
    # Two MT940 files of different banks on one statement login: two accounts, all rows.
    citi = await _upload(h, customer, "c.txt", read("mt940/citi/mt940.txt"), first["login_id"])
    asn = await _upload(h, customer, "a.txt", read("mt940/ASNB/mt940.txt"), first["login_id"])
    assert citi.json()["data"]["accounts"][0]["imported"] == 5
    assert asn.json()["data"]["accounts"][0]["imported"] == 8
    assert await _stored(h) == (1, 3, 2 + 5 + 8)


def _cut_ing(rows: slice) -> bytes:
    lines = read(ING).split(b"\n")
    header = next(i for i, line in enumerate(lines) if line.startswith(b"Buchung;"))
    body = [line for line in lines[header + 1 :] if line.strip()]
    return b"\n".join([*lines[: header + 1], *body[rows]]) + b"\n"


async def test_overlapping_files_store_each_transaction_once(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    newer, older = _cut_ing(slice(0, 12)), _cut_ing(slice(8, 20))
    first = (await _upload(h, customer, "newer.csv", newer)).json()["data"]
    assert first["accounts"][0]["imported"] == 12
    second = (await _upload(h, customer, "older.csv", older, first["login_id"])).json()["data"]
    assert second["accounts"][0]["imported"] == 8
    assert await _stored(h) == (1, 1, 20)
    whole = (await _upload(h, customer, "ing.csv", read(ING), first["login_id"])).json()["data"]
    assert whole["accounts"][0]["imported"] == 0
    assert await _stored(h) == (1, 1, 20)


async def test_broken_file_stores_nothing_and_names_the_problem(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    response = await _upload(h, customer, "error.ofx", read("ofx/error_message.ofx"))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "DataInvalid"
    assert "code 2000" in body["message"]
    truncated = read("camt/camt053.v2.multi.statement.xml")[:900]
    response = await _upload(h, customer, "cut.xml", truncated)
    assert response.status_code == 400
    assert response.json()["message"]
    empty = await _upload(h, customer, "empty.sta", b"")
    assert empty.status_code == 400
    assert "empty" in empty.json()["message"]
    assert await _stored(h) == (0, 0, 0)


async def test_login_of_another_customer_or_unknown_is_refused(harness: Harness) -> None:
    h = harness
    mine = await _customer(h, "one")
    other = await _customer(h, "two")
    first = (await _upload(h, mine, "a.ofx", read("ofx/checking.ofx"))).json()["data"]
    response = await _upload(h, other, "a.ofx", read("ofx/checking.ofx"), first["login_id"])
    assert response.status_code == 404
    assert response.json()["error"] == "LoginNotFound"
    response = await _upload(h, mine, "a.ofx", read("ofx/checking.ofx"), 999_999)
    assert response.status_code == 404
    assert await _stored(h) == (1, 1, 3)


async def test_read_scope_is_refused_and_json_rule_holds_elsewhere(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    made = await h.client.post("/v2/keys", json={"scope": "read"}, headers=h.headers())
    assert made.status_code == 200, made.text
    headers = {"client-id": h.creds["client_id"], "service-secret": made.json()["data"]["secret"]}
    response = await _upload(h, customer, "a.ofx", read("ofx/checking.ofx"), headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "InsufficientScope"
    assert await _stored(h) == (0, 0, 0)
    # Other routes still take JSON only.
    form = await h.client.post(
        "/v2/customer",
        files={"file": ("a.ofx", b"x", "text/plain")},
        headers=_multipart_headers(h),
    )
    assert form.status_code == 400
    assert form.json()["error"] == "ContentInputInvalid"


async def test_statement_body_limit_is_20_mb_and_stays_1_mb_elsewhere(harness: Harness) -> None:
    h = harness
    customer = await _customer(h)
    big = b"x" * (21 * 1024 * 1024)
    response = await _upload(h, customer, "big.sta", big)
    assert response.status_code == 413
    # 3 MB of a statement is accepted past the size check (and then refused as unreadable).
    response = await _upload(h, customer, "junk.sta", b"x" * (3 * 1024 * 1024))
    assert response.status_code == 400
    assert response.json()["error"] == "DataInvalid"
    elsewhere = b"x" * (2 * 1024 * 1024)
    response = await h.client.post("/v2/customer", content=elsewhere, headers=h.headers())
    assert response.status_code == 413


async def test_openapi_describes_the_multipart_route(harness: Harness) -> None:
    schema = (await harness.client.get("/openapi.json")).json()
    operation = schema["paths"]["/v2/statement"]["post"]
    content = operation["requestBody"]["content"]
    assert "multipart/form-data" in content
    properties = content["multipart/form-data"]["schema"]
    assert operation["summary"].startswith("Import a statement file")
    assert properties
