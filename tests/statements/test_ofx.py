"""OFX/QFX: every corpus file read to hand-checked values, and broken files refused clearly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from bankhub.connectors.base import AccountType, TransactionStatus
from bankhub.statements import ofx
from bankhub.statements.model import StatementAccount, StatementError

from .corpus import read


@dataclass(frozen=True)
class Expected:
    """What a reader of the file sees in it (values typed in from the file, not from a run)."""

    currency: str
    number: str
    bank_code: str | None
    type: AccountType
    count: int
    first: tuple[date, Decimal, str | None]  # booking date, amount, FITID
    last: tuple[date, Decimal, str | None]
    total: Decimal
    closing: tuple[Decimal, date] | None
    available: Decimal | None


EXPECTED = {
    "checking.ofx": Expected(
        "USD", "1452687~7", "5472369148", AccountType.CURRENT, 3,
        (date(2011, 3, 31), Decimal("0.01"), "0000486"),
        (date(2011, 4, 7), Decimal("-25.00"), "0000488"),
        Decimal("-59.50"), (Decimal("100.99"), date(2013, 5, 25)), Decimal("75.99"),
    ),
    "bank_medium.ofx": Expected(
        "CAD", "12300 000012345678", "160000100", AccountType.CURRENT, 3,
        (date(2009, 4, 1), Decimal("-6.60"), "0000123456782009040100001"),
        (date(2009, 4, 3), Decimal("-22.00"), "0000123456782009040300005"),
        Decimal("-345.27"), (Decimal("382.34"), date(2009, 5, 23)), Decimal("682.34"),
    ),
    "anzcc.ofx": Expected(
        "AUD", "1234123412341234", None, AccountType.CREDIT_CARD, 1,
        (date(2017, 5, 8), Decimal("-5.50"), "201705080001"),
        (date(2017, 5, 8), Decimal("-5.50"), "201705080001"),
        Decimal("-5.50"), (Decimal("-123.45"), date(2017, 5, 10)), Decimal("123.45"),
    ),
    "suncorp.ofx": Expected(
        "AUD", "123456789", "SUNCORP", AccountType.CURRENT, 1,
        (date(2013, 12, 15), Decimal("-16.85"), "1"),
        (date(2013, 12, 15), Decimal("-16.85"), "1"),
        Decimal("-16.85"), (Decimal("1234.12"), date(2013, 12, 15)), Decimal("1234.12"),
    ),
    "ofx-v102-empty-tags.ofx": Expected(
        "AUD", "12345678", "NPBS", AccountType.CURRENT, 1,
        (date(2018, 5, 7), Decimal("12.34"), None),
        (date(2018, 5, 7), Decimal("12.34"), None),
        Decimal("12.34"), None, None,
    ),
    "stmtrs_euro.ofx": Expected(
        "USD", "999988", "121099999", AccountType.CURRENT, 2,
        (date(2005, 10, 4), Decimal("-200.00"), "00002"),
        (date(2005, 10, 20), Decimal("-300.00"), "00003"),
        Decimal("-500.00"), (Decimal("200.29"), date(2005, 10, 29)), Decimal("200.29"),
    ),
    "br_nubank_cc.ofx": Expected(
        "BRL", "11111111-UUID-UUID-UUID-111111111111", None, AccountType.CREDIT_CARD, 6,
        (date(2024, 3, 23), Decimal("-13.00"), "11111111-UUID-4747-8883-111111111111"),
        (date(2024, 3, 22), Decimal("-959.00"), "11111111-UUID-427c-8fc0-111111111111"),
        Decimal("-1280.91"), (Decimal("-1280.91"), date(2024, 3, 25)), None,
    ),
}  # fmt: skip


def _only(name: str) -> StatementAccount:
    parsed = ofx.parse(read(f"ofx/{name}"))
    assert parsed.format == "ofx"
    assert len(parsed.accounts) == 1
    return parsed.accounts[0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file_reads_to_the_values_it_states(name: str) -> None:
    want = EXPECTED[name]
    account = _only(name)
    assert (account.currency, account.number, account.bank_code, account.type) == (
        want.currency,
        want.number,
        want.bank_code,
        want.type,
    )
    txs = account.transactions
    assert len(txs) == want.count
    assert (txs[0].booking_date, txs[0].amount, txs[0].bank_id) == want.first
    assert (txs[-1].booking_date, txs[-1].amount, txs[-1].bank_id) == want.last
    assert sum((t.amount for t in txs), Decimal(0)) == want.total
    assert all(type(t.amount) is Decimal and t.currency == want.currency for t in txs)
    assert all(t.status == TransactionStatus.BOOKED for t in txs)
    closing = (account.closing_balance, account.closing_date) if want.closing else None
    assert closing == want.closing
    if want.closing is None:
        assert account.closing_balance is None
    assert account.available_balance == want.available


def test_names_memos_and_check_numbers() -> None:
    first, second, third = _only("checking.ofx").transactions
    assert first.merchant == "DIVIDEND EARNED FOR PERIOD OF 03"
    assert first.description.startswith("DIVIDEND EARNED FOR PERIOD OF 03/01/2011 THROUGH")
    assert second.description == "AUTOMATIC WITHDRAWAL, ELECTRIC BILL WEB(S )"
    assert third.meta is not None
    assert third.meta["checknum"] == "319"
    assert third.meta["trntype"] == "CHECK"
    medium = _only("bank_medium.ofx").transactions
    assert medium[1].merchant == "Joe's Bald Hairstyles"
    assert medium[1].description == "MISCELLANEOUS PAYMENTS;Joe's Bald Hairstyles"


def test_cdata_values_are_read_and_spaces_collapsed() -> None:
    (tx,) = _only("suncorp.ofx").transactions
    assert tx.merchant == "EFTPOS WDL HANDYWAY ALDI STORE"
    assert tx.description == "EFTPOS WDL HANDYWAY ALDI STORE GEELONG WEST VICAU"


def test_booking_date_is_the_local_date_and_the_utc_instant_is_kept() -> None:
    # DTPOSTED 20240323000000[-3:GMT]: the bank's date is 23 March; in UTC it is 03:00 that day
    tx = _only("br_nubank_cc.ofx").transactions[0]
    assert tx.booking_date == date(2024, 3, 23)
    assert tx.meta is not None
    assert tx.meta["posted_at"] == "2024-03-23T03:00:00+00:00"
    # 20090401122017.000[-5:EST] is 17:20:17 UTC
    medium = _only("bank_medium.ofx").transactions[0]
    assert medium.meta is not None
    assert medium.meta["posted_at"] == "2009-04-01T17:20:17+00:00"


def test_offset_does_not_move_the_booking_date_across_midnight() -> None:
    data = read("ofx/br_nubank_cc.ofx").replace(
        b"<DTPOSTED>20240323000000[-3:GMT]", b"<DTPOSTED>20240323230000[-3:GMT]", 1
    )
    tx = ofx.parse(data).accounts[0].transactions[0]
    assert tx.booking_date == date(2024, 3, 23)
    assert tx.meta is not None
    assert tx.meta["posted_at"] == "2024-03-24T02:00:00+00:00"


def test_empty_curdef_takes_the_transactions_currency() -> None:
    account = _only("ofx-v102-empty-tags.ofx")
    assert account.currency == "AUD"
    (tx,) = account.transactions
    assert tx.description == "CBA:Transfer"
    assert tx.bank_id is None  # <FITID></FITID>
    assert tx.value_date == date(2018, 5, 7)


def test_an_empty_sgml_value_holds_nothing_after_it() -> None:
    # <NAME> with no text and no end tag is an empty value, not an aggregate around the MEMO
    data = read("ofx/bank_medium.ofx").replace(b"<NAME>MCDONALD'S #112", b"<NAME>", 1)
    first = ofx.parse(data).accounts[0].transactions[0]
    assert (first.merchant, first.description) == (None, "POS MERCHANDISE;MCDONALD'S #112")


def test_a_statement_that_forgets_to_close_its_transaction_list() -> None:
    account = _only("br_nubank_cc.ofx")
    assert b"</BANKTRANLIST>" not in read("ofx/br_nubank_cc.ofx")
    assert len(account.transactions) == 6
    assert (account.closing_balance, account.closing_date) == (
        Decimal("-1280.91"),
        date(2024, 3, 25),
    )


def test_empty_curdef_without_any_currency_is_refused() -> None:
    data = read("ofx/ofx-v102-empty-tags.ofx").replace(b"<CURSYM>AUD</CURSYM>", b"")
    with pytest.raises(StatementError, match=r"account 12345678.*empty CURDEF.*currency"):
        ofx.parse(data)


def test_the_bank_error_status_is_quoted() -> None:
    with pytest.raises(StatementError) as caught:
        ofx.parse(read("ofx/error_message.ofx"))
    assert "code 2000" in caught.value.message
    assert "General Server Error" in caught.value.message
    assert caught.value.format == "ofx"


def test_several_statements_in_one_file() -> None:
    text = read("ofx/stmtrs_euro.ofx").decode()
    start = text.index("<STMTTRNRS>")
    end = text.index("</STMTTRNRS>") + len("</STMTTRNRS>")
    second = (
        text[start:end]
        .replace("<ACCTID>999988<", "<ACCTID>777766<")
        .replace("<ACCTTYPE>CHECKING<", "<ACCTTYPE>SAVINGS<")
        .replace("<CURDEF>USD<", "<CURDEF>EUR<")
    )
    both = text[:end] + second + text[end:]
    parsed = ofx.parse(both.encode())
    assert [(a.number, a.currency, a.type) for a in parsed.accounts] == [
        ("999988", "USD", AccountType.CURRENT),
        ("777766", "EUR", AccountType.SAVINGS),
    ]
    assert [len(a.transactions) for a in parsed.accounts] == [2, 2]
    assert parsed.accounts[1].transactions[0].currency == "EUR"


def test_crlf_and_lf_give_the_same_result() -> None:
    data = read("ofx/suncorp.ofx")
    assert b"\r\n" in data
    assert ofx.parse(data) == ofx.parse(data.replace(b"\r\n", b"\n"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parsing_is_deterministic(name: str) -> None:
    data = read(f"ofx/{name}")
    assert ofx.parse(data) == ofx.parse(bytes(data))


# --- broken files ---------------------------------------------------------------------------------


def test_truncated_file_names_the_unclosed_elements() -> None:
    data = read("ofx/checking.ofx")
    cut = data[: data.index(b"<TRNAMT>-34.51")]
    with pytest.raises(StatementError, match=r"truncated.*</STMTTRN>.*</BANKTRANLIST>"):
        ofx.parse(cut)


def test_file_cut_inside_a_tag_is_called_truncated() -> None:
    data = read("ofx/bank_medium.ofx")
    cut = data[: data.index(b"<LEDGERBAL>") + 5]
    with pytest.raises(StatementError, match=r"truncated: it ends inside a tag on line 18"):
        ofx.parse(cut)


def test_garbled_amount_names_the_element_line_and_value() -> None:
    data = read("ofx/checking.ofx").replace(b"<TRNAMT>-34.51", b"<TRNAMT>-34.5x1")
    with pytest.raises(StatementError, match=r"TRNAMT on line 57 has '-34.5x1'.*not an amount"):
        ofx.parse(data)


def test_impossible_date_is_refused() -> None:
    data = read("ofx/stmtrs_euro.ofx").replace(b"<DTPOSTED>20051004", b"<DTPOSTED>20051304")
    with pytest.raises(StatementError, match=r"DTPOSTED on line 40 has '20051304'"):
        ofx.parse(data)


def test_missing_amount_is_refused() -> None:
    data = read("ofx/anzcc.ofx").replace(b"<TRNAMT>-5.50\n", b"")
    with pytest.raises(StatementError, match=r"TRNAMT .*missing"):
        ofx.parse(data)


def test_declared_utf8_with_windows_1252_bytes_is_refused() -> None:
    data = read("ofx/anzcc.ofx").replace(b"SOME MEMO", "SOME MÉMO".encode("cp1252"))
    with pytest.raises(StatementError, match=r'declares encoding="UTF-8" but byte 0xC9 on line 35'):
        ofx.parse(data)


def test_charset_1252_file_reads_8_bit_names() -> None:
    data = read("ofx/bank_medium.ofx").replace(b"CONNIE'S", "CONNIÉ'S".encode("cp1252"))
    assert ofx.parse(data).accounts[0].transactions[2].merchant == "CONNIÉ'S HAIR D"


def test_a_closing_tag_that_was_never_opened_is_refused() -> None:
    data = read("ofx/suncorp.ofx").replace(b"</BANKTRANLIST>", b"</BANKTRANLIST></STMTTRN>")
    with pytest.raises(StatementError, match=r"closes <STMTTRN> on line 44 but it is not open"):
        ofx.parse(data)


def test_stray_text_after_an_end_tag_names_its_line() -> None:
    data = read("ofx/suncorp.ofx").replace(b"</STMTTRN>", b"</STMTTRN>oops", 1)
    with pytest.raises(StatementError, match=r"stray text on line 43"):
        ofx.parse(data)


def test_a_file_without_statements_is_refused() -> None:
    text = read("ofx/suncorp.ofx").decode()
    only_signon = text[: text.index("<BANKMSGSRSV1>")] + "</OFX>\r\n"
    with pytest.raises(StatementError, match="no bank or credit-card statement"):
        ofx.parse(only_signon.encode())


def test_account_without_acctid_is_refused() -> None:
    data = read("ofx/suncorp.ofx").replace(b"<ACCTID>123456789</ACCTID>", b"<ACCTID></ACCTID>")
    with pytest.raises(StatementError, match="has no ACCTID"):
        ofx.parse(data)


@pytest.mark.parametrize(
    ("written", "posted_at"),
    [
        (b"20240323000000[+10:EST]", "2024-03-22T14:00:00+00:00"),
        (b"20240323093000[+5.5:IST]", "2024-03-23T04:00:00+00:00"),
        (b"20240323120000.123[0:GMT]", "2024-03-23T12:00:00+00:00"),
        (b"20240323120000", "2024-03-23T12:00:00+00:00"),
    ],
)
def test_utc_offsets_are_applied_to_the_instant_only(written: bytes, posted_at: str) -> None:
    data = read("ofx/br_nubank_cc.ofx").replace(
        b"<DTPOSTED>20240323000000[-3:GMT]", b"<DTPOSTED>" + written, 1
    )
    tx = ofx.parse(data).accounts[0].transactions[0]
    assert tx.booking_date == date(2024, 3, 23)
    assert tx.meta is not None
    assert tx.meta["posted_at"] == posted_at


def test_amounts_with_grouping_are_read_exactly() -> None:
    data = read("ofx/checking.ofx").replace(b"<TRNAMT>-34.51", b"<TRNAMT>-1,234.51")
    assert ofx.parse(data).accounts[0].transactions[1].amount == Decimal("-1234.51")
    data = read("ofx/stmtrs_euro.ofx").replace(b"-200,00", b"-1.200,05")
    assert ofx.parse(data).accounts[0].transactions[0].amount == Decimal("-1200.05")
    bad = read("ofx/checking.ofx").replace(b"<TRNAMT>-34.51", b"<TRNAMT>-12,34.51")
    with pytest.raises(StatementError, match=r"'-12,34\.51', which is not an amount"):
        ofx.parse(bad)
