"""Bank exports downloaded by real users (anonymised by them), copied byte for byte from public
repositories into ``data/real/`` (provenance in its README): each is recognised as its bank's
layout and imported to exact counts, amounts, dates and balances, by the parser and through
``POST /v2/statement`` as partners upload them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.connectors.base import TransactionStatus
from bankhub.statements import csvfiles, parse_statement
from tests.conftest import Harness
from tests.statements.uploads import multipart_headers, new_customer, upload

REAL = Path(__file__).parent / "data" / "real"
README = REAL / "README.md"
D = Decimal


@dataclass(frozen=True)
class Real:
    file: str
    format: str
    count: int
    total: Decimal
    first: tuple[date, Decimal]
    last: tuple[date, Decimal]
    opening: tuple[Decimal, date] | None = None
    closing: tuple[Decimal, date] | None = None
    iban: str | None = None
    currency: str = "EUR"


REAL_EXPORTS = (
    # newest first; the header row ends in a comma, the data rows do not
    Real("lloyds/sample-statement.csv", "csv:lloyds", 12, D("-3881.99"),
         (date(2024, 1, 15), D("-8.99")), (date(2023, 12, 1), D("500")),
         opening=(D("5926.70"), date(2023, 12, 1)), closing=(D("2040.59"), date(2024, 1, 15)),
         currency="GBP"),
    # the current layout: "IBAN Kontoinhaber" and "Kategorie"; two informative rows of 0
    Real("commerzbank/commerzbank.csv", "csv:commerzbank", 7, D("-73.74"),
         (date(2024, 12, 31), D("-10.7")), (date(2025, 8, 7), D("0")),
         iban="DE79500400000123456700"),
    Real("commerzbank/Umsaetze_KtoNr538917600_EUR_02-03-2018_1503.CSV",
         "csv:commerzbank_legacy", 1, D("-17.22"),
         (date(2018, 3, 2), D("-17.22")), (date(2018, 3, 2), D("-17.22")),
         iban="DE44200400000538917600"),
    # newest first; padded to 18 cells by a spreadsheet program, the closing row too
    Real("postbank/postbank.csv", "csv:postbank", 56, D("-33.10"),
         (date(2026, 1, 2), D("-74.8")), (date(2025, 12, 1), D("-69.77")),
         closing=(D("-501.53"), date(2026, 1, 2)), iban="DE89370400440532013000"),
    # as the bank writes it: the closing row has 6 cells, the header 18
    Real("postbank/csv_deutschebank_example_format5_20250414.csv", "csv:postbank", 1, D("-12.9"),
         (date(2025, 3, 1), D("-12.9")), (date(2025, 3, 1), D("-12.9")),
         closing=(D("2110.9"), date(2025, 4, 1)), iban="DE111111111111111111"),
    Real("n26/20171001-20171106.csv", "csv:n26_de", 1, D("-59.99"),
         (date(2017, 10, 1), D("-59.99")), (date(2017, 10, 1), D("-59.99"))),
    Real("n26/n26-fr.csv", "csv:n26_v2", 2, D("0"),
         (date(2020, 3, 7), D("328.00")), (date(2020, 3, 7), D("-328.00"))),
)  # fmt: skip


QIF = "qif/targobank-duesseldorf.qif"
FIRST = (date(2025, 11, 3), D("-5.00"))


@pytest.mark.parametrize("real", REAL_EXPORTS, ids=lambda r: r.file)
def test_a_real_export_is_detected_and_read_exactly(real: Real) -> None:
    data = (REAL / real.file).read_bytes()
    assert csvfiles.sniff(data)
    parsed = parse_statement(data, real.file.rsplit("/", 1)[-1])
    assert parsed.format == real.format
    (account,) = parsed.accounts
    txs = account.transactions
    assert account.currency == real.currency
    assert len(txs) == real.count
    assert sum((t.amount for t in txs), D(0)) == real.total
    assert (txs[0].booking_date, txs[0].amount) == real.first
    assert (txs[-1].booking_date, txs[-1].amount) == real.last
    assert all(t.status == TransactionStatus.BOOKED for t in txs)
    assert (account.opening_balance, account.opening_date) == (real.opening or (None, None))
    assert (account.closing_balance, account.closing_date) == (real.closing or (None, None))
    assert account.iban == real.iban


def test_every_real_export_has_a_provenance_row() -> None:
    readme = README.read_text(encoding="utf-8")
    on_disk = {p.relative_to(REAL).as_posix() for p in REAL.rglob("*") if p.is_file()}
    assert on_disk - {"README.md"} == {r.file for r in REAL_EXPORTS} | {QIF}
    for real in (*REAL_EXPORTS, Real(QIF, "qif", 0, D(0), FIRST, FIRST)):
        assert f"| `{real.file}` |" in readme, f"{real.file} has no provenance row"


def test_lloyds_reads_the_real_rows_cells() -> None:
    (account,) = parse_statement((REAL / "lloyds/sample-statement.csv").read_bytes()).accounts
    fx = account.transactions[2]
    assert fx.description == "OUiog dollaros 202.40 VISAXR 1.16168 CD 1417"  # spaces collapsed
    assert fx.meta == {"kind": "DEB"}
    # the anonymised file's balances do not chain at one row (its amount was changed): the
    # balances are the file's own, never recomputed from the rows
    assert account.opening_balance is not None
    assert account.opening_balance + sum(t.amount for t in account.transactions) == D("2044.71")


def test_commerzbank_keeps_the_category_and_the_informative_rows() -> None:
    data = (REAL / "commerzbank/commerzbank.csv").read_bytes()
    txs = parse_statement(data).accounts[0].transactions
    assert txs[2].description.startswith("1x1 Mail & Media GmbH GMX / WEB.DE")
    assert txs[2].meta == {"kind": "Lastschrift"}
    assert [t.amount for t in txs].count(D(0)) == 2
    assert txs[6].description.startswith("Zum 9.10.25 ändern wir unsere allgemeinen")


def test_n26_layouts_name_the_counterparty() -> None:
    german = parse_statement((REAL / "n26/20171001-20171106.csv").read_bytes()).accounts[0]
    (nintendo,) = german.transactions
    assert (nintendo.counterparty_name, nintendo.description) == ("NINTENDO OF EUROPE",) * 2
    assert nintendo.meta == {
        "kind": "MasterCard Zahlung",
        "bank_category": "Medien & Elektronik",
        "foreign_amount": "-59.99",
        "foreign_currency": "EUR",
        "exchange_rate": "1.0",
    }
    spaces = parse_statement((REAL / "n26/n26-fr.csv").read_bytes()).accounts[0].transactions
    assert spaces[0].counterparty_name == "Compte courant"
    assert spaces[0].counterparty_account == "DE27100110000000000000"
    assert spaces[0].meta == {"kind": "Credit Transfer", "space": "Coffre fort"}


@pytest.mark.parametrize("real", REAL_EXPORTS, ids=lambda r: r.file)
async def test_a_real_export_uploaded_by_a_partner_is_stored_exactly(
    harness: Harness, real: Real
) -> None:
    h = harness
    customer = await new_customer(h)
    name = real.file.rsplit("/", 1)[-1]
    response = await upload(h, customer, name, (REAL / real.file).read_bytes())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    (account,) = data["accounts"]
    assert (account["currency"], account["imported"]) == (real.currency, real.count)
    stated = account["closing_balance"]
    closing = real.closing[0] if real.closing else None
    assert (D(stated) if stated is not None else None) == closing
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=data["secret"]))
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]
    assert len(rows) == real.count
    assert sum((D(t["amount"]) for t in rows), D(0)) == real.total
    days = sorted(t["date"] for t in rows)
    ends = sorted(d.isoformat() for d in (real.first[0], real.last[0]))
    assert [days[0], days[-1]] == ends


def test_a_bank_written_qif_is_read_exactly() -> None:
    parsed = parse_statement((REAL / QIF).read_bytes(), "targobank-duesseldorf.qif", "EUR")
    assert parsed.format == "qif"
    (account,) = parsed.accounts
    txs = account.transactions
    assert (account.currency, len(txs)) == ("EUR", 10)
    assert sum((t.amount for t in txs), D(0)) == D("-611.23")
    assert (txs[0].booking_date, txs[0].amount) == FIRST
    assert (txs[-1].booking_date, txs[-1].amount) == (date(2025, 11, 10), D("83.16"))
    # the record with an empty line before its "^" is one transaction, its payee whole
    visa = txs[5]
    assert visa.amount == D("-357.61")
    assert visa.merchant == "Lastschrift ; TARGOBANK VISA SERVICE ; RG. 12 10 4908299160937721"


async def test_a_bank_written_qif_uploaded_with_its_currency_is_stored(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    response = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer, "currency": "EUR"},
        files={"file": ("targobank.qif", (REAL / QIF).read_bytes(), "application/octet-stream")},
        headers=multipart_headers(h),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [(a["currency"], a["imported"]) for a in data["accounts"]] == [("EUR", 10)]
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=data["secret"]))
    assert sum((D(t["amount"]) for t in listed.json()["data"]), D(0)) == D("-611.23")


def test_postbank_names_the_account_from_the_rows_above_the_header() -> None:
    (account,) = parse_statement((REAL / "postbank/postbank.csv").read_bytes()).accounts
    assert account.name == "Postbank Giro direkt"
    # the closing row is the file's last balance; the rows lead to it from "Letzter Kontostand"
    assert D("-468.43") + sum(t.amount for t in account.transactions) == D("-501.53")
    first = account.transactions[0]
    assert first.counterparty_name == "Mecklenburgische Versicherungs-Gese llschaft aG"
    assert first.counterparty_account == "DE50250500000101412112"
    assert first.meta is not None
    assert first.meta["kind"] == "SEPA Lastschrift"
