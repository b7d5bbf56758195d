"""Bank CSV exports: each corpus file read to hand-checked values; bad rows named by line."""

from __future__ import annotations

import codecs
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from bankhub.connectors.base import AccountType, TransactionStatus
from bankhub.statements import csvfiles
from bankhub.statements.csvfiles import CsvMapping
from bankhub.statements.model import StatementAccount, StatementError

from .corpus import read

BOOKED, PENDING = TransactionStatus.BOOKED, TransactionStatus.PENDING


def _only(name: str, fmt: str) -> StatementAccount:
    parsed = csvfiles.parse(read(f"csv/{name}"))
    assert parsed.format == fmt
    assert len(parsed.accounts) == 1
    return parsed.accounts[0]


def _total(account: StatementAccount) -> Decimal:
    return sum((t.amount for t in account.transactions), Decimal(0))


def test_dkb() -> None:
    account = _only("dkb.csv", "csv:dkb")
    assert account.iban == "DE42120300001033738756"
    assert account.name == "Girokonto"
    assert account.currency == "EUR"
    # "Kontostand vom 09.12.2025:";"4.093,32 €" in the preamble
    assert (account.closing_balance, account.closing_date) == (
        Decimal("4093.32"),
        date(2025, 12, 9),
    )
    txs = account.transactions
    assert len(txs) == 8
    assert (txs[0].booking_date, txs[0].amount) == (date(2025, 12, 8), Decimal("200"))
    assert (txs[-1].booking_date, txs[-1].amount) == (date(2025, 11, 28), Decimal("-27.28"))
    assert [t.amount for t in txs[1:3]] == [Decimal("-62.3"), Decimal("150")]
    assert _total(account) == Decimal("50.43")
    assert all(t.status == BOOKED and t.bank_id is None for t in txs)
    # inflows name the payer, outflows the payee
    assert txs[0].merchant == "Max Mustermann"
    assert txs[1].merchant == "Firma"
    assert txs[1].description == "K.MICHEL GMBH"
    assert txs[1].meta is not None
    assert txs[1].meta["mandate_reference"] == "1000-000000243257"
    # the row with a stray quote ("Mustermann, Max";Firma";...) still has its 12 fields
    assert (txs[5].amount, txs[5].merchant) == (Decimal("-207"), "Firma")
    assert txs[5].description == "422.986.811-1 ABS. 11/25 Wanderer., Nuernberg"


def test_ing() -> None:
    account = _only("ing.csv", "csv:ing")
    assert account.iban == "DE89370400440532013000"
    assert (account.name, account.holder_name) == ("Girokonto", "Max Mustermann")
    assert account.currency == "EUR"
    txs = account.transactions
    assert len(txs) == 20
    assert (txs[0].booking_date, txs[0].amount) == (date(2025, 12, 9), Decimal("-13.98"))
    assert (txs[-1].booking_date, txs[-1].amount) == (date(2025, 11, 17), Decimal("-676.68"))
    assert _total(account) == Decimal("1362.53")
    assert txs[0].merchant == "VISA Firma"
    assert txs[0].meta == {"booking_text": "Lastschrift"}
    # the "Rente" row leaves out Buchungstext: 6 fields, amount and currency still in place
    rente = txs[8]
    assert (rente.booking_date, rente.amount, rente.merchant) == (
        date(2025, 11, 28),
        Decimal("2647.74"),
        "Rente",
    )
    assert rente.description == "97052181157Z00511 RV-RENTE 11.2025"
    # booking 18.11.2025, value date 17.11.2025
    cash = txs[17]
    assert (cash.booking_date, cash.value_date, cash.amount) == (
        date(2025, 11, 18),
        date(2025, 11, 17),
        Decimal("-500.00"),
    )
    assert txs[11].merchant == "UKW"


