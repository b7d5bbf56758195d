"""MT940/MT942: every corpus file read against values taken by hand from the file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.statements import camt, mt940
from bankhub.statements.model import StatementAccount, StatementError

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
MT940 = CORPUS / "mt940"
D = Decimal


def read(name: str) -> bytes:
    return (MT940 / name).read_bytes()


@dataclass(frozen=True)
class Expect:
    """What one account of a file holds, written down from reading the file."""

    currency: str
    iban: str | None
    number: str | None
    bank_code: str | None
    amounts: tuple[Decimal, ...]
    total: Decimal
    booking_dates: tuple[date, ...]
    bank_ids: tuple[str | None, ...]
    opening: tuple[Decimal, date] | None
    closing: tuple[Decimal, date] | None
    available: Decimal | None = None


NO_IDS = (None,) * 8

EXPECTED: dict[str, tuple[str, tuple[Expect, ...]]] = {
    "ASNB/mt940.txt": (
        "mt940",
        (
            Expect(
                currency="EUR",
                iban="NL81ASNB9999999999",
                number=None,
                bank_code=None,
                amounts=(
                    D("-65.00"),
                    D("1000.00"),
                    D("-801.55"),
                    D("-1.65"),
                    D("828.72"),
                    D("-1000.00"),
                    D("1000.18"),
                    D("-903.76"),
                ),
                total=D("56.94"),
                booking_dates=(
                    date(2020, 1, 1),
                    date(2020, 1, 5),
                    date(2020, 1, 5),
                    date(2020, 1, 25),
                    date(2020, 1, 29),
                    date(2020, 1, 29),
                    date(2020, 1, 31),
                    date(2020, 1, 31),
                ),
                bank_ids=NO_IDS,  # no // bank reference anywhere
                opening=(D("444.29"), date(2020, 1, 1)),  # :60F: of statement 1/1
                closing=(D("501.23"), date(2020, 1, 31)),  # :62F: of statement 31/1
            ),
        ),
    ),
    "betterplace/sepa_snippet.sta": (
        "mt940",
        (
            Expect(
                currency="EUR",
                iban=None,
                number="0194787400888",
                bank_code="50880050",
                amounts=(D("50990.05"), D("154551.93"), D("154551.93"), D("-1500.00")),
                total=D("358593.91"),
                booking_dates=(date(2007, 9, 4),) * 4,  # entry date 0904
                bank_ids=(
                    "0724710333343453",
                    "0724710324647450",
                    "0724710324661090",
                    "536D80EFEC56ACF8",
                ),
                opening=(D("766656.49"), date(2007, 9, 3)),
                closing=(D("1125250.4"), date(2007, 9, 4)),
                available=D("559614.51"),
            ),
            Expect(
                currency="EUR",
                iban=None,
                number="0194791600888",
                bank_code="50880050",
                amounts=(
                    D("-0.08"),
                    D("335.33"),
                    D("15000"),
                    D("15000.05"),
                    D("125004.88"),
                    D("915311.55"),
                    D("-3572569.03"),
                ),
                total=D("-2501917.30"),
                booking_dates=(date(2007, 9, 4),) * 7,
                bank_ids=(
                    "0724710345316116",
                    "0724710351063401",
                    "0724710345316110",
                    "0724710290659857",
                    "0724710290624796",
                    "R724710351063405",
                    None,  # ...NMSCNONREF without a bank reference
                ),
                opening=(D("-1970431.87"), date(2007, 9, 3)),
                closing=(D("-4472049.09"), date(2007, 9, 4)),
                available=D("-4472049.09"),
            ),
        ),
    ),
    "citi/mt940.txt": (
        "mt940",
        (
            Expect(
                currency="USD",
                iban=None,
                number="123456789",
                bank_code=None,
                amounts=(D("-212.39"), D("-369.28"), D("0.00"), D("0.00"), D("-561.08")),
                total=D("-1142.75"),
                booking_dates=(date(2024, 3, 12),) * 5,  # blank entry date: the value date
                bank_ids=(None,) * 5,  # NONREF// with nothing after
                opening=(D("17376.67"), date(2024, 3, 12)),
                closing=(D("16233.92"), date(2024, 3, 12)),
                available=D("16233.92"),
            ),
        ),
    ),
    "jejik/ing.sta": (
        "mt940",
        (
            Expect(
                currency="EUR",
                iban=None,
                number="0001234567",
                bank_code=None,
                amounts=(
                    D("-25.03"),
                    D("-3.03"),
                    D("-1.11"),
                    D("-20.00"),
                    D("-1.10"),
                    D("3.68"),
                    D("1.00"),
                ),
                total=D("-45.59"),
                booking_dates=(date(2010, 7, 22),) * 6 + (date(2010, 7, 23),),
                bank_ids=(None,) * 7,
                opening=(D("0.00"), date(2010, 7, 22)),
                closing=(D("3.47"), date(2010, 7, 23)),
            ),
        ),
    ),
    "jejik/postfinance.sta": (
        "mt940",
        (
            Expect(
                currency="CHF",
                iban=None,
                number="123456789",
                bank_code=None,
                amounts=(D("79.7"), D("149.5"), D("-79.9"), D("10.1")),
                total=D("159.4"),
                booking_dates=(
                    date(2013, 12, 9),
                    date(2013, 12, 9),
                    date(2013, 12, 16),
                    date(2013, 12, 18),
                ),
                bank_ids=(None,) * 4,  # //NONREF
                opening=(D("0"), date(2013, 11, 30)),  # :60F:C131130CHF0,
                closing=(D("159.6"), date(2014, 4, 7)),  # :62F: of 999/2
            ),
        ),
    ),
    "mBank/mt940.sta": (
        "mt940",
        (
            Expect(
                currency="PLN",
                iban="PL29114010810000267002001002",
                number=None,
                bank_code=None,
                amounts=(D("0.01"),) * 3,
                total=D("0.03"),
                booking_dates=(date(2017, 1, 19),) * 3,
                bank_ids=("MB170119012058", "MB170119012085", "MB170119012121"),
                opening=(D("0.40"), date(2017, 1, 19)),
                closing=(D("0.43"), date(2017, 1, 19)),
                available=D("0.43"),
            ),
        ),
    ),
    "mBank/mt942.sta": (
        "mt942",
        (
            Expect(
                currency="PLN",  # from :34F:PLN0
                iban="PL29114010810000267002001002",
                number=None,
                bank_code=None,
                amounts=(D("0.01"),) * 3,
                total=D("0.03"),
                booking_dates=(date(2017, 1, 19),) * 3,
                bank_ids=("MB170119012058", "MB170119012085", "MB170119012121"),
                opening=None,
                closing=None,
            ),
        ),
    ),
    "sberbank/171011_01234945.sta": (
        "mt940",
        (
            Expect(
                currency="HUF",
                iban=None,
                number="1966315302010001",
                bank_code=None,
                amounts=(D("-2402.00"), D("-3460.00"), D("-3575.00")),
                total=D("-9437.00"),
                booking_dates=(date(2017, 10, 11),) * 3,
                bank_ids=(None,) * 3,
                opening=(D("627311.30"), date(2017, 10, 11)),
                closing=(D("617874.30"), date(2017, 10, 11)),
                available=D("617874.30"),
            ),
        ),
    ),
    "vr-teilhaberbank.mta": (
        "mt940",
        (
            Expect(
                currency="EUR",
                iban=None,
                number="0003267288",
                bank_code="76069559",
                amounts=(D("-17.90"), D("-6.00"), D("-39.90"), D("-453.11"), D("175.00")),
                total=D("-341.91"),
                booking_dates=(
                    date(2025, 11, 27),
                    date(2025, 11, 28),  # value date 251130, entry date 1128
                    date(2025, 12, 1),
                    date(2025, 12, 1),
                    date(2025, 12, 1),
                ),
                bank_ids=(None,) * 5,
                opening=(D("15188.85"), date(2025, 11, 27)),
                closing=(D("14846.94"), date(2025, 12, 1)),
            ),
        ),
    ),
}


def corpus_files() -> list[str]:
    return sorted(str(p.relative_to(MT940)) for p in MT940.rglob("*") if p.is_file())


def test_every_corpus_file_has_expectations() -> None:
    assert corpus_files() == sorted(EXPECTED)


def check(account: StatementAccount, expect: Expect) -> None:
    txns = account.transactions
    assert (account.currency, account.iban, account.number, account.bank_code) == (
        expect.currency,
        expect.iban,
        expect.number,
        expect.bank_code,
    )
    assert len(txns) == len(expect.amounts)
    assert tuple(t.amount for t in txns) == expect.amounts
    assert tuple(str(t.amount) for t in txns) == tuple(str(a) for a in expect.amounts)
    assert sum((t.amount for t in txns), D(0)) == expect.total
    assert tuple(t.booking_date for t in txns) == expect.booking_dates
    assert tuple(t.bank_id for t in txns) == expect.bank_ids[: len(txns)]
    assert all(t.currency == expect.currency for t in txns)
    if expect.opening is None:
        assert (account.opening_balance, account.opening_date) == (None, None)
    else:
        assert (account.opening_balance, account.opening_date) == expect.opening
        assert str(account.opening_balance) == str(expect.opening[0])
    if expect.closing is None:
        assert (account.closing_balance, account.closing_date) == (None, None)
    else:
        assert (account.closing_balance, account.closing_date) == expect.closing
    assert account.available_balance == expect.available


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    fmt, expects = EXPECTED[name]
    parsed = mt940.parse(read(name))
    assert parsed.format == fmt
    assert len(parsed.accounts) == len(expects)
    for account, expect in zip(parsed.accounts, expects, strict=True):
        check(account, expect)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_bytes_give_equal_results(name: str) -> None:
    assert mt940.parse(read(name)) == mt940.parse(read(name))


def test_balances_add_up_where_the_bank_kept_them_consistent() -> None:
    for name in ("ASNB/mt940.txt", "citi/mt940.txt", "sberbank/171011_01234945.sta"):
        account = mt940.parse(read(name)).accounts[0]
        assert account.opening_balance is not None
        total = sum((t.amount for t in account.transactions), account.opening_balance)
        assert total == account.closing_balance, name


# --- :86: readings ------------------------------------------------------------------------------


def test_german_structured_purpose_with_sepa_keys() -> None:
    first, fee, gym, _, credit = mt940.parse(read("vr-teilhaberbank.mta")).accounts[0].transactions
    assert first.merchant == "PayPal Europe S.a.r.l. et Cie S.C.A"  # ?32 + ?33
    assert first.description.startswith(
        "1046450041914/. eBay S.a r.l., Ihr Einkauf bei eBay S.a r.l., Artikel- EREF:"
    )
    assert first.meta is not None
    assert first.meta["sepa"]["EREF"] == "1046450041914"
    assert first.meta["sepa"]["MREF"] == "5VYJ2258F7ZQG"
    assert first.meta["sepa"]["CRED"] == "LU96ZZZ0000000000000000058"  # ?24 + ?25
    assert first.meta["mandate_id"] == "5VYJ2258F7ZQG"
    assert first.meta["gvc"] == "105"
    assert first.meta["posting_text"] == "Basislastschrift"
    assert first.meta["prima_nota"] == "931"
    assert first.meta["counterparty_bank_code"] == "PPLXLUL2"
    assert first.meta["counterparty_iban"] == "LU89751000135104200E"
    assert first.meta["text_key_ext"] == "992"
    assert fee.description == "Abschluss per 30.11.2025"  # ?20 + ?21
    assert fee.value_date == date(2025, 11, 30)
    # ?60..?63 continue the purpose after ?29
    assert gym.description.endswith(
        "24.90 EUR 01.12.25-31.12. EREF: N0003--0149-0002756 MREF: MLREFN000309677 CRED: "
        "DE8937040044053201300051 IBAN: DE89370400440532013000"
    )
    assert (credit.description, credit.merchant) == ("Rate", "Max Mustermann")


def test_subfield_split_across_lines() -> None:
    txns = mt940.parse(read("betterplace/sepa_snippet.sta")).accounts[0].transactions
    assert txns[0].description == "Verw CTSc-01 BC-PPP TFNr 22 004"
    assert txns[0].merchant == "KARL KAUFMANN"
    assert txns[0].meta is not None
    assert txns[0].meta["end_to_end_id"] == "EndToEndId TFNR 22 004 00001"
    assert txns[0].meta["counterparty_iban"] == "DE14508800500194785000"
    assert txns[0].value_date == date(2007, 9, 7)
    # "?2" at a line end and "2MTLG" on the next are one ?22 subfield
    assert txns[3].meta is not None
    assert (
        txns[3]
        .meta["sepa"]["KREF"]
        .endswith("EBBMTLG:SEPA-Ueberweisungsauftrag Datei mit 0000001 Zahlungen")
    )
    assert txns[3].meta["customer_reference"] == "KREF+"


def test_abwa_goes_to_meta() -> None:
    data = read("vr-teilhaberbank.mta").replace(
        b"?22SVWZ+Rate", b"?22ABWA+Erika Muster?23SVWZ+Rate"
    )
    credit = mt940.parse(data).accounts[0].transactions[-1]
    assert credit.meta is not None
    assert credit.meta["sepa"]["ABWA"] == "Erika Muster"
    assert credit.description == "Rate"


def test_free_text_lines_and_hard_wraps() -> None:
    txns = mt940.parse(read("jejik/postfinance.sta")).accounts[0].transactions
    # a 65-character line continues on the next one without a space
    assert "AUFTRAGGEBER: XXXXXXXXX XXX XXXXXXXXSTRASSE 111 1234" in txns[2].description
    assert txns[2].description.endswith("MITTEILUNGEN: 1 SONNENGLAESER")
    assert txns[0].meta is not None
    assert txns[0].meta["supplementary_details"] == "20131209007602198765432000000012"
    assert txns[0].meta["customer_reference"] == "01916"
    assert txns[0].meta["transaction_type"] == "FMSC"


def test_soft_hyphens_are_stripped_and_statement_info_is_not_a_purpose() -> None:
    txns = mt940.parse(read("jejik/ing.sta")).accounts[0].transactions
    assert "\u00ad" not in "".join(t.description for t in txns)
    assert "TRANSACTIENR 0050000534527978 10062010 15:32" in txns[2].description
    assert txns[2].meta is not None
    assert txns[2].meta["customer_reference"] == "TMG TANGO"
    assert txns[-1].description == (
        "0111111111 Hr S Marechal ROSMALEN Hr S Marechal ROSMALEN "
        "Betaling transactiedatum: 22-07-2010"
    )  # the :86: after :62F: (D000004C000002...) belongs to the statement


def test_asn_wrapped_blocks_and_second_line() -> None:
    first = mt940.parse(read("ASNB/mt940.txt")).accounts[0].transactions[0]
    assert first.meta is not None
    assert first.meta["transaction_type"] == "NOVB"
    assert first.meta["customer_reference"] == "NL47INGB9999999999"
    assert first.meta["supplementary_details"] == "hr gjlm paulissen"
    assert first.description == "NL47INGB9999999999 hr gjlm paulissen Betaling sieraden"


def test_replacement_characters_are_kept() -> None:
    txns = mt940.parse(read("sberbank/171011_01234945.sta")).accounts[0].transactions
    assert txns[0].meta is not None
    assert "09Tranzakci\ufffds Illet\ufffdk:7.21HUF" in txns[0].meta["ns"]
    assert txns[0].meta["funds_code"] == "F"


def test_windows_1252_file() -> None:
    data = read("vr-teilhaberbank.mta").replace(
        b"Max Mustermann", "Jürgen Müßig € ".encode("cp1252")
    )
    assert mt940.parse(data).accounts[0].transactions[-1].merchant == "Jürgen Müßig €"


def test_iso_8859_1_bytes_undefined_in_windows_1252() -> None:
    data = read("vr-teilhaberbank.mta").replace(b"?22SVWZ+Rate", b"?22SVWZ+Rate\x81\xe4")
    assert mt940.parse(data).accounts[0].transactions[-1].description == "Rate\x81ä"


# --- dates, marks, merging ----------------------------------------------------------------------


def test_entry_date_across_the_year_boundary() -> None:
    data = read("ASNB/mt940.txt")
    back = data.replace(b":61:2001010101D65,00", b":61:2001011231D65,00")
    txn = mt940.parse(back).accounts[0].transactions[0]
    assert (txn.booking_date, txn.value_date) == (date(2019, 12, 31), date(2020, 1, 1))
    forward = data.replace(b":61:2001010101D65,00", b":61:1912310102D65,00")
    txn = mt940.parse(forward).accounts[0].transactions[0]
    assert (txn.booking_date, txn.value_date) == (date(2020, 1, 2), date(2019, 12, 31))


# Files written for bankhub (tests/statements/data): a German bank's statements and an interim
# report around the turn of 2019/2020, with bookings on 30 and 31 December and 2 January.
DATA = Path(__file__).resolve().parent / "data"


def test_bookings_across_a_year_end_take_the_statements_year() -> None:
    account = mt940.parse((DATA / "year-end.sta").read_bytes()).accounts[0]
    dates = [(t.booking_date, t.value_date) for t in account.transactions]
    assert dates == [
        (date(2019, 12, 30), date(2019, 12, 30)),
        (date(2019, 12, 31), date(2020, 1, 2)),  # 1231, value date in the new year
        (date(2019, 12, 31), date(2019, 6, 28)),  # 1231, back-valued half a year
        (date(2020, 1, 2), date(2019, 12, 31)),  # 0102, value date in the old year
        (date(2020, 1, 2), date(2020, 7, 5)),  # 0102, forward-valued half a year
    ]
    # Nothing falls outside the statements' own period, 30 December to 2 January.
    start, end = date(2019, 12, 30), date(2020, 1, 2)
    assert (account.opening_date, account.closing_date) == (start, end)
    assert all(start <= t.booking_date <= end for t in account.transactions)
    total = sum((t.amount for t in account.transactions), account.opening_balance or D(0))
    assert total == account.closing_balance == D("2186.00")


def test_an_interim_report_across_a_year_end_takes_the_year_of_its_13d() -> None:
    parsed = mt940.parse((DATA / "year-end-interim.sta").read_bytes())
    assert parsed.format == "mt942"
    dates = [(t.booking_date, t.value_date) for t in parsed.accounts[0].transactions]
    # :13D:2001021030+0100 dates the report 2 January 2020
    assert dates == [
        (date(2019, 12, 31), date(2019, 7, 1)),  # not 31 December 2018
        (date(2020, 1, 2), date(2020, 1, 2)),
    ]


def test_a_garbled_13d_names_the_line() -> None:
    data = (
        (DATA / "year-end-interim.sta").read_bytes().replace(b":13D:2001021030", b":13D:2013321030")
    )
    expect_error(data, "line 6: :13D: '201332' is not a valid YYMMDD date")


@pytest.mark.parametrize(
    ("mark", "amount"), [("C", D("79.7")), ("D", D("-79.7")), ("RC", D("-79.7")), ("RD", D("79.7"))]
)
def test_credit_debit_and_reversal_marks(mark: str, amount: Decimal) -> None:
    line = b"1312091209" + mark.encode() + b"79,7"
    data = read("jejik/postfinance.sta").replace(b"1312091209C79,7", line)
    txn = mt940.parse(data).accounts[0].transactions[0]
    assert txn.amount == amount
    assert txn.meta is not None
    assert txn.meta.get("reversal", False) is mark.startswith("R")


def test_statements_merge_in_date_order_whatever_the_file_order() -> None:
    data = read("jejik/postfinance.sta")
    first, second = data.split(b":20:2014040708285928")
    swapped = b":20:2014040708285928" + second + first
    assert mt940.parse(swapped) == mt940.parse(data)


def test_crlf_and_lf_read_alike() -> None:
    data = read("ASNB/mt940.txt")
    assert mt940.parse(data.replace(b"\n", b"\r\n")) == mt940.parse(data)


def test_a_repeated_bank_reference_is_not_trusted() -> None:
    data = read("mBank/mt940.sta").replace(b"MB170119012085", b"MB170119012058")
    txns = mt940.parse(data).accounts[0].transactions
    assert [t.bank_id for t in txns] == [None, None, "MB170119012121"]


# --- broken files -------------------------------------------------------------------------------


def expect_error(data: bytes, *fragments: str) -> None:
    with pytest.raises(StatementError) as caught:
        mt940.parse(data)
    for fragment in fragments:
        assert fragment in caught.value.message


def test_garbled_amount_names_the_line() -> None:
    data = read("citi/mt940.txt").replace(b"DD212,39", b"DD2I2,39")
    expect_error(data, "line 5: :61: amount '2I2,39", "not a number")


def test_statement_without_account() -> None:
    data = read("citi/mt940.txt").replace(b":25:123456789\n", b"")
    expect_error(data, "statement at line 1 (:20:asdfsdfdsf) has no :25:")


def test_garbled_balance_names_the_line() -> None:
    data = read("citi/mt940.txt").replace(b"USD17376,67", b"USD17376.67")
    expect_error(data, "line 4: :60F: balance 'C240312USD17376.67'")


def test_bad_entry_date() -> None:
    data = read("ASNB/mt940.txt").replace(b":61:2001010101D65,00", b":61:2001011341D65,00")
    expect_error(data, "line 6: :61: entry date '1341'")


def test_bad_value_date() -> None:
    data = read("mBank/mt940.sta").replace(b":61:1701190119", b":61:1702300119", 1)
    expect_error(data, "line 6: :61: '170230' is not a valid YYMMDD date")


def test_missing_transaction_type() -> None:
    data = read("mBank/mt940.sta").replace(b"CN0,01NTRF", b"CN0,01XTRF", 1)
    expect_error(data, "line 6: :61: 'XTRFNONR' is not a transaction type")


def test_not_a_statement() -> None:
    expect_error(b"hello\nworld\n", "no MT940/MT942 statement found")


# --- sniffing -----------------------------------------------------------------------------------


def test_sniff_claims_mt940_only() -> None:
    for name in corpus_files():
        assert mt940.sniff(read(name)), name
        assert not camt.sniff(read(name)), name
    for folder in ("ofx", "csv", "camt"):
        for path in sorted((CORPUS / folder).iterdir()):
            assert not mt940.sniff(path.read_bytes()), path.name
