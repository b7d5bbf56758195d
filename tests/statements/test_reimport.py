"""A file imported again goes to the login that holds its accounts and adds only what is new."""

from __future__ import annotations

import asyncio

from tests.conftest import Harness
from tests.statements.corpus import CORPUS, read
from tests.statements.uploads import new_customer, stored, upload

#: every statement file of the corpus bankhub reads (error_message.ofx is the bank's refusal)
FILES = sorted(
    str(path.relative_to(CORPUS))
    for folder in ("camt", "csv", "mt940", "ofx")
    for path in (CORPUS / folder).rglob("*")
    if path.is_file() and path.name != "error_message.ofx"
)


async def test_every_corpus_file_imported_twice_adds_nothing_the_second_time(
    harness: Harness,
) -> None:
    h = harness
    customer = await new_customer(h)
    first: dict[str, int] = {}
    for name in FILES:
        response = await upload(h, customer, name.rsplit("/", 1)[-1], read(name))
        assert response.status_code == 200, (name, response.text)
        first[name] = response.json()["data"]["login_id"]
        response = await upload(h, customer, name.rsplit("/", 1)[-1], read(name))
        again = response.json()["data"]
        assert again["login_id"] == first[name], name
        assert (again["login_created"], again["secret"]) == (False, None), name
        assert [a["imported"] for a in again["accounts"]] == [0] * len(again["accounts"]), name
    counts = await stored(h)
    # Files of the same account share its login: mBank's MT942 joins its MT940, the camt
    # examples that name NL56AGDH9619008421 share one, and so on.
    assert counts[0] == len(set(first.values())) < len(FILES)
    # Once more, all of them: each finds its login again and the store ends as it was.
    for name in FILES:
        again = (await upload(h, customer, name.rsplit("/", 1)[-1], read(name))).json()["data"]
        assert (again["login_id"], again["login_created"]) == (first[name], False), name
    assert await stored(h) == counts


async def test_the_answer_says_whether_the_login_is_new(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    made = (await upload(h, customer, "a.sta", read("mt940/mBank/mt940.sta"))).json()["data"]
    assert made["login_created"] is True
    assert len(made["secret"]) == 36
    joined = (await upload(h, customer, "b.sta", read("mt940/mBank/mt942.sta"))).json()["data"]
    assert (joined["login_id"], joined["login_created"]) == (made["login_id"], False)
    assert joined["accounts"][0]["id"] == made["accounts"][0]["id"]
    assert await stored(h) == (1, 1, 3)  # the report's three bookings were in the statement


async def test_an_overlapping_file_goes_to_the_login_of_its_account(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    lines = read("csv/ing.csv").split(b"\n")
    header = next(i for i, line in enumerate(lines) if line.startswith(b"Buchung;"))
    body = [line for line in lines[header + 1 :] if line.strip()]
    newer = b"\n".join([*lines[: header + 1], *body[:12]]) + b"\n"
    older = b"\n".join([*lines[: header + 1], *body[8:]]) + b"\n"
    first = (await upload(h, customer, "newer.csv", newer)).json()["data"]
    second = (await upload(h, customer, "older.csv", older)).json()["data"]
    assert second["login_id"] == first["login_id"]
    assert second["accounts"][0]["imported"] == 8
    assert await stored(h) == (1, 1, 20)


async def test_another_customers_or_apps_login_is_never_found(harness: Harness) -> None:
    h = harness
    name = "camt/test-camt053"
    mine = await new_customer(h, "mine")
    theirs = await new_customer(h, "theirs")
    first = (await upload(h, mine, "a.xml", read(name))).json()["data"]
    other = (await upload(h, theirs, "a.xml", read(name))).json()["data"]
    assert other["login_created"] is True
    assert other["login_id"] != first["login_id"]
    assert other["accounts"][0]["imported"] == 3
    creds = await h.new_app()
    headers = {"client-id": creds["client_id"], "service-secret": creds["service_secret"]}
    made = await h.client.post(
        "/v2/customer",
        json={"identifier": "mine"},
        headers={**headers, "content-type": "application/json"},
    )
    assert made.status_code == 200, made.text
    elsewhere = await upload(
        h, made.json()["data"]["customer_id"], "a.xml", read(name), headers=headers
    )
    assert elsewhere.json()["data"]["login_created"] is True
    assert (await stored(h))[0] == 3


async def test_a_named_login_still_takes_the_file(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    first = (await upload(h, customer, "c.txt", read("mt940/citi/mt940.txt"))).json()["data"]
    # Another account's file, added to that login on purpose: it holds both accounts now.
    asn = await upload(h, customer, "a.txt", read("mt940/ASNB/mt940.txt"), first["login_id"])
    assert asn.json()["data"]["login_id"] == first["login_id"]
    # ... and from then on that login holds the ASN account for imports that name no login.
    again = (await upload(h, customer, "a.txt", read("mt940/ASNB/mt940.txt"))).json()["data"]
    assert (again["login_id"], again["accounts"][0]["imported"]) == (first["login_id"], 0)
    assert await stored(h) == (1, 2, 5 + 8)


async def test_two_imports_of_one_new_file_at_once_open_one_login(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    data = read("mt940/vr-teilhaberbank.mta")
    answers = await asyncio.gather(*(upload(h, customer, f"{n}.mta", data) for n in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    bodies = [a.json()["data"] for a in answers]
    assert len({b["login_id"] for b in bodies}) == 1
    assert sorted(b["login_created"] for b in bodies) == [False, False, True]
    assert sorted(b["accounts"][0]["imported"] for b in bodies) == [0, 0, 5]
    assert await stored(h) == (1, 1, 5)


async def test_imports_as_the_runtime_role_under_row_level_security(
    app_role_harness: Harness,
) -> None:
    # As deployed on PostgreSQL: the customer's row is locked and the logins are looked up by a
    # role that owns no table and sees one app's rows only.
    h = app_role_harness
    customer = await new_customer(h)
    data = read("camt/test-camt053")
    first = (await upload(h, customer, "a.xml", data)).json()["data"]
    again = await upload(h, customer, "a.xml", data)
    assert again.status_code == 200, again.text
    assert (again.json()["data"]["login_id"], again.json()["data"]["login_created"]) == (
        first["login_id"],
        False,
    )
    assert again.json()["data"]["accounts"][0]["imported"] == 0
