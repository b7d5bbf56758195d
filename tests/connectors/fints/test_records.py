"""MT940/MT942 text to transaction records, date windows, and the catalogue parameters."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from bankhub.connectors.base import MemoryStateStore, ProviderUnavailable, TransactionStatus
from bankhub.connectors.fints import records, state
from bankhub.connectors.fints.params import bank_params
from bankhub.statements import mt940

BOOKED = "\r\n".join(
    [
        ":20:STARTUMSE",
        ":25:12345678/0001234567",
        ":28C:00000/001",
        ":60F:C261101EUR1000,00",
        ":61:2611021102DR12,34NDDTKREF1//BANKREF-1",
        ":86:105?00FOLGELASTSCHRIFT?10931?20EREF+E2E-77?21SVWZ+Strom November",
        "?30GENODEF1XXX?31DE02120300000000202051?32Stadtwerke Musterstadt",
        ":61:2611031104CR2500,00NTRFNONREF",
        ":86:166?00GUTSCHRIFT?20Gehalt?32ACME GmbH",
        ":61:2611041104RC5,00NTRFNONREF//BANKREF-2",
        ":86:166?00STORNO?20Rueckbuchung",
        ":61:2611051105DR1,00NTRFNONREF//DUP",
        ":86:166?20a",
        ":61:2611051105DR2,00NTRFNONREF//DUP",
        ":86:166?20b",
        ":62F:C261105EUR3479,66",
        "-",
        "",
    ]
)
PENDING = "\r\n".join(
    [
        ":20:STARTDISPE",
        ":25:12345678/0001234567",
        ":28C:00000/001",
        ":34F:EURD0,",
        ":13D:2611061200+0100",
        ":61:2611061106DR19,99NDDTNONREF",
        ":86:105?00LASTSCHRIFT?20Abo",
        "-",
        "",
    ]
)


def test_mt940_becomes_records_with_exact_amounts_dates_and_parties() -> None:
    parsed = records.statement(BOOKED, PENDING, "EUR")
    rows = parsed.rows
    assert [(r.booking_date, r.value_date, r.amount, r.status) for r in rows] == [
        (date(2026, 11, 2), date(2026, 11, 2), Decimal("-12.34"), TransactionStatus.BOOKED),
        (date(2026, 11, 4), date(2026, 11, 3), Decimal("2500.00"), TransactionStatus.BOOKED),
        (date(2026, 11, 4), date(2026, 11, 4), Decimal("-5.00"), TransactionStatus.BOOKED),
        (date(2026, 11, 5), date(2026, 11, 5), Decimal("-1.00"), TransactionStatus.BOOKED),
        (date(2026, 11, 5), date(2026, 11, 5), Decimal("-2.00"), TransactionStatus.BOOKED),
        (date(2026, 11, 6), date(2026, 11, 6), Decimal("-19.99"), TransactionStatus.PENDING),
    ]
    assert all(isinstance(r.amount, Decimal) for r in rows)
    first = rows[0]
    assert first.description == "Strom November"
    assert first.merchant == "Stadtwerke Musterstadt"
    assert first.meta is not None
    assert first.counterparty_account == "DE02120300000000202051"
    assert first.meta["counterparty_iban"] == "DE02120300000000202051"
    assert first.meta["counterparty_bank_code"] == "GENODEF1XXX"
    assert first.meta["end_to_end_id"] == "E2E-77"
    assert rows[1].merchant == rows[1].counterparty_name == "ACME GmbH"
    assert rows[2].meta is not None
    assert rows[2].meta["reversal"] is True
    # A bank reference is the id when it is unique in the answer; NONREF and repeats are not.
    assert [r.bank_id for r in rows] == ["BANKREF-1", None, "BANKREF-2", None, None, None]
    assert parsed.closing_balance == Decimal("3479.66")
    assert parsed.closing_currency == "EUR"
    assert parsed.closing_date == date(2026, 11, 5)


def test_a_booking_reads_as_the_same_mt940_file_does() -> None:
    # One MT940 reader: the bank's answer gives the records a statement file of the same text
    # imports to, pending ones marked pending.
    rows = records.statement(BOOKED, PENDING, "EUR").rows
    (booked,) = mt940.parse(BOOKED.encode("iso-8859-1")).accounts
    (pending,) = mt940.parse(PENDING.encode("iso-8859-1")).accounts
    assert rows == [
        *booked.transactions,
        *(replace(t, status=TransactionStatus.PENDING) for t in pending.transactions),
    ]


def test_a_statement_without_currency_takes_the_accounts() -> None:
    text = PENDING.replace(":34F:EURD0,\r\n", "")
    (row,) = records.statement("", text, "CHF").rows
    assert (row.currency, row.amount) == ("CHF", Decimal("-19.99"))


def test_an_unreadable_statement_is_the_banks_fault_named() -> None:
    with pytest.raises(ProviderUnavailable, match=r"MT940 statement could not be read: line 5"):
        records.statement(BOOKED.replace("DR12,34", "DR12.34"), "", "EUR")


def test_a_window_keeps_only_rows_booked_inside_it() -> None:
    rows = records.statement(BOOKED, "", "EUR").rows
    inside = records.within(rows, date(2026, 11, 3), date(2026, 11, 4))
    assert [r.amount for r in inside] == [Decimal("2500.00"), Decimal("-5.00")]
    assert records.within(rows, None, None) == rows
    assert records.within(rows, date(2026, 11, 6), None) == []


def test_empty_text_is_no_rows_and_no_balance() -> None:
    parsed = records.statement("", "", "EUR")
    assert parsed.rows == []
    assert parsed.closing_balance is None


def test_state_round_trips_and_ignores_garbage() -> None:
    store = MemoryStateStore({"other": 1})
    state.save(store, state.SavedState(client=b"blob", system_id="S;1", tan_mechanism="942"))
    assert store.load()["other"] == 1
    assert state.load(store) == state.SavedState(b"blob", "S;1", "942")
    broken = MemoryStateStore({"fints": {"version": 1, "client": "%%%", "system_id": 5}})
    assert state.load(broken) == state.SavedState()
    assert state.load(MemoryStateStore({"fints": {"version": 99}})) == state.SavedState()


@pytest.mark.parametrize(
    ("institution", "options", "message"),
    [
        ({"fints_url": "https://bank.example/fints"}, {"fints_product_id": "X"}, "8-digit 'blz'"),
        ({"blz": "1234"}, {"fints_product_id": "X"}, "8-digit 'blz'"),
        ({"blz": "12345678", "fints_url": "ftp://x"}, {"fints_product_id": "X"}, "fints_url"),
        ({"blz": "12345678", "fints_url": "https://bank.example/"}, {}, "product id"),
        (
            {"blz": "12345678", "fints_url": "https://b.example/", "fints_timeout_seconds": "x"},
            {"fints_product_id": "X"},
            "not a number",
        ),
        (
            {"blz": "12345678", "fints_url": "https://b.example/"},
            {"fints_product_id": "X", "fints_timeout_seconds": 0},
            "positive",
        ),
    ],
)
def test_a_misconfigured_catalogue_entry_is_named(
    institution: dict[str, object], options: dict[str, object], message: str
) -> None:
    with pytest.raises(ProviderUnavailable, match=message):
        bank_params({"name": "Testbank", **institution}, options)


def test_parameters_come_from_the_entry_with_options_first() -> None:
    params = bank_params(
        {"blz": "1234 5678", "fints_url": "https://b.example/", "product_id": "ENTRY"},
        {"fints_product_id": "OPTION", "fints_timeout_seconds": "2.5"},
    )
    assert (params.blz, params.url) == ("12345678", "https://b.example/")
    assert params.product_id == "OPTION"
    assert params.timeout_seconds == 2.5
    assert params.operation_timeout_seconds == 10.0
