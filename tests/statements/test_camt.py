"""camt.052/053/054: every corpus file read against values taken by hand from the XML."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bankhub.connectors.base import TransactionStatus
from bankhub.statements import camt, mt940
from bankhub.statements.model import StatementAccount, StatementError

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
CAMT = CORPUS / "camt"
D = Decimal


def read(name: str) -> bytes:
    return (CAMT / name).read_bytes()


@dataclass(frozen=True)
class Expect:
    """What one account of a file holds, written down from reading the file."""

    currency: str
    iban: str | None
    number: str | None
    amounts: tuple[Decimal, ...]
    booking_dates: tuple[date, ...]
    bank_ids: tuple[str | None, ...]
    opening: tuple[Decimal, date] | None
    closing: tuple[Decimal, date] | None
    bank_code: str | None = None
    holder_name: str | None = None


EXPECTED: dict[str, tuple[str, Expect]] = {
    "camt052.v8.xml": (
        "camt.052",
        Expect(
            currency="SEK",  # no Acct/Ccy: the entry's Ccy
            iban=None,
            number="CH2801234000123456789",  # given as Othr/Id
            amounts=(D("-200000"),),
            booking_dates=(date(2007, 10, 18),),  # BookgDt/DtTm 2007-10-18T10:15:00+01:00
            bank_ids=("AAAASESS-FP-ACCR-01",),
            opening=None,
            closing=None,
            holder_name="UNIFITS GmbH",
        ),
    ),
    "camt053.v2.five.decimals.xml": (
        "camt.053",
        Expect(
            currency="EUR",
            iban="NL26VAYB8060476890",
            number=None,
            amounts=(D("8.850"),),
            booking_dates=(date(2014, 12, 31),),
            bank_ids=(None,),  # only an EndToEndId, which the payer sets
            opening=(D("18.150"), date(2014, 12, 30)),
            closing=(D("27.050"), date(2014, 12, 31)),
        ),
    ),
    "camt053.v2.multi.statement.xml": (
        "camt.053",
        Expect(
            currency="EUR",
            iban="NL26VAYB8060476890",  # both statements: one account
            number=None,
            amounts=(D("8.85"), D("-7.00")),
            booking_dates=(date(2014, 12, 31), date(2014, 12, 31)),
            bank_ids=(None, None),
            opening=(D("18.15"), date(2014, 12, 30)),  # first statement's OPBD
            closing=(D("20.00"), date(2014, 12, 31)),  # second statement's CLBD
        ),
    ),
    "camt053.v4.xml": (
        "camt.053",
        Expect(
            currency="EUR",
            iban=None,
            number="NL26VAYB8060476890",
            amounts=(D("8.85"),),
            booking_dates=(date(2014, 12, 31),),
            bank_ids=("AAAASESS-FP-CN_98765/01",),
            opening=(D("18.15"), date(2014, 12, 30)),
            closing=None,  # the CLBD is stated in SEK, not in the account's EUR
            holder_name="FINPETROL",
        ),
    ),
    "camt053.v8.xml": (
        "camt.053",
        Expect(
            currency="EUR",
            iban=None,
            number="NL26VAYB8060476890",
            amounts=(D("8.85"),),
            booking_dates=(date(2014, 12, 31),),  # DtTm 2014-12-31T13:15:00+01:00
            bank_ids=("AAAASESS-FP-CN_98765/01",),
            opening=(D("18.15"), date(2014, 12, 30)),
            closing=None,
            holder_name="FINPETROL",
        ),
    ),
    "camt53.only-Dt-with-DtTm.xml": (
        "camt.053",
        Expect(
            currency="RON",  # no Acct/Ccy and no entries: the balance's Ccy
            iban="GB33BUKB20201555555555",
            number=None,
            amounts=(),
            booking_dates=(),
            bank_ids=(),
            opening=(D("5442.09000"), date(2025, 7, 23)),  # <Dt><DtTm>2025-07-23T00:00:00...
            closing=None,
        ),
    ),
    "test-camt053": (
        "camt.053",
        Expect(
            currency="EUR",
            iban="NL77ABNA0574908765",
            number=None,
            amounts=(D("-754.25"), D("-664.05"), D("1405.31")),
            booking_dates=(date(2014, 1, 5),) * 3,
            bank_ids=(None, None, None),
            opening=(D("15568.27"), date(2014, 1, 5)),
            closing=(D("15121.12"), date(2014, 1, 5)),
            bank_code="ABNANL2A",
        ),
    ),
}


def test_every_corpus_file_has_expectations() -> None:
    assert sorted(p.name for p in CAMT.iterdir()) == sorted(EXPECTED)


def check(account: StatementAccount, expect: Expect) -> None:
    txns = account.transactions
    assert account.currency == expect.currency
    assert account.iban == expect.iban
    assert account.number == expect.number
    assert len(txns) == len(expect.amounts)
    assert tuple(t.amount for t in txns) == expect.amounts
    # Decimal equality ignores trailing zeros; the digits as written must survive too
    assert tuple(str(t.amount) for t in txns) == tuple(str(a) for a in expect.amounts)
    assert sum((t.amount for t in txns), D(0)) == sum(expect.amounts, D(0))
    assert tuple(t.booking_date for t in txns) == expect.booking_dates
    assert tuple(t.bank_id for t in txns) == expect.bank_ids
    assert all(t.currency == expect.currency for t in txns)
    opening = (account.opening_balance, account.opening_date) if expect.opening else None
    closing = (account.closing_balance, account.closing_date) if expect.closing else None
    assert opening == expect.opening
    assert closing == expect.closing
    if expect.opening is None:
        assert account.opening_balance is None
    else:
        assert str(account.opening_balance) == str(expect.opening[0])
    if expect.closing is None:
        assert account.closing_balance is None
    assert account.bank_code == expect.bank_code
    assert account.holder_name == expect.holder_name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name: str) -> None:
    fmt, expect = EXPECTED[name]
    parsed = camt.parse(read(name))
    assert parsed.format == fmt
    assert len(parsed.accounts) == 1
    check(parsed.accounts[0], expect)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_same_bytes_give_equal_results(name: str) -> None:
    assert camt.parse(read(name)) == camt.parse(read(name))


def test_abn_amro_statement_details() -> None:
    account = camt.parse(read("test-camt053")).accounts[0]
    first, reversal, credit = account.transactions
    assert account.name == "Example company"
    assert first.description == "Insurance policy 857239PERIOD 01.01.2014 - 31.12.2014"
    assert first.merchant == "INSURANCE COMPANY TESTX"
    assert first.value_date == date(2014, 1, 5)
    assert first.meta is not None
    assert first.meta["counterparty_iban"] == "NL46ABNA0499998748"
    assert first.meta["end_to_end_id"] == "435005714488-ABNO33052620"
    assert first.meta["mandate_id"] == "1880000341866"
    assert first.meta["bank_transaction_code"] == "PMNT/RDDT/ESDD"
    # RvslInd true with DBIT: the money left the account; the flag is kept
    assert reversal.amount == D("-664.05")
    assert reversal.meta is not None
    assert reversal.meta["reversal"] is True
    assert reversal.meta["transaction_details"] == 2
    assert reversal.description == "Direct Debit S14 0410"
    assert reversal.merchant == "Test Customer"
    # no RmtInf and no AddtlNtryInf: the transaction's additional information
    assert credit.description == "#RD PARTY MEDIA CUSNO 90782 4210773"
    assert credit.merchant == "3rd party Media"
    assert all(t.status is TransactionStatus.BOOKED for t in account.transactions)


def test_foreign_amounts_stay_in_meta() -> None:
    txn = camt.parse(read("camt053.v4.xml")).accounts[0].transactions[0]
    assert (txn.amount, txn.currency) == (D("8.85"), "EUR")
    assert txn.meta is not None
    assert txn.meta["other_amounts"] == ["transaction_detail 0 SEK"]
    assert txn.merchant == "NAME NAME"  # the debtor of a credit
    assert txn.description == "4654654654654654"  # Strd creditor reference
    assert txn.value_date == date(2015, 1, 2)


def test_v8_status_code_and_party_element() -> None:
    txn = camt.parse(read("camt053.v8.xml")).accounts[0].transactions[0]
    assert txn.status is TransactionStatus.BOOKED
    assert txn.merchant == "NAME NAME"  # RltdPties/Dbtr/Pty/Nm in v8
    assert txn.meta is not None
    assert txn.meta["end_to_end_id"] == "MUELL/FINP/RA12345"
    assert txn.meta["bank_transaction_code"] == "PMNT/RCDT/BOOK"


def test_camt052_entry_without_details() -> None:
    txn = camt.parse(read("camt052.v8.xml")).accounts[0].transactions[0]
    assert txn.description == "Credit"  # AddtlNtryInf
    assert txn.merchant is None
    assert txn.meta is not None
    assert txn.meta["batch_message_id"] == "FINP-0055"


def test_camt054_notification() -> None:
    data = (
        read("camt052.v8.xml")
        .replace(b"camt.052.001.08", b"camt.054.001.08")
        .replace(b"BkToCstmrAcctRpt>", b"BkToCstmrDbtCdtNtfctn>")
        .replace(b"<Rpt>", b"<Ntfctn>")
        .replace(b"</Rpt>", b"</Ntfctn>")
    )
    parsed = camt.parse(data)
    assert parsed.format == "camt.054"
    assert [t.amount for t in parsed.accounts[0].transactions] == [D("-200000")]


def test_camt052_interim_balances() -> None:
    balances = b"""
            <Bal><Tp><CdOrPrtry><Cd>ITBD</Cd></CdOrPrtry></Tp>
                <Amt Ccy="SEK">100.5</Amt><CdtDbtInd>CRDT</CdtDbtInd>
                <Dt><DtTm>2007-10-18T08:00:00+01:00</DtTm></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>ITBD</Cd></CdOrPrtry></Tp>
                <Amt Ccy="SEK">199899.5</Amt><CdtDbtInd>DBIT</CdtDbtInd>
                <Dt><DtTm>2007-10-18T12:30:00+01:00</DtTm></Dt></Bal>
            <Bal><Tp><CdOrPrtry><Cd>CLAV</Cd></CdOrPrtry></Tp>
                <Amt Ccy="SEK">50</Amt><CdtDbtInd>DBIT</CdtDbtInd>
                <Dt><Dt>2007-10-18</Dt></Dt></Bal>
            <Ntry>"""
    data = read("camt052.v8.xml").replace(b"<Ntry>", balances, 1)
    account = camt.parse(data).accounts[0]
    assert (account.closing_balance, account.closing_date) == (D("-199899.5"), date(2007, 10, 18))
    assert account.available_balance == D("-50")


def test_pending_and_info_entries() -> None:
    pending = read("test-camt053").replace(b"<Sts>BOOK</Sts>", b"<Sts>PDNG</Sts>", 1)
    txns = camt.parse(pending).accounts[0].transactions
    assert [t.status for t in txns] == [
        TransactionStatus.PENDING,
        TransactionStatus.BOOKED,
        TransactionStatus.BOOKED,
    ]
    info = read("test-camt053").replace(b"<Sts>BOOK</Sts>", b"<Sts>INFO</Sts>", 1)
    assert [t.amount for t in camt.parse(info).accounts[0].transactions] == [
        D("-664.05"),
        D("1405.31"),
    ]


def test_statements_merge_in_date_order() -> None:
    data = read("camt053.v2.multi.statement.xml")
    first, second = data.split(b"<Stmt>")[1:]
    swapped = (
        data.split(b"<Stmt>")[0]
        + b"<Stmt>"
        + second.replace(b"2014-12-30", b"2015-01-05")
        .replace(b"2014-12-31", b"2015-01-06")
        .replace(b"</Stmt>", b"")
        .replace(b"</BkToCstmrStmt>", b"")
        .replace(b"</Document>", b"")
        + b"</Stmt><Stmt>"
        + first
        + b"</BkToCstmrStmt></Document>"
    )
    account = camt.parse(swapped).accounts[0]
    assert [t.amount for t in account.transactions] == [D("8.85"), D("-7.00")]
    assert (account.opening_balance, account.closing_balance) == (D("18.15"), D("20.00"))
    assert account.closing_date == date(2015, 1, 6)


def test_two_accounts_stay_apart() -> None:
    data = read("camt053.v2.multi.statement.xml")
    head, first, second = data.split(b"<Stmt>")
    other = second.replace(b"NL26VAYB8060476890", b"NL91ABNA0417164300")
    parsed = camt.parse(head + b"<Stmt>" + first + b"<Stmt>" + other)
    assert [(a.iban, [t.amount for t in a.transactions]) for a in parsed.accounts] == [
        ("NL26VAYB8060476890", [D("8.85")]),
        ("NL91ABNA0417164300", [D("-7.00")]),
    ]


def test_a_repeated_bank_reference_is_not_trusted() -> None:
    data = read("test-camt053").replace(b"<BkTxCd>", b"<AcctSvcrRef>REF-1</AcctSvcrRef><BkTxCd>")
    txns = camt.parse(data).accounts[0].transactions
    assert [t.bank_id for t in txns] == [None, None, None]
    once = read("test-camt053").replace(b"<BkTxCd>", b"<AcctSvcrRef>REF-1</AcctSvcrRef><BkTxCd>", 1)
    assert [t.bank_id for t in camt.parse(once).accounts[0].transactions] == ["REF-1", None, None]


# --- broken files -------------------------------------------------------------------------------


def expect_error(data: bytes, *fragments: str) -> None:
    with pytest.raises(StatementError) as caught:
        camt.parse(data)
    for fragment in fragments:
        assert fragment in caught.value.message


def test_truncated_xml_names_the_position() -> None:
    data = read("test-camt053")
    expect_error(data[: len(data) // 2], "not well-formed", "line")


def test_wrong_namespace() -> None:
    data = read("camt053.v4.xml").replace(b"camt.053.001.04", b"camt.099.001.04")
    expect_error(data, "urn:iso:std:iso:20022:tech:xsd:camt.099.001.04", "not a camt")


def test_unsupported_version() -> None:
    data = read("camt053.v4.xml").replace(b"camt.053.001.04", b"camt.053.001.12")
    expect_error(data, "camt.053.001.12 is not supported")


def test_missing_namespace() -> None:
    data = read("camt053.v4.xml").replace(
        b' xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"', b""
    )
    expect_error(data, "<Document> has no namespace")


def test_garbled_amount_names_the_entry() -> None:
    data = read("test-camt053").replace(b">1405.31</Amt>", b">1405,31</Amt>", 1)
    expect_error(data, "Stmt[1]: Ntry[3]/Amt '1405,31' is not a decimal amount")


def test_missing_account_id() -> None:
    data = read("test-camt053").replace(b"<IBAN>NL77ABNA0574908765</IBAN>", b"")
    expect_error(data, "Stmt[1]: Acct has neither Id/IBAN nor Id/Othr/Id")


def test_bad_credit_debit_indicator() -> None:
    data = read("camt053.v8.xml").replace(b">CRDT</CdtDbtInd>", b">X</CdtDbtInd>")
    expect_error(data, "Bal[1]/CdtDbtInd is 'X'")


def test_bad_date() -> None:
    data = read("test-camt053").replace(b"<Dt>2014-01-05</Dt>", b"<Dt>2014-13-05</Dt>", 1)
    expect_error(data, "Stmt[1]: Bal[1]/Dt '2014-13-05' is not a valid date")


def test_entities_are_refused() -> None:
    data = read("test-camt053").replace(b"<Document", b'<!DOCTYPE d [<!ENTITY e "x">]><Document', 1)
    expect_error(data, "DTD or entities")


# --- sniffing -----------------------------------------------------------------------------------


def test_sniff_claims_camt_only() -> None:
    for path in sorted(CAMT.iterdir()):
        assert camt.sniff(path.read_bytes()), path.name
        assert not mt940.sniff(path.read_bytes()), path.name
    for folder in ("ofx", "csv", "mt940"):
        for path in sorted((CORPUS / folder).rglob("*")):
            if path.is_file():
                assert not camt.sniff(path.read_bytes()), path.name


def test_opening_prefers_opbd_over_prcd() -> None:
    prcd = b"""<Bal><Tp><CdOrPrtry><Cd>PRCD</Cd></CdOrPrtry></Tp>
        <Amt Ccy="EUR">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Dt><Dt>2014-01-04</Dt></Dt></Bal>
        <Bal>"""
    data = read("test-camt053").replace(b"<Bal>", prcd, 1)
    account = camt.parse(data).accounts[0]
    assert (account.opening_balance, account.opening_date) == (D("15568.27"), date(2014, 1, 5))
    only_prcd = data.replace(b"<Cd>OPBD</Cd>", b"<Cd>XXXX</Cd>")
    account = camt.parse(only_prcd).accounts[0]
    assert (account.opening_balance, account.opening_date) == (D("-1.00"), date(2014, 1, 4))


def test_entries_in_another_currency_form_their_own_account() -> None:
    # no Acct/Ccy: the account's currency is the first entry's, a USD entry is a USD account
    data = read("camt053.v8.xml").replace(b"</Ntry>", b"</Ntry>" + USD_ENTRY)
    eur, usd = camt.parse(data).accounts
    assert (eur.currency, [t.amount for t in eur.transactions]) == ("EUR", [D("8.85")])
    assert (usd.currency, [t.amount for t in usd.transactions]) == ("USD", [D("-12.5")])
    assert eur.opening_balance == D("18.15")
    assert usd.opening_balance is None
    assert usd.number == eur.number == "NL26VAYB8060476890"


USD_ENTRY = b"""<Ntry><Amt Ccy="USD">12.5</Amt><CdtDbtInd>DBIT</CdtDbtInd>
    <Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2014-12-31</Dt></BookgDt>
    <AddtlNtryInf>Card fee</AddtlNtryInf></Ntry>"""
