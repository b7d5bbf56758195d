"""PUT /v2/app/category-rules: an app's own rules win over bankhub's for the transactions it
stores from then on, and touch no other app's; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.statements.uploads import multipart_headers, new_customer

MT940 = (
    b":20:STARTUMSE\r\n:25:12345678/0001234567\r\n:28C:00001/001\r\n:60F:C250401EUR1000,00\r\n"
    b":61:2504020402D47,13NMSCNONREF\r\n:86:REWE Markt Kartenzahlung\r\n"
    b":61:2504030403D30,00NMSCNONREF\r\n:86:Taschengeld Mai\r\n"
    b":61:2504040404C2500,00NMSCNONREF\r\n:86:Gehalt April\r\n"
    b":62F:C250404EUR3422,87\r\n-\r\n"
)
RULES = {
    "rules": [
        {"category": "home", "keyword": "rewe", "sign": "debit"},
        {"category": "kids", "keyword": "taschengeld*", "sign": "any"},
    ],
    "chosen_by": "Ops Team",
}


async def _import(h: Harness, identifier: str) -> dict[str, str]:
    customer = await new_customer(h, identifier)
    response = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer},
        files={"file": ("s.sta", MT940, "application/octet-stream")},
        headers=multipart_headers(h),
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def _categories(h: Harness, secret: str) -> dict[str, str]:
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=secret))
    assert listed.status_code == 200, listed.text
    return {t["description"]: t["category"] for t in listed.json()["data"]}


async def test_the_apps_rules_win_for_what_it_stores_from_then_on(harness: Harness) -> None:
    h = harness
    before = await _import(h, "before-rules")
    assert await _categories(h, before["secret"]) == {
        "REWE Markt Kartenzahlung": "food_and_dining",
        "Taschengeld Mai": "uncategorized",
        "Gehalt April": "income",
    }
    put = await h.client.put("/v2/app/category-rules", json=RULES, headers=h.headers())
    assert put.status_code == 200, put.text
    assert put.json()["data"]["rules"] == RULES["rules"]
    got = await h.client.get("/v2/app/category-rules", headers=h.headers())
    assert got.json()["data"]["rules"] == RULES["rules"]
    after = await _import(h, "after-rules")
    assert await _categories(h, after["secret"]) == {
        "REWE Markt Kartenzahlung": "home",
        "Taschengeld Mai": "kids",
        "Gehalt April": "income",
    }
    # what was stored before keeps its category
    assert (await _categories(h, before["secret"]))["REWE Markt Kartenzahlung"] == (
        "food_and_dining"
    )
    # an empty list removes the rules
    cleared = {"rules": [], "chosen_by": "Ops Team"}
    assert (await h.client.put("/v2/app/category-rules", json=cleared, headers=h.headers())).json()[
        "data"
    ]["rules"] == []


async def test_another_apps_rules_do_not_touch_this_app(harness: Harness) -> None:
    h = harness
    other = await h.new_app("other")
    other_headers = {
        "client-id": other["client_id"],
        "service-secret": other["service_secret"],
        "content-type": "application/json",
    }
    put = await h.client.put("/v2/app/category-rules", json=RULES, headers=other_headers)
    assert put.status_code == 200, put.text
    mine = await _import(h, "mine")
    assert (await _categories(h, mine["secret"]))["REWE Markt Kartenzahlung"] == "food_and_dining"


async def test_a_bad_rule_is_refused_and_nothing_changes(harness: Harness) -> None:
    h = harness
    bad: list[tuple[dict[str, Any], str]] = [
        ({"rules": [{"category": "groceries", "keyword": "rewe"}], "chosen_by": "x"}, "category"),
        ({"rules": [{"category": "uncategorized", "keyword": "a"}], "chosen_by": "x"}, "category"),
        ({"rules": [{"category": "home", "keyword": "**"}], "chosen_by": "x"}, "letters"),
        ({"rules": [{"category": "home", "keyword": "a", "sign": "in"}], "chosen_by": "x"}, "sign"),
        ({"rules": [{"category": "home", "keyword": "a", "x": 1}], "chosen_by": "x"}, "x"),
        ({"rules": [{"category": "home", "keyword": "a"}] * 201, "chosen_by": "x"}, "<= 200"),
    ]
    for body, words in bad:
        response = await h.client.put("/v2/app/category-rules", json=body, headers=h.headers())
        assert response.status_code == 400, body
        assert response.json()["error"] == "DataInvalid", response.text
        assert words in response.text, (words, response.text)
    got = await h.client.get("/v2/app/category-rules", headers=h.headers())
    assert got.json()["data"]["rules"] == []
