"""A balance exists only where a statement states one, and an older file never moves it back."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from bankhub.accounts.models import Account
from bankhub.db import tenancy
from bankhub.logins.models import Login
from bankhub.statements import parse_statement
from tests.conftest import Harness
from tests.seed_shapes import ACCOUNT_KEYS
from tests.statements.corpus import read
from tests.statements.uploads import new_customer, upload

VR = "mt940/vr-teilhaberbank.mta"


def statements_of(name: str) -> list[bytes]:
    """The MT940 messages of a corpus file, each a file of its own."""
    data = read(name)
    return [b":20:" + part for part in data.split(b":20:")[1:]]


@pytest.mark.parametrize(
    ("name", "balance", "day"),
    [
        ("csv/ing.csv", None, None),  # ING's export states no balance
        ("csv/sparkasse-lzo-camt-v8.csv", None, None),
        ("mt940/mBank/mt942.sta", None, None),  # an interim report has no :62F:
        ("mt940/mBank/mt940.sta", Decimal("0.43"), date(2017, 1, 19)),
        ("csv/dkb.csv", Decimal("4093.32"), date(2025, 12, 9)),  # "Kontostand vom"
        ("ofx/checking.ofx", Decimal("100.99"), date(2013, 5, 25)),  # LEDGERBAL
        ("ofx/ofx-v102-empty-tags.ofx", None, None),  # an empty LEDGERBAL
        ("camt/camt053.v4.xml", None, None),  # its CLBD is in SEK on an EUR account
        ("camt/camt052.v8.xml", None, None),  # a report without balances
        # only an opening balance, and no booking after it: that is the newest balance stated
        ("camt/camt53.only-Dt-with-DtTm.xml", Decimal("5442.09000"), date(2025, 7, 23)),
    ],
)
def test_a_balance_is_the_one_the_file_states_or_none(
    name: str, balance: Decimal | None, day: date | None
) -> None:
    record = parse_statement(read(name), name).accounts[0].to_account_record()
    assert record.balance == balance
    assert record.balance_date == day


async def test_an_account_no_file_gave_a_balance_reads_null(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    done = (await upload(h, customer, "ing.csv", read("csv/ing.csv"))).json()["data"]
    listed = await h.client.get("/v2/account", headers=h.headers(login_secret=done["secret"]))
    assert listed.status_code == 200, listed.text
    [account] = listed.json()["data"]
    assert set(account) == ACCOUNT_KEYS  # the seed's field stays, with null in it
    assert account["balance"] is None


async def test_an_interim_report_never_overwrites_the_stated_balance(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    login = (await upload(h, customer, "a.sta", read("mt940/mBank/mt940.sta"))).json()["data"]
    interim = await upload(h, customer, "b.sta", read("mt940/mBank/mt942.sta"), login["login_id"])
    assert interim.status_code == 200, interim.text
    assert interim.json()["data"]["accounts"][0]["closing_balance"] is None
    listed = await h.client.get("/v2/account", headers=h.headers(login_secret=login["secret"]))
    [account] = listed.json()["data"]
    assert account["balance"] == "0.43"  # the MT940's :62F:, not 0 + the report's 0.03


async def test_an_older_statement_never_moves_the_balance_back(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    first, second, third = statements_of(VR)
    done = (await upload(h, customer, "dec.sta", third)).json()["data"]
    headers = h.headers(login_secret=done["secret"])

    async def balance() -> str:
        listed = await h.client.get("/v2/account", headers=headers)
        value: str = listed.json()["data"][0]["balance"]
        return value

    assert await balance() == "14846.94"  # :62F:C251201
    older = await upload(h, customer, "nov.sta", first, done["login_id"])
    assert older.json()["data"]["accounts"][0]["imported"] == 1  # its row is still added
    assert await balance() == "14846.94"  # not the 27 November balance 15170.95
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            row = (await session.execute(select(Account))).scalar_one()
            assert row.balance_date == date(2025, 12, 1)
    # A statement of the same day as the stored one may restate it.
    same_day = third.replace(b":62F:C251201EUR14846,94", b":62F:C251201EUR14800,00")
    await upload(h, customer, "dec2.sta", same_day, done["login_id"])
    assert await balance() == "14800.00"
    await upload(h, customer, "nov28.sta", second, done["login_id"])
    assert await balance() == "14800.00"


async def test_dates_kept_by_an_older_version_still_guard_the_balance(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    first, _, third = statements_of(VR)
    done = (await upload(h, customer, "dec.sta", third)).json()["data"]
    engine = h.hub.engine
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            # What an account and its login looked like before accounts kept a balance date.
            login = await session.get(Login, done["login_id"])
            assert login is not None
            account = (await session.execute(select(Account))).scalar_one()
            account.balance_date = None
            engine.keep_state(
                login,
                {"closing_balances": {engine.account_bank_id(account): ["2025-12-01", "14846.94"]}},
            )
    await upload(h, customer, "nov.sta", first, done["login_id"])
    listed = await h.client.get("/v2/account", headers=h.headers(login_secret=done["secret"]))
    assert listed.json()["data"][0]["balance"] == "14846.94"
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            login = await session.get(Login, done["login_id"])
            assert login is not None
            assert "closing_balances" not in engine.state_of(login)
            account = (await session.execute(select(Account))).scalar_one()
            assert account.balance_date == date(2025, 12, 1)
