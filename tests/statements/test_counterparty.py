"""The other party of each booking, read from every format, returned in meta, used to categorize."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bankhub.accounts import details
from bankhub.accounts.models import Transaction
from bankhub.connectors.base import AuthFlow, ConnectorInfo, TransactionRecord
from bankhub.db import tenancy
from bankhub.logins.services import add_login
from bankhub.partners.models import App
from bankhub.statements import parse_statement
from bankhub.statements.csvfiles import CsvMapping, parse_with_mapping
from bankhub.sync.counterparty import account_shown, is_card_number
from tests.conftest import Harness
from tests.statements.corpus import read
from tests.statements.uploads import new_customer, upload
from tests.support.banks import ScriptedBank, service_for

#: a Visa test number (Luhn-valid), as a card statement or a transfer to a card writes it
PAN = "4111111111111111"
DATA = Path(__file__).resolve().parent / "data"


def parties(name: str, data: bytes | None = None) -> list[tuple[str | None, str | None]]:
    parsed = parse_statement(data if data is not None else read(name), name)
    return [
        (t.counterparty_name, t.counterparty_account)
        for account in parsed.accounts
        for t in account.transactions
    ]


# --- reading -------------------------------------------------------------------------------------


def test_camt_related_parties() -> None:
    assert parties("camt/test-camt053") == [
        ("INSURANCE COMPANY TESTX", "NL46ABNA0499998748"),  # only the creditor is named
        ("Test Customer", "NL46ABNA0499998748"),  # a debit: the creditor
        ("3rd party Media", "NL69ABNA0522123643"),  # a credit: the debtor
    ]


def test_camt_other_account_id_is_the_account_but_not_an_iban() -> None:
    data = read("camt/test-camt053").replace(
        b"<IBAN>NL69ABNA0522123643</IBAN>", b"<Othr><Id>" + PAN.encode() + b"</Id></Othr>"
    )
    parsed = parse_statement(data, "camt053.xml")
    credit = parsed.accounts[0].transactions[2]
    assert credit.counterparty_account == PAN
    assert credit.meta is not None
    assert "counterparty_iban" not in credit.meta  # meta's IBAN key holds IBANs only


def test_ofx_payee_and_the_account_of_a_transfer() -> None:
    data = read("ofx/checking.ofx")
    to_account = b"<BANKACCTTO><BANKID>121000248<ACCTID>987654321<ACCTTYPE>SAVINGS</BANKACCTTO>"
    to_card = b"<CCACCTTO><ACCTID>" + PAN.encode() + b"</CCACCTTO>"
    data = data.replace(b"<FITID>0000487", b"<FITID>0000487" + to_account)
    data = data.replace(b"<FITID>0000488", b"<FITID>0000488" + to_card)
    assert parties("checking.ofx", data) == [
        ("DIVIDEND EARNED FOR PERIOD OF 03", None),
        ("AUTOMATIC WITHDRAWAL, ELECTRIC BILL", "987654321"),
        ("RETURNED CHECK FEE, CHECK # 319", PAN),
    ]


def test_mt940_structured_purpose() -> None:
    found = parties("mt940/vr-teilhaberbank.mta")
    assert found[0] == ("PayPal Europe S.a.r.l. et Cie S.C.A", "LU89751000135104200E")  # ?32?33 ?31
    assert found[1] == (None, None)  # the bank's own closing charge names nobody
    assert found[4] == ("Max Mustermann", "DE89370400440532013000")


@pytest.mark.parametrize(
    ("name", "index", "expected"),
    [
        # ASN Bank: the account, then the name, on the first line of :86:
        ("mt940/ASNB/mt940.txt", 0, ("hr gjlm paulissen", "NL47INGB9999999999")),
        ("mt940/ASNB/mt940.txt", 3, (None, None)),  # "Kosten gebruik betaalrekening ..."
        # ING (old Dutch format): the account number; the name only on a line of its own
        ("mt940/jejik/ing.sta", 6, ("Hr S Marechal", "0111111111")),
        ("mt940/jejik/ing.sta", 1, (None, "0111111111")),
        # PostFinance: "AUFTRAGGEBER:" name, street and town
        ("mt940/jejik/postfinance.sta", 0, ("JANE DOE", None)),
        ("mt940/jejik/postfinance.sta", 2, ("XXXXXXXXX XXX", None)),  # across a hard wrap
        # mBank: "Z RACH.:" account, "OD:" name on its line, the address after it
        ("mt940/mBank/mt940.sta", 0, ("JAN NOWAK", "56114010810000267002001001")),
        # Citi: no name is given apart from the text
        ("mt940/citi/mt940.txt", 0, (None, None)),
    ],
)
def test_mt940_free_text_forms_of_the_corpus(
    name: str, index: int, expected: tuple[str | None, str | None]
) -> None:
    assert parties(name)[index] == expected


def test_mt940_keyed_dutch_form() -> None:
    keyed = (
        b":86:/TRTP/SEPA OVERBOEKING/IBAN/NL44RABO0123456789/BIC/RABONL2U/NAME/INSURANCE COMPAN\n"
        b"Y TESTX/REMI/TESTREMI/EREF/NOTPROVIDED\n"
    )
    data = read("mt940/ASNB/mt940.txt").replace(
        b":86:NL47INGB9999999999 hr gjlm paulissen\n", keyed
    )
    assert parties("asn.txt", data)[0] == ("INSURANCE COMPANY TESTX", "NL44RABO0123456789")
    ing = b":86:/CNTP/NL66ABNA0123456789/ABNANL2A/J. Janssen/Utrecht/\n"
    data = read("mt940/ASNB/mt940.txt").replace(b":86:NL47INGB9999999999 hr gjlm paulissen\n", ing)
    assert parties("asn.txt", data)[0] == ("J. Janssen", "NL66ABNA0123456789")


def test_csv_profiles_and_a_mapping() -> None:
    dkb = parties("csv/dkb.csv")
    assert dkb[0] == ("Max Mustermann", "DE89370400440532013000")  # a credit: the payer
    assert dkb[1] == ("Firma", "DE89370400440532013000")  # a debit: the payee
    assert parties("csv/sparkasse-lzo-camt-v8.csv")[0] == (
        "Online-Shop GmbH",
        "DE89370400440532013001",
    )
    assert parties("csv/ing.csv")[1] == ("Gerhard Zintel", None)  # ING gives no account
    assert parties("csv/paypal.csv")[1] == ("Deutsche Post AG", None)
    mapped = parse_with_mapping(
        b"Datum;Betrag;Name;Konto;Zweck\n01.12.2025;-9,99;Netflix;" + PAN.encode() + b";Abo\n",
        CsvMapping(
            date_column="Datum",
            amount_column="Betrag",
            currency="EUR",
            merchant_column="Name",
            counterparty_account_column="Konto",
            description_columns=("Zweck",),
            iban="DE89370400440532013000",
        ),
    )
    row = mapped.accounts[0].transactions[0]
    assert (row.counterparty_name, row.counterparty_account) == ("Netflix", PAN)


# --- how an account is shown ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        (PAN, "•••• 1111"),
        ("4111 1111 1111 1111", "•••• 1111"),
        ("5500-0000-0000-0004", "•••• 0004"),
        ("de89 3704 0044 0532 0130 00", "DE89370400440532013000"),
        ("4111111111111112", "4111111111111112"),  # not Luhn-valid: an account number
        ("56114010810000267002001001", "56114010810000267002001001"),  # 26 digits
        ("0111111111", "0111111111"),
        ("  ", None),
    ],
)
def test_card_numbers_are_masked_and_ibans_compacted(written: str, shown: str | None) -> None:
    assert account_shown(written) == shown
    assert is_card_number(written) == (shown is not None and shown.startswith("••••"))


# --- through the API ----------------------------------------------------------------------------


async def test_meta_returns_the_counterparty_with_a_card_number_masked(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    to_card = b"<CCACCTTO><ACCTID>" + PAN.encode() + b"</CCACCTTO>"
    data = read("ofx/checking.ofx").replace(b"<FITID>0000488", b"<FITID>0000488" + to_card)
    done = (await upload(h, customer, "checking.ofx", data)).json()["data"]
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=done["secret"]))
    by_id = {t["original_id"]: t["meta"] for t in listed.json()["data"]}
    assert by_id["0000488"]["counterparty_name"] == "RETURNED CHECK FEE, CHECK # 319"
    assert by_id["0000488"]["counterparty_account"] == "•••• 1111"
    assert "counterparty_account" not in by_id["0000487"]
    with tenancy.everything():
        async with h.hub.db.transaction() as session:
            rows = (await session.execute(select(Transaction))).scalars().all()
            stored = [str(details.opened(h.hub.engine.box, row)) for row in rows]
    assert len(stored) == len(by_id)
    assert not any(PAN in m for m in stored)  # the card number is stored nowhere


async def test_camt_and_mt940_counterparties_reach_the_api(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    for name in ("camt/test-camt053", "mt940/mBank/mt940.sta"):
        done = (await upload(h, customer, name.rsplit("/", 1)[-1], read(name))).json()["data"]
        listed = await h.client.get(
            "/v2/transaction", headers=h.headers(login_secret=done["secret"])
        )
        metas = [t["meta"] for t in listed.json()["data"]]
        assert all(m["counterparty_name"] and m["counterparty_account"] for m in metas), name
    assert {"counterparty_name": "JAN NOWAK"}.items() <= metas[0].items()


async def test_a_transfer_to_an_own_account_is_categorized_as_one(harness: Harness) -> None:
    h = harness
    year_end = (DATA / "year-end.sta").read_bytes()

    async def categories(customer: str) -> dict[str, str]:
        done = (await upload(h, customer, "year-end.sta", year_end)).json()["data"]
        listed = await h.client.get(
            "/v2/transaction", headers=h.headers(login_secret=done["secret"])
        )
        return {t["description"][:14]: t["category"] for t in listed.json()["data"]}

    # The statement's 500.00 goes to DE89370400440532013000, "Eigene Festgeldanlage".
    stranger = await categories(await new_customer(h, "without-that-account"))
    assert stranger["Festgeld 6 Mon"] == "uncategorized"
    owner = await new_customer(h, "with-that-account")
    ing = (await upload(h, owner, "ing.csv", read("csv/ing.csv"))).json()["data"]
    assert ing["accounts"][0]["number_masked"] == "•••• 3000"  # DE89370400440532013000
    mine = await categories(owner)
    assert mine["Festgeld 6 Mon"] == "transfer"
    assert mine["Abschlag Strom"] == stranger["Abschlag Strom"]  # other bookings unchanged


class NamingBank(ScriptedBank):
    """A bank that names the other party apart from the booking text."""

    info = ConnectorInfo("naming", "1", (), (AuthFlow.CREDENTIALS,))
    transactions = (
        TransactionRecord(
            "t1",
            date(2025, 3, 3),
            Decimal("-12.99"),
            "EUR",
            "Rechnung 4711-2025-03",
            counterparty_name="Netflix International B.V.",
            counterparty_account="NL22 INGB 0123 4567 89",
        ),
    )


async def test_every_sync_stores_and_categorizes_the_counterparty(harness: Harness) -> None:
    h = harness
    h.hub.registry.register("naming", NamingBank)
    engine = h.hub.engine
    customer = await new_customer(h, "named")
    async with h.hub.db.transaction() as session:
        app = (
            await session.execute(select(App).where(App.client_id == h.creds["client_id"]))
        ).scalar_one()
        login, _ = add_login(
            session, engine.hasher, h.hub.clock(), app_id=app.id, customer_id=customer, service_id=1
        )
        await session.flush()
        run = engine.build(service_for("naming"))
        await engine.apply(session, login, await engine.fetch(run, None))
        row = (await session.execute(select(Transaction))).scalar_one()
    assert row.category == "entertainment"  # from the name alone: the text says nothing
    assert details.opened(engine.box, row).meta == {
        "counterparty_name": "Netflix International B.V.",
        "counterparty_account": "NL22INGB0123456789",
    }
