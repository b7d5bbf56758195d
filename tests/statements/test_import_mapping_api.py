"""POST /v2/statement with a column mapping (a layout no profile knows), QIF with its currency,
and the closest-profile error; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Harness
from tests.statements.uploads import multipart_headers, new_customer, stored

DATA = Path(__file__).parent / "data" / "profiles"
#: a Lloyds export whose debit column a spreadsheet program renamed: no profile claims it
RENAMED = (DATA / "lloyds.csv").read_bytes().replace(b"Debit Amount", b"Paid Out")
MAPPING = {
    "date": "Transaction Date",
    "debit": "Paid Out",
    "credit": "Credit Amount",
    "description": ["Transaction Description"],
    "currency": "GBP",
    "date_format": "%d/%m/%Y",
    "delimiter": ",",
    "decimal_separator": ".",
    "thousands_separator": ",",
    "account_number": "12345678",
}


async def _post(h: Harness, customer: str, name: str, data: bytes, **form: str) -> Any:
    return await h.client.post(
        "/v2/statement",
        data={"customer_id": customer, **form},
        files={"file": (name, data, "application/octet-stream")},
        headers=multipart_headers(h),
    )


async def test_an_unknown_layout_is_refused_naming_the_closest_profile(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    response = await _post(h, customer, "export.csv", RENAMED)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "DataInvalid"
    assert "the closest is 'lloyds'" in body["message"]
    assert "missing 'Debit Amount'" in body["message"]
    assert await stored(h) == (0, 0, 0)


async def test_a_mapping_imports_the_unknown_layout_exactly(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    response = await _post(h, customer, "export.csv", RENAMED, mapping=json.dumps(MAPPING))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["format"] == "csv:generic"
    (account,) = data["accounts"]
    assert (account["currency"], account["imported"]) == ("GBP", 5)
    assert await stored(h) == (1, 1, 5)
    txs = await h.client.get("/v2/transaction", headers=h.headers(login_secret=data["secret"]))
    assert txs.status_code == 200, txs.text
    amounts = sorted(str(t["amount"]) for t in txs.json()["data"])
    assert amounts == sorted(["-38.20", "-23.45", "2150.00", "-7.80", "-850.00"])


async def test_a_broken_mapping_is_refused_and_stores_nothing(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    for mapping, words in (
        ("{not json", "mapping: JSON is malformed"),
        (json.dumps({**MAPPING, "colour": "red"}), "unknown field `colour`"),
        (json.dumps({**MAPPING, "delimiter": ";;"}), "`$.delimiter`"),
        (json.dumps({k: v for k, v in MAPPING.items() if k != "currency"}), "currency"),
        (json.dumps({**MAPPING, "debit": "Nope"}), "has no column 'Nope'"),
    ):
        response = await _post(h, customer, "export.csv", RENAMED, mapping=mapping)
        assert response.status_code == 400, mapping
        body = response.json()
        assert body["error"] == "DataInvalid"
        assert words in body["message"], (words, body["message"])
    assert await stored(h) == (0, 0, 0)


async def test_qif_needs_its_currency_and_then_imports(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    data = (DATA / "quicken.qif").read_bytes()
    refused = await _post(h, customer, "quicken.qif", data)
    assert refused.status_code == 400
    assert "states no currency" in refused.json()["message"]
    bad = await _post(h, customer, "quicken.qif", data, currency="dollars")
    assert bad.status_code == 400
    assert bad.json()["extra"]["field"] == "currency"
    assert await stored(h) == (0, 0, 0)
    response = await _post(h, customer, "quicken.qif", data, currency="usd")
    assert response.status_code == 200, response.text
    body = response.json()["data"]
    assert body["format"] == "qif"
    assert [(a["currency"], a["imported"]) for a in body["accounts"]] == [("USD", 4)]