def test_sparkasse_booked_and_pending() -> None:
    account = _only("sparkasse-lzo-camt-v8.csv", "csv:sparkasse")
    assert account.iban == "DE89370400440532013000"
    assert account.currency == "EUR"
    txs = account.transactions
    assert len(txs) == 10
    assert (txs[0].booking_date, txs[0].value_date, txs[0].amount, txs[0].status) == (
        date(2025, 12, 5),
        date(2025, 12, 8),
        Decimal("-99.80"),
        PENDING,
    )
    assert (txs[-1].booking_date, txs[-1].amount, txs[-1].status) == (
        date(2025, 12, 3),
        Decimal("35.90"),
        BOOKED,
    )
    assert [t.status for t in txs] == [PENDING] * 3 + [BOOKED] * 7
    assert sum((t.amount for t in txs if t.status == PENDING), Decimal(0)) == Decimal("-1253.78")
    assert sum((t.amount for t in txs if t.status == BOOKED), Decimal(0)) == Decimal("332.51")
    assert _total(account) == Decimal("-921.27")
    assert txs[1].amount == Decimal("-1143.41")
    assert txs[1].merchant == "Medien GmbH"
    assert txs[1].meta is not None
    assert txs[1].meta["counterparty_iban"] == "DE89370400440532013002"
    assert account.closing_balance is None  # the export states no balance


def test_paypal_net_amounts_and_running_balance() -> None:
    account = _only("paypal.csv", "csv:paypal")
    assert (account.name, account.currency, account.type) == ("PayPal", "EUR", AccountType.OTHER)
    txs = account.transactions
    assert len(txs) == 11
    assert (txs[0].booking_date, txs[0].amount, txs[0].bank_id) == (
        date(2025, 6, 18),
        Decimal("100.00"),
        "8L0000000S000000N",
    )
    assert (txs[-1].booking_date, txs[-1].amount, txs[-1].bank_id) == (
        date(2025, 11, 14),
        Decimal("-28.45"),
        "52M00000748000000W",
    )
    assert _total(account) == Decimal("-24.77")
    # first row: Guthaben 138,53 after +100,00; last row: Guthaben 13,76
    assert (account.opening_balance, account.opening_date) == (Decimal("38.53"), date(2025, 6, 18))
    assert (account.closing_balance, account.closing_date) == (Decimal("13.76"), date(2025, 11, 14))
    assert Decimal("38.53") + _total(account) == account.closing_balance
    # the authorisation hold moved the balance (Auswirkung auf Guthaben: Soll), so it is booked
    hold = txs[3]
    assert (hold.amount, hold.status, hold.merchant) == (Decimal("-13.21"), BOOKED, "PayPal")
    assert hold.meta is not None
    assert hold.meta["paypal_status"] == "Ausstehend"
    assert txs[2].description == (
        "PayPal Express-Zahlung - Artikel A, Artikel B, Artikel C - Bestellung Artikel"
    )
    assert account.to_account_record().balance == Decimal("13.76")


def test_paypal_fee_is_netted() -> None:
    data = read("csv/paypal.csv").replace(
        b'"EUR","100,00","0,00","100,00"', b'"EUR","100,00","-3,05","96,95"'
    )
    tx = csvfiles.parse(data).accounts[0].transactions[0]
    assert tx.amount == Decimal("96.95")
    assert tx.meta is not None
    assert (tx.meta["gross"], tx.meta["fee"]) == ("100.00", "-3.05")


def test_paypal_currencies_become_separate_accounts() -> None:
    data = read("csv/paypal.csv").replace(b'"EUR","-28,45"', b'"USD","-28,45"')
    parsed = csvfiles.parse(data)
    assert [(a.currency, len(a.transactions)) for a in parsed.accounts] == [("EUR", 10), ("USD", 1)]
    assert parsed.accounts[1].transactions[0].currency == "USD"
    assert parsed.accounts[1].closing_balance == Decimal("13.76")


@pytest.mark.parametrize("name", ["dkb.csv", "ing.csv", "sparkasse-lzo-camt-v8.csv", "paypal.csv"])
def test_parsing_is_deterministic(name: str) -> None:
    data = read(f"csv/{name}")
    assert csvfiles.parse(data) == csvfiles.parse(bytes(data))


