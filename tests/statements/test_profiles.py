"""Bank export profiles as data: each profile read from its export file to exact counts, amounts
and balances; the schema refuses a broken profile; a file no profile fits names the closest."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.connectors.base import AccountType, TransactionStatus
from bankhub.statements import csvfiles, parse_statement, profiles, qif, xlsx
from bankhub.statements.model import StatementError
from tests.statements.test_layout_files import LAYOUT_FILES

DATA = Path(__file__).parent / "data" / "profiles"
README = DATA / "README.md"
D = Decimal


@dataclass(frozen=True)
class Expected:
    file: str
    format: str
    currency: str
    count: int
    total: Decimal
    first: tuple[date, Decimal]
    last: tuple[date, Decimal]
    opening: tuple[Decimal, date] | None = None
    closing: tuple[Decimal, date] | None = None
    pending: int = 0
    iban: str | None = None
    name: str | None = None


EXPECTED = (
    Expected("deutsche_bank.csv", "csv:deutsche_bank", "EUR", 5, D("2468.74"),
             (date(2025, 3, 31), D("2940.00")), (date(2025, 3, 3), D("-39.99")),
             closing=(D("4949.29"), date(2025, 3, 31))),
    Expected("n26.csv", "csv:n26", "EUR", 4, D("2400.67"),
             (date(2025, 2, 1), D("2450.00")), (date(2025, 2, 10), D("-32.50"))),
    Expected("lloyds.csv", "csv:lloyds", "GBP", 5, D("1230.55"),
             (date(2025, 3, 28), D("-38.20")), (date(2025, 3, 20), D("-850.00")),
             opening=(D("503.98"), date(2025, 3, 20)), closing=(D("1734.53"), date(2025, 3, 28))),
    Expected("barclays.csv", "csv:barclays", "GBP", 5, D("1527.06"),
             (date(2025, 2, 3), D("-45.60")), (date(2025, 2, 7), D("-4.35"))),
    Expected("monzo.csv", "csv:monzo", "GBP", 4, D("2037.47"),
             (date(2025, 4, 1), D("2100.00")), (date(2025, 4, 5), D("-41.88"))),
    Expected("starling.csv", "csv:starling", "GBP", 4, D("1076.36"),
             (date(2025, 5, 2), D("2300.00")), (date(2025, 5, 9), D("-96.00")),
             opening=(D("1200.00"), date(2025, 5, 2)), closing=(D("2276.36"), date(2025, 5, 9))),
    Expected("nationwide.csv", "csv:nationwide", "GBP", 5, D("1308.25"),
             (date(2025, 1, 2), D("2150.00")), (date(2025, 1, 10), D("-18.50")),
             opening=(D("110.50"), date(2025, 1, 2)), closing=(D("1418.75"), date(2025, 1, 10)),
             name="FlexDirect ****12345"),
    Expected("chase.csv", "csv:chase", "USD", 5, D("1672.83"),
             (date(2025, 3, 14), D("-82.17")), (date(2025, 3, 3), D("-500.00")),
             opening=(D("1634.73"), date(2025, 3, 3)), closing=(D("3307.56"), date(2025, 3, 14))),
    Expected("bank_of_america.csv", "csv:bank_of_america", "USD", 5, D("1912.57"),
             (date(2025, 2, 3), D("3100.00")), (date(2025, 2, 28), D("-960.00")),
             opening=(D("1520.00"), date(2025, 2, 3)), closing=(D("3432.57"), date(2025, 2, 28))),
    Expected("wells_fargo.csv", "csv:wells_fargo", "USD", 4, D("1467.46"),
             (date(2025, 1, 31), D("-14.99")), (date(2025, 1, 15), D("-57.80"))),
    Expected("capital_one.csv", "csv:capital_one", "USD", 4, D("1417.25"),
             (date(2025, 1, 2), D("1500.00")), (date(2025, 1, 15), D("0.42")),
             opening=(D("1350.40"), date(2025, 1, 2)), closing=(D("2767.65"), date(2025, 1, 15))),
    Expected("citi.csv", "csv:citi", "USD", 4, D("-158.04"),
             (date(2025, 4, 2), D("-412.30")), (date(2025, 4, 12), D("-38.99")), pending=1),
    Expected("vietcombank.xlsx", "xlsx:vietcombank", "VND", 5, D("10654000"),
             (date(2025, 1, 2), D("15000000")), (date(2025, 1, 10), D("-11000"))),
)  # fmt: skip


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: e.file)
def test_profile_reads_its_export_exactly(expected: Expected) -> None:
    parsed = parse_statement((DATA / expected.file).read_bytes(), expected.file)
    assert parsed.format == expected.format
    (account,) = parsed.accounts
    txs = account.transactions
    assert account.currency == expected.currency
    assert len(txs) == expected.count
    assert sum((t.amount for t in txs), D(0)) == expected.total
    assert (txs[0].booking_date, txs[0].amount) == expected.first
    assert (txs[-1].booking_date, txs[-1].amount) == expected.last
    opening = (account.opening_balance, account.opening_date)
    closing = (account.closing_balance, account.closing_date)
    assert opening == (expected.opening or (None, None))
    assert closing == (expected.closing or (None, None))
    assert sum(t.status == TransactionStatus.PENDING for t in txs) == expected.pending
    assert account.iban == expected.iban
    if expected.name:
        assert account.name == expected.name
    if expected.opening and expected.closing:
        booked = sum((t.amount for t in txs if t.status == TransactionStatus.BOOKED), D(0))
        assert expected.opening[0] + booked == expected.closing[0]


def test_every_profile_has_an_export_file_and_a_provenance_row() -> None:
    readme = README.read_text(encoding="utf-8")
    tested = {e.format.split(":")[1] for e in (*EXPECTED, *LAYOUT_FILES)}
    tested |= {"dkb", "ing", "sparkasse", "paypal"}
    for profile in csvfiles.PROFILES:
        assert profile.id in tested, f"profile {profile.id} has no export file in the tests"
        assert f"| {profile.id} |" in readme, f"profile {profile.id} has no provenance row"


def test_counterparty_and_sign_columns() -> None:
    deutsche = parse_statement((DATA / "deutsche_bank.csv").read_bytes()).accounts[0]
    assert deutsche.holder_name == "Erika Beispiel"
    assert deutsche.transactions[1].counterparty_name == "Techniker Krankenkasse"
    assert deutsche.transactions[1].counterparty_account == "DE02100500000024290661"
    capital = parse_statement((DATA / "capital_one.csv").read_bytes()).accounts[0]
    assert [t.amount for t in capital.transactions] == [D("1500.00"), D("-60.00"),
                                                        D("-23.17"), D("0.42")]  # fmt: skip
    monzo = parse_statement((DATA / "monzo.csv").read_bytes()).accounts[0]
    assert monzo.transactions[0].bank_id == "tx_0000AbCdEf0001"
    assert monzo.transactions[2].description == "UBER *TRIP HELP.UBER.COM - #work"


def test_an_unknown_indicator_value_names_the_line() -> None:
    data = (DATA / "capital_one.csv").read_bytes().replace(b",Debit,Withdrawal", b",Dr,Withdrawal")
    with pytest.raises(StatementError, match=r"line 3: 'Transaction Type' 'Dr' is not one of"):
        csvfiles.parse(data)


def test_no_profile_names_the_closest_and_what_it_misses() -> None:
    # Lloyds' layout with a column renamed by a spreadsheet program
    data = (DATA / "lloyds.csv").read_bytes().replace(b"Debit Amount", b"Debit")
    assert not csvfiles.sniff(data)
    with pytest.raises(StatementError) as caught:
        parse_statement(data, "export.csv")
    message = caught.value.message
    assert "the closest is 'lloyds' (Lloyds Bank: 7 of 8 header cells" in message
    assert "missing 'Debit Amount'" in message
    assert "column mapping" in message


def test_a_file_that_is_no_table_gets_the_format_list() -> None:
    with pytest.raises(StatementError, match="is not OFX/QFX"):
        parse_statement(b"hello\nworld\n")


def test_headerless_layout_is_claimed_only_when_every_row_fits() -> None:
    data = (DATA / "wells_fargo.csv").read_bytes()
    assert csvfiles.sniff(data)
    assert not csvfiles.sniff(data.replace(b'"*"', b'"x"', 1))


def test_the_most_specific_header_wins() -> None:
    # a Lloyds file carries every cell of a shorter layout's header too; adding a profile that
    # names fewer of the same cells must not take Lloyds' files
    shorter = profiles.to_profile(
        profiles.ProfileSpec(id="short", bank="x", country="GB", date="Transaction Date",
                             header=["Transaction Date", "Balance"], amount="Balance",
                             fixed_currency="GBP", delimiter=",", decimal=".", thousands=",")
    )  # fmt: skip
    data = (DATA / "lloyds.csv").read_bytes()
    original = csvfiles.PROFILES
    try:
        csvfiles.PROFILES = (shorter, *original)
        assert csvfiles.parse(data).format == "csv:lloyds"
    finally:
        csvfiles.PROFILES = original


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: [D, A]\namount: A\n", "currency"),
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: [D, A]\namount: A\n"
         "fixed_currency: EUR\ncolour: red\n", "unknown field `colour`"),
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: [D, A]\namount: A\ndebit: A\n"
         "fixed_currency: EUR\n", "exactly one of amount"),
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: [D, A]\namount: A\n"
         "fixed_currency: EUR\ndate_format: '%Y-%j'\n", "directives"),
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: [D, A]\namount: A\n"
         "fixed_currency: EUR\nindicator: A\n", "debit_values"),
        ("id: bad\nbank: B\ncountry: DE\ndate: 0\nrow_match: ['x']\namount: Betrag\n"
         "fixed_currency: EUR\n", "by position"),
        ("id: bad\nbank: B\ncountry: DE\ndate: D\nheader: D\namount: A\nfixed_currency: EUR\n",
         "Expected `array`"),
        ("id: other\nbank: B\ncountry: DE\ndate: D\nheader: [D]\namount: A\n"
         "fixed_currency: EUR\n", "not the file's name"),
    ],
)  # fmt: skip
def test_a_broken_profile_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(profiles.ProfileError, match=message) as caught:
        profiles.load(path)
    assert "bad" in str(caught.value)


def test_the_shipped_profiles_load() -> None:
    loaded = profiles.load_all()
    assert {p.country for p in loaded} >= {"DE", "GB", "US", "VN"}
    assert [p.id for p in loaded] == sorted(p.id for p in loaded)


# --- QIF ------------------------------------------------------------------------------------------


def test_qif_reads_quicken_dates_payees_and_splits() -> None:
    parsed = parse_statement((DATA / "quicken.qif").read_bytes(), "quicken.qif", "USD")
    assert parsed.format == "qif"
    (account,) = parsed.accounts
    assert (account.currency, account.type) == ("USD", AccountType.CURRENT)
    txs = account.transactions
    assert [(t.booking_date, t.amount) for t in txs] == [
        (date(2025, 1, 3), D("-42.17")),
        (date(2025, 1, 5), D("2350.00")),
        (date(2025, 1, 14), D("-1200.00")),
        (date(2025, 1, 20), D("-65.40")),  # a split transaction stays one
    ]
    assert txs[0].merchant == "SAFEWAY #1234"
    assert txs[0].description == "Groceries"
    assert txs[2].meta == {"reference": "1043", "qif_category": "Housing:Rent"}


def test_qif_reads_day_first_and_decimal_comma() -> None:
    data = "!Type:CCard\nD13.02.2025\nT-1.018,90\nPApotheke am Markt\n^\nD03.02.2025\nT25,00\n^\n"
    (account,) = qif.parse(data.encode(), "EUR").accounts
    assert account.type == AccountType.CREDIT_CARD
    assert [(t.booking_date, t.amount) for t in account.transactions] == [
        (date(2025, 2, 13), D("-1018.90")),
        (date(2025, 2, 3), D("25.00")),
    ]


def test_qif_without_a_currency_is_refused_not_guessed() -> None:
    with pytest.raises(StatementError, match="states no currency"):
        parse_statement((DATA / "quicken.qif").read_bytes(), "quicken.qif")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("!Type:Invst\nD1/1/25\nT1\n^\n", "not a bank, cash or card list"),
        ("!Type:Bank\nD1/1/25\nT1.2.3\n^\n", r"line 3: '1.2.3' is not an amount"),
        ("!Type:Bank\nD13/13/25\nT1\n^\n", "line 2: '13/13/25' is not a date"),
        ("!Type:Bank\nT1\n^\n", "without a date"),
        ("D1/1/25\n", "before any !Type"),
    ],
)
def test_bad_qif_names_the_line(text: str, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        qif.parse(text.encode(), "USD")


# --- XLSX -----------------------------------------------------------------------------------------


def test_xlsx_cells_typed_as_numbers_and_dates_are_read(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Date", "Text", "Amount"])
    sheet.append([date(2025, 3, 1), "SALARY", 2500.5])
    sheet.append([date(2025, 3, 2), "COFFEE", -3.2])
    out = io.BytesIO()
    book.save(out)
    mapping = csvfiles.CsvMapping(
        date_column="Date", amount_column="Amount", description_columns=("Text",),
        currency="EUR", date_format="%d.%m.%Y",
    )  # fmt: skip
    parsed = csvfiles.parse_with_mapping(out.getvalue(), mapping)
    assert parsed.format == "xlsx:generic"
    assert [(t.booking_date, t.amount) for t in parsed.accounts[0].transactions] == [
        (date(2025, 3, 1), D("2500.5")),
        (date(2025, 3, 2), D("-3.2")),
    ]


def test_an_xlsx_that_inflates_beyond_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "0" * 5_000_000)
    data = out.getvalue()
    assert len(data) < 100_000
    monkeypatch.setattr(xlsx, "MAX_UNPACKED_BYTES", 1_000_000)
    with pytest.raises(StatementError, match="unpacks to"):
        xlsx.read_rows(data)


def test_the_documented_schema_names_every_key() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "statements.md").read_text("utf-8")
    table = docs[docs.index("### The profile schema") : docs.index("### The profiles")]
    for key in profiles.ProfileSpec.__struct_fields__:
        assert f"`{key}`" in table, f"docs/statements.md does not describe the key {key!r}"
