"""A page of ``GET /v2/transaction`` written straight from its rows (``schemas.page_body``) is
byte for byte the envelope of ``transaction_out`` of the opened rows: every kind of row the
answer treats apart (pending, replacing a pending one, a debit naming a payment, a debit naming
something else, no meta, meta with escapes and non-ASCII text, other currencies)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from decimal import Decimal
from typing import Any, cast

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import details
from bankhub.accounts import services as accounts
from bankhub.accounts.schemas import TransactionListEnvelope, page_body, transaction_out
from bankhub.connectors.base import end_to_end_id
from bankhub.security.crypto import Box

APP = 7
PAYMENT = str(uuid.UUID(int=12345))


def _rows(box: Box) -> list[tuple[Any, ...]]:
    cases: list[tuple[Decimal, str, str, int | None, details.Details]] = [
        (Decimal("12.5"), "EUR", "booked", None, details.Details("b1", "Salary")),
        (
            Decimal("-3.10"),
            "EUR",
            "pending",
            None,
            details.Details("b2", "Coffee", "Café", {"mcc": "5814"}),
        ),
        (Decimal("-3.10"), "EUR", "booked", 41, details.Details("b3", "Coffee", None, None)),
        (
            Decimal("-250"),
            "EUR",
            "booked",
            None,
            details.Details("b4", "Rent", None, {"end_to_end_id": end_to_end_id(PAYMENT, 1)}),
        ),
        (
            Decimal("-9.99"),
            "JPY",
            "booked",
            None,
            details.Details("b5", "Shop", None, {"endToEndId": "NOTPROVIDED", "n": 1.5}),
        ),
        (
            Decimal("-1"),
            "BHD",
            "booked",
            None,
            details.Details("b6", 'Tab\tquote" ünï', None, {"t": "line\nbreak", "x": [1, None]}),
        ),
        (Decimal("0.015"), "USD", "booked", None, details.Details("b7", "Round", None, {})),
        (
            Decimal("5"),
            "EUR",
            "booked",
            None,
            details.Details("b8", "Credit", None, {"end_to_end_id": end_to_end_id(PAYMENT, 2)}),
        ),
    ]
    rows = []
    for n, (amount, currency, status, pending, fields) in enumerate(cases, start=1):
        key = f"f:{n:04d}"
        sealed = details.seal(box, APP, 3, key, fields)
        rows.append(
            (n, 3, key, date(2026, 1, n), amount, currency, "other", status, pending, sealed)
        )
    return rows


def test_a_page_written_from_its_rows_is_the_envelope_of_the_opened_rows() -> None:
    box = Box.from_secret(b"p" * 32)
    rows = _rows(box)
    # every row is sealed: the opening needs no session
    views = asyncio.run(accounts.opened_rows(cast(AsyncSession, None), box, APP, rows))  # type: ignore[arg-type]
    expected = msgspec.json.encode(TransactionListEnvelope([transaction_out(v) for v in views]))
    written = page_body(rows, box, APP)  # type: ignore[arg-type]
    assert written == expected
    data = msgspec.json.decode(written)["data"]
    assert data[3]["payment_id"] == PAYMENT
    assert data[1]["meta"]["status"] == "pending"
    assert data[2]["meta"] == {"pending_transaction_id": 41}


def test_a_row_stored_before_sealing_takes_the_opened_rows_way() -> None:
    box = Box.from_secret(b"p" * 32)
    rows = _rows(box)
    rows[2] = (*rows[2][:-1], None)
    assert page_body(rows, box, APP) is None  # type: ignore[arg-type]