def test_ing_as_utf8_and_cp1252_read_the_same() -> None:
    latin = read("csv/ing.csv")
    as_utf8 = latin.decode("latin-1").encode("utf-8")
    assert csvfiles.parse(as_utf8) == csvfiles.parse(latin)
    assert csvfiles.parse(codecs.BOM_UTF8 + as_utf8) == csvfiles.parse(latin)


# --- broken files ---------------------------------------------------------------------------------


def test_garbled_amount_names_line_column_and_value() -> None:
    data = read("csv/dkb.csv").replace(b'"-62,3"', b'"-62,3x"')
    with pytest.raises(StatementError, match=r"line 7: 'Betrag \(€\)' '-62,3x' is not an amount"):
        csvfiles.parse(data)


def test_misgrouped_thousands_are_not_an_amount() -> None:
    data = read("csv/ing.csv").replace(b"2.647,74", b"26.47,74")
    with pytest.raises(StatementError, match=r"line 22: 'Betrag' '26.47,74' is not an amount"):
        csvfiles.parse(data)


def test_impossible_date_names_the_line() -> None:
    data = read("csv/ing.csv").replace(b"17.11.2025;17.11.2025;AOK", b"31.02.2025;17.11.2025;AOK")
    with pytest.raises(StatementError, match=r"line 33: 'Buchung' '31.02.2025' is not a date"):
        csvfiles.parse(data)


def test_truncated_file_names_the_short_row() -> None:
    data = read("csv/sparkasse-lzo-camt-v8.csv")
    cut = data[: data.index(b'"Beleg 203036"')]
    with pytest.raises(StatementError, match=r"line 11 has 5 fields but the header has 17"):
        csvfiles.parse(cut)


def test_unknown_status_is_refused() -> None:
    data = read("csv/sparkasse-lzo-camt-v8.csv").replace(
        b'"Umsatz vorgemerkt"', b'"Umsatz storniert"', 1
    )
    with pytest.raises(StatementError, match=r"line 2: 'Info' 'Umsatz storniert' is not one of"):
        csvfiles.parse(data)


def test_paypal_net_that_does_not_match_gross_and_fee_is_refused() -> None:
    data = read("csv/paypal.csv").replace(b'"-6,19","0,00","-6,19"', b'"-6,19","0,00","-6,91"')
    with pytest.raises(StatementError, match=r"line 3: 'Netto' '-6,91' is not 'Brutto' '-6,19'"):
        csvfiles.parse(data)


def test_utf16_without_bom_is_refused_with_a_hint() -> None:
    data = read("csv/ing.csv").decode("latin-1").encode("utf-16-le")
    assert not csvfiles.sniff(data)
    with pytest.raises(StatementError, match="UTF-16 without a byte-order mark"):
        csvfiles.parse(data)


def test_utf16_with_bom_is_read() -> None:
    data = read("csv/ing.csv").decode("latin-1").encode("utf-16")
    assert csvfiles.sniff(data)
    assert len(csvfiles.parse(data).accounts[0].transactions) == 20


def test_unknown_header_is_not_claimed() -> None:
    data = read("csv/sparkasse-lzo-camt-v8.csv").replace(b'"Auftragskonto"', b'"Konto"', 1)
    assert not csvfiles.sniff(data)
    with pytest.raises(StatementError, match="matches no known bank export"):
        csvfiles.parse(data)


# --- generic column mapping -----------------------------------------------------------------------

SPARKASSE_MAPPING = CsvMapping(
    date_column="Buchungstag",
    date_format="%d.%m.%y",
    value_date_column="Valutadatum",
    amount_column="Betrag",
    currency_column="Waehrung",
    description_columns=("Buchungstext", "Verwendungszweck"),
    merchant_column="Beguenstigter/Zahlungspflichtiger",
    iban="DE89370400440532013000",
)


def test_mapping_reads_a_corpus_export() -> None:
    parsed = csvfiles.parse_with_mapping(read("csv/sparkasse-lzo-camt-v8.csv"), SPARKASSE_MAPPING)
    assert parsed.format == "csv:generic"
    (account,) = parsed.accounts
    assert (account.iban, account.currency) == ("DE89370400440532013000", "EUR")
    assert len(account.transactions) == 10
    assert _total(account) == Decimal("-921.27")
    first = account.transactions[0]
    assert first.description == "FOLGELASTSCHRIFT - Online-Shop Bestellung"
    assert (first.value_date, first.merchant) == (date(2025, 12, 8), "Online-Shop GmbH")


