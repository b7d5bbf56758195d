"""What a bank checks first, checked before anything is stored or sent: every problem of an
order at once, each naming its field (``DataInvalid``, ``extra.problems``).

The checks lean on maintained data, not tables of our own: schwifty for IBANs (the registry's
lengths and formats per country, the check digits) and BICs; Babel's CLDR data for the ISO 4217
currencies and their minor units; ``holidays``' calendar of the European Central Bank for the
TARGET2 closing days. The SEPA character set (EPC217-08's basic Latin set) is a rule, not data:
it is written out here, with the few transliterations that are unambiguous (a letter with a
diacritic is the letter, as the EPC's conversion table has it; ``ß`` is ``ss``); anything else is
refused with the field named rather than guessed.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

import holidays
from babel.numbers import get_currency_precision, is_currency
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from bankhub.errors import DomainError, ErrorCode

#: a batch holds at most this many transfers (one authorisation)
MAX_BATCH = 1000
#: SEPA's largest amount of one credit transfer (EPC rulebook, AT-04)
MAX_AMOUNT = Decimal("999999999.99")
MAX_NAME, MAX_REMITTANCE = 70, 140
#: a local (non-IBAN) account number: letters and digits, as banks print them
_LOCAL_ACCOUNT = re.compile(r"[A-Za-z0-9]{4,34}")
#: EPC217-08: the characters every SEPA bank must carry
_SEPA = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")
_LETTERS = {"ß": "ss", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe"}
_LETTERS |= {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th"}


@dataclass(frozen=True, slots=True)
class TransferInput:
    """A transfer as the partner sent it (strings, unchecked)."""

    creditor_name: str
    amount: str
    currency: str
    creditor_iban: str | None = None
    creditor_account: str | None = None
    creditor_bic: str | None = None
    remittance: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer that passed every check: what is stored and sent."""

    creditor_name: str
    amount: Decimal
    currency: str
    creditor_iban: str | None
    creditor_account: str | None
    creditor_bic: str | None
    remittance: str | None


