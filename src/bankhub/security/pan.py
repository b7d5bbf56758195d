"""Card numbers (PANs) are never stored or served whole, whatever a connector or file sent.

A PAN here is what payment card numbers look like: 13 to 19 digits, optionally grouped by single
spaces or dashes, passing the Luhn check. The first six and the last four digits stay (the most
PCI DSS allows to be shown; the bank and the card are still recognisable), the others become
``*``; separators are kept. A PAN stands on its own: digits that run on from letters or other
digits are part of a word, such as a bank's hexadecimal transaction id
(``...-414d89e7c11713385495002``, whose 14-digit tail passes the Luhn check by chance), and
masking them would change the id a partner reconciles by. Digits inside an IBAN are left alone
for the same reason: an IBAN's digits often pass the Luhn check by chance, and a counterparty's
IBAN must survive intact.

Our own code rather than a library: the check is a dozen lines, and the libraries that find card
numbers in text (scrubbers, DLP tool kits) mask differently or pull in much more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b")
KEEP_FIRST = 6
KEEP_LAST = 4
MASK = "*"


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = ord(char) - 48
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _masked(candidate: str) -> str:
    digits = sum(c.isdigit() for c in candidate)
    out: list[str] = []
    seen = 0
    for char in candidate:
        if char.isdigit():
            seen += 1
            keep = seen <= KEEP_FIRST or seen > digits - KEEP_LAST
            out.append(char if keep else MASK)
        else:
            out.append(char)
    return "".join(out)


def mask_pans(text: str) -> str:
    """``text`` with every PAN-looking number masked (see the module's text)."""
    if len(text) < 13:
        return text
    found = list(_CANDIDATE.finditer(text))
    if not found:
        return text
    protected = [m.span() for m in _IBAN.finditer(text)]
    pieces: list[str] = []
    last = 0
    for match in found:
        start, end = match.span()
        if any(low <= start < high for low, high in protected):
            continue
        candidate = match.group(0)
        if not luhn_valid(candidate.replace(" ", "").replace("-", "")):
            continue
        pieces.append(text[last:start])
        pieces.append(_masked(candidate))
        last = end
    if not pieces:
        return text
    pieces.append(text[last:])
    return "".join(pieces)


def mask_optional(text: str | None) -> str | None:
    return None if text is None else mask_pans(text)


def mask_value(value: Any) -> Any:
    """A JSON value (a transaction's ``meta``) with PANs masked in every string, keys too."""
    if isinstance(value, str):
        return mask_pans(value)
    if isinstance(value, Mapping):
        return {mask_pans(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    return value
