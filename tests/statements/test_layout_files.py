"""bankhub's own files in ``data/profiles/checked/``, each reproducing the layout a real anonymised
export showed (header cells, preamble and footer rows, delimiter, quoting, encoding, line endings,
date and number forms, quirks) with invented rows: each is recognised as its bank's layout and
imported to exact counts, amounts, dates and balances, by the parser and through
``POST /v2/statement`` as partners upload them. Where each layout was seen is in the folder's
README; the repository keeps no third-party file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.connectors.base import TransactionStatus
from bankhub.statements import csvfiles, parse_statement
from tests.conftest import Harness
from tests.statements.uploads import multipart_headers, new_customer, upload

PROFILES = Path(__file__).parent / "data" / "profiles"
CHECKED = PROFILES / "checked"
README = PROFILES / "README.md"
D = Decimal
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Layout:
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


LAYOUT_FILES = (
    # newest first; the header row ends in a comma, the data rows do not
    Layout("lloyds.csv", "csv:lloyds", 9, D("1629.98"),
           (date(2024, 3, 12), D("-18.74")), (date(2024, 3, 1), D("1850")),
           opening=(D("612.35"), date(2024, 3, 1)), closing=(D("2242.33"), date(2024, 3, 12)),
           currency="GBP"),
    # the current layout: "IBAN Kontoinhaber" and "Kategorie"; two informative rows of 0
    Layout("commerzbank.csv", "csv:commerzbank", 7, D("1785.91"),
           (date(2024, 9, 30), D("-7.5")), (date(2024, 12, 2), D("0")),
           iban="DE13200400000612345800"),
    # the 2018 layout: the account's number, bank code and IBAN on every row
    Layout("Umsaetze_KtoNr471102300_EUR_14-03-2018_0932.CSV", "csv:commerzbank_legacy", 3,
           D("7.75"), (date(2018, 3, 5), D("-4.85")), (date(2018, 3, 12), D("25")),
           iban="DE67250400660471102300"),
    # newest first; padded to 18 cells by a spreadsheet program, the closing row too
    Layout("postbank.csv", "csv:postbank", 10, D("1548.53"),
           (date(2025, 12, 1), D("-5.7")), (date(2025, 11, 3), D("1860")),
           closing=(D("1236.08"), date(2025, 12, 1)), iban="DE87100100100883401751"),
    # as the bank writes it: the closing row has 6 cells, the header 18
    Layout("postbank-business.csv", "csv:postbank", 3, D("543.8"),
           (date(2025, 6, 30), D("-9.9")), (date(2025, 6, 2), D("-86.3")),
           closing=(D("3962.05"), date(2025, 6, 30)), iban="DE83100100100554190322"),
    Layout("20180401-20180430.csv", "csv:n26_de", 3, D("-39.41"),
           (date(2018, 4, 3), D("-7.80")), (date(2018, 4, 21), D("-11.62"))),
    Layout("n26-fr.csv", "csv:n26_v2", 4, D("-17.50"),
           (date(2021, 5, 3), D("150.00")), (date(2021, 5, 20), D("-60.00"))),
)  # fmt: skip


QIF = "targobank.qif"
FIRST = (date(2025, 12, 1), D("-12.00"))

# what each file reproduces byte for byte: byte order mark, line ending, encoding
BYTES = {
    "lloyds.csv": (False, b"\n", "ascii"),
    "commerzbank.csv": (True, b"\r\n", "utf-8"),
    "Umsaetze_KtoNr471102300_EUR_14-03-2018_0932.CSV": (False, b"\n", "utf-8"),
    "postbank.csv": (True, b"\r\n", "utf-8"),
    "postbank-business.csv": (True, b"\n", "utf-8"),
    "20180401-20180430.csv": (False, b"\n", "utf-8"),
    "n26-fr.csv": (False, b"\n", "utf-8"),
    QIF: (False, b"\r\n", "utf-8"),
}


def lines(file: str) -> list[str]:
    data = (CHECKED / file).read_bytes()
    bom, newline, encoding = BYTES[file]
    assert data.startswith(BOM) == bom
    assert data.endswith(newline)
    if newline == b"\n":
        assert b"\r" not in data
    else:
        assert data.count(b"\n") == data.count(b"\r\n")
    return data.removeprefix(BOM).decode(encoding).split(newline.decode())[:-1]


def iban_is_valid(iban: str) -> bool:
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    return int(digits) % 97 == 1


@pytest.mark.parametrize("layout", LAYOUT_FILES, ids=lambda r: r.file)
def test_a_layout_file_is_detected_and_read_exactly(layout: Layout) -> None:
    data = (CHECKED / layout.file).read_bytes()
    assert csvfiles.sniff(data)
    parsed = parse_statement(data, layout.file)
    assert parsed.format == layout.format
    (account,) = parsed.accounts
    txs = account.transactions
    assert account.currency == layout.currency
    assert len(txs) == layout.count
    assert sum((t.amount for t in txs), D(0)) == layout.total
    assert (txs[0].booking_date, txs[0].amount) == layout.first
    assert (txs[-1].booking_date, txs[-1].amount) == layout.last
    assert all(t.status == TransactionStatus.BOOKED for t in txs)
    assert (account.opening_balance, account.opening_date) == (layout.opening or (None, None))
    assert (account.closing_balance, account.closing_date) == (layout.closing or (None, None))
    assert account.iban == layout.iban


def test_every_layout_file_has_a_provenance_row() -> None:
    readme = README.read_text(encoding="utf-8")
    on_disk = {p.name for p in CHECKED.iterdir() if p.is_file()}
    assert on_disk == {r.file for r in LAYOUT_FILES} | {QIF} == set(BYTES)
    for name in on_disk:
        assert f"`checked/{name}`" in readme, f"{name} has no provenance row"


def test_the_files_keep_the_exports_bytes_and_valid_ibans() -> None:
    for file in BYTES:
        text = "\n".join(lines(file))
        for iban in re.findall(r"\bDE\d{20}\b", text):
            assert iban_is_valid(iban), f"{file}: {iban}"


def test_lloyds_header_ends_in_a_comma_and_its_rows_do_not() -> None:
    header, *rows = lines("lloyds.csv")
    assert header.endswith("Balance,")
    assert header.count(",") == 8
    assert all(row.count(",") == 7 and row[-1] != "," for row in rows)
    assert all(",'30-94-57," in row for row in rows)  # the sort code as Lloyds writes it
    assert [row.split(",")[6] for row in rows if row.split(",")[6]] == ["35", "1850"]


def test_lloyds_reads_the_rows_cells() -> None:
    (account,) = parse_statement((CHECKED / "lloyds.csv").read_bytes()).accounts
    fx = account.transactions[4]
    assert fx.description == "CAFE LUMIERE EUROS 23.60 VISAXR 1.1642 CD 2291"  # spaces collapsed
    assert fx.meta == {"kind": "DEB"}
    # the balances are the file's own: the oldest row's less its amount opens, the newest closes
    assert account.opening_balance is not None
    assert account.opening_balance + sum(t.amount for t in account.transactions) == D("2242.33")


def test_commerzbank_keeps_the_category_and_the_informative_rows() -> None:
    header = lines("commerzbank.csv")[0]
    assert header.endswith(";IBAN Kontoinhaber;Kategorie")
    data = (CHECKED / "commerzbank.csv").read_bytes()
    txs = parse_statement(data).accounts[0].transactions
    assert txs[2].description.startswith("Nordwind Mobilfunk GmbH Kundennr. 40817733")
    assert txs[2].meta == {"kind": "Lastschrift"}  # "Kategorie" is empty, as the bank left it
    assert [t.amount for t in txs].count(D(0)) == 2
    assert txs[1].description.startswith("Rechnungsabschluss Konto 612345800 EUR")
    assert txs[6].description.startswith("Ab dem 1.2.25 ändern sich unsere Preise")


def test_commerzbank_2018_quotes_the_booking_text_only() -> None:
    header, *rows = lines("Umsaetze_KtoNr471102300_EUR_14-03-2018_0932.CSV")
    assert header.endswith(
        ";Auftraggeberkonto;Bankleitzahl Auftraggeberkonto;IBAN Auftraggeberkonto"
    )
    assert all(row.count('"') == 2 and row.split(";")[3].startswith('"') for row in rows)
    data = (CHECKED / "Umsaetze_KtoNr471102300_EUR_14-03-2018_0932.CSV").read_bytes()
    card = parse_statement(data).accounts[0].transactions[0]
    assert card.description.startswith("Kartenzahlung BAECKEREI KORNFELD 60712245//Hannover")
    assert card.meta == {"kind": "Lastschrift"}


def test_n26_layouts_name_the_counterparty() -> None:
    german = parse_statement((CHECKED / "20180401-20180430.csv").read_bytes()).accounts[0]
    kiosk, _, ferry = german.transactions
    assert (kiosk.counterparty_name, kiosk.description) == ("KIOSK AM HAFEN",) * 2
    assert kiosk.meta == {
        "kind": "MasterCard Zahlung",
        "bank_category": "Bars & Restaurants",
        "foreign_amount": "-7.80",
        "foreign_currency": "EUR",
        "exchange_rate": "1.0",
    }
    assert ferry.meta is not None
    assert (ferry.meta["foreign_amount"], ferry.meta["foreign_currency"]) == ("-14.25", "USD")
    header = lines("n26-fr.csv")[0]
    assert header.split(",")[4] == "Type"  # every header cell is quoted but this one
    assert all(c.startswith('"') for i, c in enumerate(header.split(",")) if i != 4)
    spaces = parse_statement((CHECKED / "n26-fr.csv").read_bytes()).accounts[0].transactions
    assert spaces[0].counterparty_name == "Compte courant"
    assert spaces[0].counterparty_account == "DE16100110012126734517"
    assert spaces[0].meta == {"kind": "Credit Transfer", "space": "Vacances"}
    assert spaces[2].description == "Remboursement resto"
    assert spaces[2].counterparty_name == "Lea Fontaine"


@pytest.mark.parametrize("layout", LAYOUT_FILES, ids=lambda r: r.file)
async def test_a_layout_file_uploaded_by_a_partner_is_stored_exactly(
    harness: Harness, layout: Layout
) -> None:
    h = harness
    customer = await new_customer(h)
    response = await upload(h, customer, layout.file, (CHECKED / layout.file).read_bytes())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    (account,) = data["accounts"]
    assert (account["currency"], account["imported"]) == (layout.currency, layout.count)
    stated = account["closing_balance"]
    closing = layout.closing[0] if layout.closing else None
    assert (D(stated) if stated is not None else None) == closing
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=data["secret"]))
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]
    assert len(rows) == layout.count
    assert sum((D(t["amount"]) for t in rows), D(0)) == layout.total
    days = sorted(t["date"] for t in rows)
    ends = sorted(d.isoformat() for d in (layout.first[0], layout.last[0]))
    assert [days[0], days[-1]] == ends


def test_a_bank_written_qif_is_read_exactly() -> None:
    parsed = parse_statement((CHECKED / QIF).read_bytes(), QIF, "EUR")
    assert parsed.format == "qif"
    (account,) = parsed.accounts
    txs = account.transactions
    assert (account.currency, len(txs)) == ("EUR", 8)
    assert sum((t.amount for t in txs), D(0)) == D("898.08")
    assert (txs[0].booking_date, txs[0].amount) == FIRST
    assert (txs[-1].booking_date, txs[-1].amount) == (date(2025, 12, 8), D("-3.50"))
    # the record with an empty line before its "^" is one transaction, its payee whole
    visa = txs[3]
    assert visa.amount == D("-214.08")
    assert visa.merchant == "Lastschrift ; TARGOBANK VISA SERVICE ; RG. 12 02 4539120000118840"
    assert "" in lines(QIF)
    assert {line[0] for line in lines(QIF) if line} == {"!", "D", "T", "P", "^"}


async def test_a_bank_written_qif_uploaded_with_its_currency_is_stored(harness: Harness) -> None:
    h = harness
    customer = await new_customer(h)
    response = await h.client.post(
        "/v2/statement",
        data={"customer_id": customer, "currency": "EUR"},
        files={"file": (QIF, (CHECKED / QIF).read_bytes(), "application/octet-stream")},
        headers=multipart_headers(h),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [(a["currency"], a["imported"]) for a in data["accounts"]] == [("EUR", 8)]
    listed = await h.client.get("/v2/transaction", headers=h.headers(login_secret=data["secret"]))
    assert sum((D(t["amount"]) for t in listed.json()["data"]), D(0)) == D("898.08")


def test_postbank_names_the_account_from_the_rows_above_the_header() -> None:
    padded = lines("postbank.csv")
    assert all(row.count(";") == 17 for row in padded)  # every row, the closing one too
    assert padded[-1].startswith("Kontostand;1.12.2025;;;1236,08;EUR;")
    assert "6,40917733520184E+025" in padded[-4]  # a reference turned into a number
    (account,) = parse_statement((CHECKED / "postbank.csv").read_bytes()).accounts
    assert account.name == "Postbank Giro direkt"
    # the closing row is the file's last balance; the rows lead to it from "Letzter Kontostand"
    assert D("-312.45") + sum(t.amount for t in account.transactions) == D("1236.08")
    debit = account.transactions[1]
    assert debit.counterparty_name == "Streamora Media Services Europe S. a r.l."
    assert debit.counterparty_account == "DE08250501800000317729"
    assert debit.meta is not None
    assert debit.meta["kind"] == "SEPA Lastschrift"
    assert debit.meta["mandate_reference"] == "STM-5577120"
    written = lines("postbank-business.csv")
    assert written[-1] == "Kontostand;30.6.2025;;;3.962,05;EUR"  # 6 cells against the header's 18
    assert written[5] == "Letzter Kontostand;;;;3.418,25;EUR"
    (business,) = parse_statement((CHECKED / "postbank-business.csv").read_bytes()).accounts
    assert business.name == "Postbank Business Giro"
    assert D("3418.25") + sum(t.amount for t in business.transactions) == D("3962.05")
