"""The XS2A payment status mapping and the initiation bodies, without a bank."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from bankhub.connectors.base import CreditTransfer, PaymentOrder, PaymentStatus, ProviderUnavailable
from bankhub.connectors.xs2a.payments import (
    TRANSACTION_STATUSES,
    order_body,
    payment_status_of,
    status_reason,
)

#: every code of the spec's ``transactionStatus`` enum (1.3.12), read by the user's side
SPEC_CODES = {
    "ACCC": PaymentStatus.EXECUTED,
    "ACCP": PaymentStatus.ACCEPTED,
    "ACSC": PaymentStatus.EXECUTED,
    "ACSP": PaymentStatus.ACCEPTED,
    "ACTC": PaymentStatus.AUTHORISED,
    "ACWC": PaymentStatus.ACCEPTED,
    "ACWP": PaymentStatus.ACCEPTED,
    "RCVD": PaymentStatus.AUTHORISED,
    "PDNG": PaymentStatus.AUTHORISED,
    "RJCT": PaymentStatus.REJECTED,
    "CANC": PaymentStatus.CANCELLED,
    "ACFC": PaymentStatus.ACCEPTED,
    "PATC": PaymentStatus.PENDING_AUTHORISATION,
    "PART": PaymentStatus.ACCEPTED,
}


@pytest.mark.parametrize(("code", "status"), sorted(SPEC_CODES.items()))
def test_each_spec_code_after_the_authorisation(code: str, status: PaymentStatus) -> None:
    assert payment_status_of(code, authorised=True) == status


def test_the_mapping_covers_the_spec_enum_and_nothing_else() -> None:
    assert set(TRANSACTION_STATUSES) == set(SPEC_CODES)


@pytest.mark.parametrize("code", sorted(SPEC_CODES))
def test_before_the_authorisation_only_final_codes_count(code: str) -> None:
    """A payment the user has not authorised is waiting for them, whatever the bank's
    technical checks say; a refusal or a cancellation is final at once."""
    expected = SPEC_CODES[code] if SPEC_CODES[code].final else PaymentStatus.PENDING_AUTHORISATION
    assert payment_status_of(code, authorised=False) == expected


@pytest.mark.parametrize("code", [None, "", "ACPT", "rjct"])
def test_an_unknown_code_is_the_banks_fault_not_a_guess(code: str | None) -> None:
    with pytest.raises(ProviderUnavailable, match="transactionStatus"):
        payment_status_of(code, authorised=True)


def test_the_reason_keeps_the_code_and_the_banks_words() -> None:
    body = {
        "transactionStatus": "RJCT",
        "tppMessages": [{"category": "ERROR", "code": "PAYMENT_FAILED", "text": "AM04 funds"}],
    }
    assert status_reason("RJCT", body) == "RJCT rejected by the bank: PAYMENT_FAILED: AM04 funds"
    assert status_reason("ACSC", {"transactionStatus": "ACSC"}) is None
    assert status_reason("PART", {"psuMessage": "2 of 3 booked"}) == (
        "PART some transfers of the batch were rejected by the bank: 2 of 3 booked"
    )


def test_bulk_body_names_the_debtor_once_and_local_accounts_as_bban() -> None:
    transfers = (
        CreditTransfer(
            "e2e-1", "Anna", Decimal("1.00"), "EUR", creditor_iban="DE02120300000000202051"
        ),
        CreditTransfer(
            "e2e-2",
            "Ben",
            Decimal("2"),
            "EUR",
            creditor_account="12345678",
            creditor_bic="BYLADEM1001",
        ),
    )
    body = order_body(
        PaymentOrder(
            "r",
            transfers,
            batch=True,
            debtor_iban="DE89370400440532013000",
            execution_date=date(2026, 1, 5),
        ),
        "Bank",
    )
    assert body == {
        "batchBookingPreferred": False,
        "debtorAccount": {"iban": "DE89370400440532013000"},
        "requestedExecutionDate": "2026-01-05",
        "payments": [
            {
                "endToEndIdentification": "e2e-1",
                "instructedAmount": {"currency": "EUR", "amount": "1.00"},
                "creditorAccount": {"iban": "DE02120300000000202051"},
                "creditorName": "Anna",
            },
            {
                "endToEndIdentification": "e2e-2",
                "instructedAmount": {"currency": "EUR", "amount": "2"},
                "creditorAccount": {"bban": "12345678"},
                "creditorName": "Ben",
                "creditorAgent": "BYLADEM1001",
            },
        ],
    }


@pytest.mark.parametrize("code", sorted(SPEC_CODES))
def test_unknown_authorisation_lets_the_code_tell(code: str) -> None:
    """The user left for the bank's page and never came back: a payment past received was
    authorised there."""
    expected = PaymentStatus.PENDING_AUTHORISATION if code in ("RCVD", "PATC") else SPEC_CODES[code]
    assert payment_status_of(code, authorised=None) == expected
