"""Amounts on the wire: decimal strings, never floats.

The seed writes amounts with two decimals even for VND (``"-61299.00"``), whose minor unit is 0;
bankhub keeps that shape and widens it only for currencies with three minor digits.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache

#: ISO 4217 currencies with three minor digits (the rest use two or none).
_THREE_DIGITS = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
#: ISO 4217 currencies with no minor unit: their amounts are whole numbers.
NO_MINOR_UNIT = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)


def minor_digits(currency: str) -> int:
    code = currency.upper()
    if code in _THREE_DIGITS:
        return 3
    if code in NO_MINOR_UNIT:
        return 0
    return 2


def wire_scale(currency: str) -> int:
    return max(2, minor_digits(currency))


@cache
def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-wire_scale(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    # the quantum per currency is made once: /v2/transaction formats every row's amount, and
    # working it out again per row cost a tenth of a 100-row page's CPU (bench/README.md)
    return format(amount.quantize(_quantum(currency), rounding=ROUND_HALF_EVEN), "f")