def test_mapping_with_debit_credit_columns_and_no_header() -> None:
    data = (
        b"Export 2026\n"
        b"2026-01-02,Coffee,,3.50,,tx-1\n"
        b'2026-01-03,Salary,"1,234.56",,,tx-2\n'
        b"2026-01-04,Refund,0.99,,,tx-3\n"
        b"2026-01-05,Fee,0.00,-2.00,,tx-4\n"
    )
    mapping = CsvMapping(
        date_column=0,
        date_format="%Y-%m-%d",
        credit_column=2,
        debit_column=3,
        description_columns=(1,),
        id_column=5,
        currency="gbp",
        account_number="12345678",
        delimiter=",",
        decimal_separator=".",
        thousands_separator=",",
        skip_lines=1,
        header_row=False,
    )
    (account,) = csvfiles.parse_with_mapping(data, mapping).accounts
    assert (account.number, account.currency) == ("12345678", "GBP")
    assert [(t.booking_date, t.amount, t.bank_id, t.description) for t in account.transactions] == [
        (date(2026, 1, 2), Decimal("-3.50"), "tx-1", "Coffee"),
        (date(2026, 1, 3), Decimal("1234.56"), "tx-2", "Salary"),
        (date(2026, 1, 4), Decimal("0.99"), "tx-3", "Refund"),
        (date(2026, 1, 5), Decimal("-2.00"), "tx-4", "Fee"),
    ]
    both = data.replace(b"Fee,0.00,", b"Fee,1.00,")
    with pytest.raises(StatementError, match="line 5 has both a debit and a credit amount"):
        csvfiles.parse_with_mapping(both, mapping)
    neither = data.replace(b"Fee,0.00,-2.00,", b"Fee,,,")
    with pytest.raises(StatementError, match="line 5 has no amount"):
        csvfiles.parse_with_mapping(neither, mapping)


def test_mapping_row_without_the_optional_column_is_an_error() -> None:
    mapping = CsvMapping(
        date_column="Buchung",
        amount_column="Betrag",
        currency_column="Währung",
        skip_lines=12,
        encoding="latin-1",
    )
    with pytest.raises(StatementError, match="line 22 has 6 fields but the header has 7"):
        csvfiles.parse_with_mapping(read("csv/ing.csv"), mapping)


def test_mapping_with_the_wrong_encoding_names_the_byte_and_line() -> None:
    mapping = CsvMapping(
        date_column="Buchung", amount_column="Betrag", currency="EUR", encoding="utf-8"
    )
    with pytest.raises(StatementError, match=r"not utf-8: byte 0xE4 on line 11"):
        csvfiles.parse_with_mapping(read("csv/ing.csv"), mapping)


def test_mapping_naming_a_missing_column_lists_the_header() -> None:
    mapping = CsvMapping(date_column="Datum", amount_column="Betrag", currency="EUR")
    with pytest.raises(StatementError, match=r"no column 'Datum' \(it has 'Auftragskonto'"):
        csvfiles.parse_with_mapping(read("csv/sparkasse-lzo-camt-v8.csv"), mapping)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount_column": None}, "amount column or debit/credit"),
        ({"debit_column": "Soll"}, "amount column or debit/credit"),
        ({"currency": "EUR"}, "either a fixed currency or a currency column"),
        ({"delimiter": ";;"}, "not one character"),
        ({"thousands_separator": ","}, "separators must differ"),
    ],
)
def test_inconsistent_mapping_is_refused(changes: dict[str, Any], message: str) -> None:
    base = CsvMapping(date_column="Buchungstag", amount_column="Betrag", currency_column="Waehrung")
    with pytest.raises(StatementError, match=message):
        csvfiles.parse_with_mapping(read("csv/sparkasse-lzo-camt-v8.csv"), replace(base, **changes))