class Problems:
    """Collects every problem of a request, then raises them together."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.found.append(f"{message} - at `{path}`")

    def raise_any(self) -> None:
        if self.found:
            first = self.found[0] if len(self.found) == 1 else f"{len(self.found)} problems"
            raise DomainError(ErrorCode.DATA_INVALID, first, {"problems": list(self.found)})


def iban_problem(value: str) -> str | None:
    """Why ``value`` is no valid IBAN (schwifty's own checks), or ``None``."""
    try:
        IBAN(value)
    except SchwiftyException as exc:
        return str(exc) or "invalid IBAN"
    return None


def bic_problem(value: str) -> str | None:
    try:
        BIC(value)
    except SchwiftyException as exc:
        return str(exc) or "invalid BIC"
    return None


def sepa_text(value: str) -> str | None:
    """``value`` in the SEPA character set, transliterated where that is unambiguous; ``None``
    when a character has no unambiguous SEPA form."""
    out: list[str] = []
    for char in value:
        if _SEPA.fullmatch(char):
            out.append(char)
            continue
        if char in _LETTERS:
            out.append(_LETTERS[char])
            continue
        base = "".join(
            c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
        )
        if base and base.isalpha() and _SEPA.fullmatch(base):
            out.append(base)
            continue
        return None
    return "".join(out)


def currency_scale(currency: str) -> int | None:
    """The currency's minor units (ISO 4217, from CLDR), or ``None`` for no currency."""
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        return None
    if not is_currency(currency):
        return None
    return int(get_currency_precision(currency))


@functools.lru_cache(maxsize=16)
def _target2_closed(year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays("XECB", years=year).keys())


def is_target2_day(day: date) -> bool:
    """Whether TARGET2 settles on ``day``: a weekday that is not one of its closing days."""
    return day.weekday() < 5 and day not in _target2_closed(day.year)


def next_target2_day(day: date) -> date:
    while not is_target2_day(day):
        day = date.fromordinal(day.toordinal() + 1)
    return day


def _text(
    problems: Problems, path: str, value: str | None, limit: int, *, required: bool
) -> str | None:
    if value is None or not value.strip():
        if required:
            problems.add(path, "is required")
        return None
    value = " ".join(value.split())
    converted = sepa_text(value)
    if converted is None:
        bad = sorted({c for c in value if sepa_text(c) is None})
        problems.add(
            path,
            "holds characters outside the SEPA character set that have no unambiguous "
            f"Latin form: {''.join(bad)!r}",
        )
        return None
    if len(converted) > limit:
        problems.add(path, f"is longer than {limit} characters")
        return None
    return converted


def _amount(problems: Problems, path: str, value: str, scale: int | None) -> Decimal | None:
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        problems.add(path, f"{value!r} is not a decimal amount")
        return None
    if not amount.is_finite() or amount <= 0:
        problems.add(path, "must be a positive amount")
        return None
    if amount > MAX_AMOUNT:
        problems.add(path, f"must be at most {MAX_AMOUNT}")
        return None
    exponent = amount.as_tuple().exponent
    if scale is not None and isinstance(exponent, int) and -exponent > scale:
        problems.add(path, f"has more decimals than the currency's {scale}")
        return None
    if scale is None:
        return amount
    return amount.quantize(Decimal(1).scaleb(-scale))


def check_transfer(problems: Problems, path: str, given: TransferInput) -> Transfer | None:
    """Every check of one transfer; the checked transfer, or ``None`` with its problems."""
    before = len(problems.found)
    name = _text(problems, f"{path}.creditor_name", given.creditor_name, MAX_NAME, required=True)
    remittance = _text(
        problems, f"{path}.remittance_information", given.remittance, MAX_REMITTANCE, required=False
    )
    currency = given.currency.strip()
    scale = currency_scale(currency)
    if scale is None:
        problems.add(f"{path}.currency", f"{given.currency!r} is not an ISO 4217 currency code")
    amount = _amount(problems, f"{path}.amount", given.amount, scale)
    iban = account = bic = None
    if given.creditor_iban is not None:
        compact = "".join(given.creditor_iban.split()).upper()
        problem = iban_problem(compact)
        if problem:
            problems.add(f"{path}.creditor_iban", problem)
        else:
            iban = str(IBAN(compact).compact)
    if given.creditor_account is not None:
        if given.creditor_iban is not None:
            problems.add(
                f"{path}.creditor_account", "give either creditor_iban or creditor_account"
            )
        elif not _LOCAL_ACCOUNT.fullmatch(given.creditor_account.strip()):
            problems.add(f"{path}.creditor_account", "must be 4 to 34 letters and digits")
        else:
            account = given.creditor_account.strip()
    if given.creditor_iban is None and given.creditor_account is None:
        problems.add(f"{path}.creditor_iban", "creditor_iban or creditor_account is required")
    if given.creditor_bic is not None:
        compact = given.creditor_bic.strip().upper()
        problem = bic_problem(compact)
        if problem:
            problems.add(f"{path}.creditor_bic", problem)
        else:
            bic = compact
    if account is not None and bic is None:
        problems.add(f"{path}.creditor_bic", "is required with a local creditor_account")
    if len(problems.found) > before or name is None or amount is None:
        return None
    return Transfer(name, amount, currency, iban, account, bic, remittance)


def check_execution_date(
    problems: Problems, value: str | None, today: date, *, target2: bool
) -> date | None:
    """A requested execution date: not in the past, and a TARGET2 business day where the
    scheme settles through TARGET2 (euro credit transfers)."""
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        problems.add("$.execution_date", f"{value!r} is not a date (YYYY-MM-DD)")
        return None
    if day < today:
        problems.add("$.execution_date", f"{day.isoformat()} is in the past")
        return None
    if target2 and not is_target2_day(day):
        problems.add(
            "$.execution_date",
            f"{day.isoformat()} is not a TARGET2 business day; the next one is "
            f"{next_target2_day(day).isoformat()}",
        )
        return None
    return day


def check_batch(
    problems: Problems,
    transfers: Sequence[TransferInput],
    *,
    total: str | None,
) -> list[Transfer]:
    """Every transfer of a batch, its count, one currency, and its total (the partner's control
    sum, like pain.001's ``CtrlSum``, when given)."""
    if not transfers:
        problems.add("$.payments", "must hold at least one transfer")
    if len(transfers) > MAX_BATCH:
        problems.add("$.payments", f"holds {len(transfers)} transfers; at most {MAX_BATCH}")
        return []
    checked = [check_transfer(problems, f"$.payments[{i}]", t) for i, t in enumerate(transfers)]
    currencies = {t.currency.strip() for t in transfers}
    if len(currencies) > 1:
        problems.add("$.payments", "every transfer of a batch must be in the same currency")
    valid = [t for t in checked if t is not None]
    if total is not None and len(valid) == len(transfers) and valid:
        try:
            stated = Decimal(total)
        except InvalidOperation:
            problems.add("$.total", f"{total!r} is not a decimal amount")
        else:
            summed = sum((t.amount for t in valid), Decimal(0))
            if stated != summed:
                problems.add("$.total", f"is {stated} but the transfers add up to {summed}")
    return valid
