"""A statement line naming a chain that no keyword rule knows comes out of GET /v2/transaction
with the chain's category from the brand table, and an app's own rule still wins over it; on
SQLite and PostgreSQL."""

from __future__ import annotations

from tests.categories.test_app_rules_api import _categories
from tests.conftest import Harness
from tests.statements.uploads import multipart_headers, new_customer

MT940 = (
    b":20:STARTUMSE\r\n:25:12345678/0001234567\r\n:28C:00001/001\r\n:60F:C250401EUR1000,00\r\n"
    b":61:2504020402D23,17NMSCNONREF\r\n:86:HOFER DANKT 0123 KORNEUBURG\r\n"
    b":61:2504030403D9,99NMSCNONREF\r\n:86:TEDI 4411 WIEN\r\n"
    b":61:2504040404C23,17NMSCNONREF\r\n:86:HOFER KG Gutschrift\r\n"
    b":62F:C250404EUR990,01\r\n-\r\n"
)


async def _import(h: Harness, identifier: str) -> str:
    customer = await new_customer(h, identifier)
    response = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer},
        files={"file": ("s.sta", MT940, "application/octet-stream")},
        headers=multipart_headers(h),
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["secret"])


async def test_a_chain_is_categorized_by_its_brand_and_the_apps_rule_wins(
    harness: Harness,
) -> None:
    h = harness
    before = await _import(h, "brands-before")
    assert await _categories(h, before) == {
        "HOFER DANKT 0123 KORNEUBURG": "food_and_dining",
        "TEDI 4411 WIEN": "shopping",
        # money in from a chain is a refund or pay, not what it sells
        "HOFER KG Gutschrift": "uncategorized",
    }
    rules = {"rules": [{"category": "home", "keyword": "hofer"}], "chosen_by": "Ops Team"}
    put = await h.client.put("/v2/app/category-rules", json=rules, headers=h.headers())
    assert put.status_code == 200, put.text
    after = await _import(h, "brands-after")
    assert await _categories(h, after) == {
        "HOFER DANKT 0123 KORNEUBURG": "home",
        "TEDI 4411 WIEN": "shopping",
        "HOFER KG Gutschrift": "home",
    }
