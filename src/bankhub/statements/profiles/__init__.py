"""Bank export layouts as data: one YAML file per layout in this folder, checked when loaded.

Adding a bank is adding a file; nothing in the code names a bank. The schema is
:class:`ProfileSpec` (documented field by field in ``docs/statements.md``); a file with an
unknown key, a wrong type, a column named for two roles or an impossible sign rule is refused
when bankhub starts, with the file's name and the field at fault, so a broken profile never
reaches an import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
import yaml

from bankhub.connectors.base import AccountType, TransactionStatus

Column = str | int
FOLDER = Path(__file__).resolve().parent


class ProfileError(ValueError):
    """A profile file breaks the schema; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Profile:
    """How one export layout is read. Columns are header names, or 0-based positions."""

    id: str
    columns: tuple[str, ...]  # header cells that identify the layout (all must be present)
    date: Column
    description: tuple[Column, ...]
    amount: Column | None = None
    debit: Column | None = None  # an outflow column, when the layout splits debit and credit
    credit: Column | None = None
    #: a column saying whether an unsigned ``amount`` is a debit or a credit, and its values
    indicator: Column | None = None
    debit_values: tuple[str, ...] = ()
    credit_values: tuple[str, ...] = ()
    #: the export shows money out as positive (card statements); bankhub's debits are negative
    negate: bool = False
    delimiter: str = ";"
    date_format: str = "%d.%m.%Y"
    decimal: str = ","
    thousands: str = "."
    currency: Column | None = None
    fixed_currency: str | None = None
    value_date: Column | None = None
    merchant: Column | None = None
    #: the counterparty column for outflows, when it differs from ``merchant`` (inflows)
    merchant_debit: Column | None = None
    #: the counterparty's IBAN or account number
    counterparty_account: Column | None = None
    bank_id: Column | None = None
    account: Column | None = None  # a column naming the account's IBAN, when there is one
    status: Column | None = None
    statuses: tuple[tuple[str, TransactionStatus], ...] = ()
    #: the balance after each row; gives opening and closing balances
    running_balance: Column | None = None
    #: the amount must equal the sum of these two columns (gross + fee)
    sum_of: tuple[Column, Column] | None = None
    #: a text column some rows of this export leave out (they have one field fewer)
    optional: str | None = None
    meta: tuple[tuple[Column, str], ...] = ()
    #: labelled rows before the header: (label pattern, field); fields: account, iban, name,
    #: holder, balance (the label pattern's group 1 is the balance date), closing (a row, above
    #: the header or below the data, of label, date and balance)
    preamble: tuple[tuple[str, str], ...] = ()
    name: str | None = None
    iban: str | None = None
    number: str | None = None
    account_type: AccountType = AccountType.CURRENT
    header_row: bool = True
    skip_rows: int = 0
    encoding: str | None = None
    #: for a layout without a header row: one pattern per cell that its first row must match
    row_match: tuple[str, ...] = ()
    #: rows whose amount is empty are not transactions (a summary or opening-balance line)
    skip_without_amount: bool = False
    #: a row whose first cell matches this pattern ends the transactions (a totals row)
    footer: str | None = None
    file: Literal["csv", "xlsx"] = "csv"
    bank: str = ""
    country: str = ""


class PreambleSpec(msgspec.Struct, forbid_unknown_fields=True):
    label: str
    field: Literal["account", "iban", "name", "holder", "balance", "closing"]


class ProfileSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One profile file. Column names are header cells as written (surrounding spaces and
    quotes removed); positions (0-based integers) where the layout has no header row."""

    id: str
    bank: str
    country: str
    date: Column
    file: Literal["csv", "xlsx"] = "csv"
    header: list[str] = []
    row_match: list[str] = []
    delimiter: str = ";"
    encoding: str | None = None
    skip_rows: int = 0
    date_format: str = "%d.%m.%Y"
    decimal: str = ","
    thousands: str = "."
    amount: Column | None = None
    debit: Column | None = None
    credit: Column | None = None
    indicator: Column | None = None
    debit_values: list[str] = []
    credit_values: list[str] = []
    negate: bool = False
    skip_without_amount: bool = False
    footer: str | None = None
    currency: Column | None = None
    fixed_currency: str | None = None
    value_date: Column | None = None
    description: list[Column] = []
    counterparty: Column | None = None
    counterparty_debit: Column | None = None
    counterparty_account: Column | None = None
    bank_id: Column | None = None
    account: Column | None = None
    status: Column | None = None
    statuses: dict[str, Literal["booked", "pending"]] = {}
    balance: Column | None = None
    sum_of: list[Column] = []
    optional: str | None = None
    meta: dict[str, str] = {}
    preamble: list[PreambleSpec] = []
    name: str | None = None
    account_type: Literal["current", "savings", "credit_card", "other"] = "current"


_DATE_FORMAT = re.compile(r"(?:%[dmYyb]|[^%])+")


def _check(spec: ProfileSpec) -> None:
    def fail(message: str) -> None:
        raise ProfileError(f"profile {spec.id!r}: {message}")

    if not re.fullmatch(r"[a-z0-9_]+", spec.id):
        fail("the id must be lower-case letters, digits and underscores")
    if spec.file == "csv" and len(spec.delimiter) != 1:
        fail(f"the delimiter {spec.delimiter!r} is not one character")
    if not spec.header and not spec.row_match:
        fail("needs a header (the cells that identify it) or a row_match for a headerless layout")
    if spec.header and spec.row_match:
        fail("has both a header and a row_match")
    if spec.row_match and any(not isinstance(c, int) for c in _columns(spec)):
        fail("a layout without a header row names its columns by position")
    signs = sum((spec.amount is not None, spec.debit is not None or spec.credit is not None))
    if signs != 1:
        fail("needs exactly one of amount, or debit/credit columns")
    if (spec.indicator is None) != (not spec.debit_values and not spec.credit_values):
        fail("an indicator column needs debit_values and credit_values, and they need it")
    if spec.indicator is not None and spec.amount is None:
        fail("an indicator column signs the amount column")
    if (spec.currency is None) == (spec.fixed_currency is None):
        fail("needs either a currency column or a fixed_currency")
    if spec.fixed_currency is not None and not re.fullmatch(r"[A-Z]{3}", spec.fixed_currency):
        fail(f"fixed_currency {spec.fixed_currency!r} is not an ISO 4217 code")
    if not _DATE_FORMAT.fullmatch(spec.date_format):
        fail(f"date_format {spec.date_format!r} uses directives other than %d %m %Y %y %b")
    if spec.decimal == spec.thousands:
        fail("the decimal and thousands separators must differ")
    if spec.status is not None and not spec.statuses:
        fail("a status column needs its statuses")
    if spec.sum_of and len(spec.sum_of) != 2:
        fail("sum_of names two columns")
    footer = [spec.footer] if spec.footer is not None else []
    for pattern in [*spec.row_match, *(p.label for p in spec.preamble), *footer]:
        try:
            re.compile(pattern)
        except re.error as exc:
            fail(f"{pattern!r} is not a regular expression: {exc}")


def _columns(spec: ProfileSpec) -> list[Column]:
    roles = (
        spec.date, spec.amount, spec.debit, spec.credit, spec.indicator, spec.currency,
        spec.value_date, spec.counterparty, spec.counterparty_debit, spec.counterparty_account,
        spec.bank_id, spec.account, spec.status, spec.balance,
    )  # fmt: skip
    return [c for c in (*roles, *spec.description) if c is not None]


def to_profile(spec: ProfileSpec) -> Profile:
    _check(spec)
    return Profile(
        id=spec.id,
        columns=tuple(spec.header),
        date=spec.date,
        description=tuple(spec.description),
        amount=spec.amount,
        debit=spec.debit,
        credit=spec.credit,
        indicator=spec.indicator,
        debit_values=tuple(spec.debit_values),
        credit_values=tuple(spec.credit_values),
        negate=spec.negate,
        delimiter=spec.delimiter,
        date_format=spec.date_format,
        decimal=spec.decimal,
        thousands=spec.thousands,
        currency=spec.currency,
        fixed_currency=spec.fixed_currency,
        value_date=spec.value_date,
        merchant=spec.counterparty,
        merchant_debit=spec.counterparty_debit,
        counterparty_account=spec.counterparty_account,
        bank_id=spec.bank_id,
        account=spec.account,
        status=spec.status,
        statuses=tuple((k, TransactionStatus(v)) for k, v in spec.statuses.items()),
        running_balance=spec.balance,
        sum_of=(spec.sum_of[0], spec.sum_of[1]) if spec.sum_of else None,
        optional=spec.optional,
        meta=tuple((k, v) for k, v in spec.meta.items()),
        preamble=tuple((p.label, p.field) for p in spec.preamble),
        name=spec.name,
        account_type=AccountType(spec.account_type),
        header_row=not spec.row_match,
        skip_rows=spec.skip_rows,
        encoding=spec.encoding,
        row_match=tuple(spec.row_match),
        skip_without_amount=spec.skip_without_amount,
        footer=spec.footer,
        file=spec.file,
        bank=spec.bank,
        country=spec.country,
    )


def load(path: Path) -> Profile:
    """One profile file, checked against the schema."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = msgspec.convert(raw, ProfileSpec, strict=True)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ProfileError(f"{path.name}: {exc}") from None
    if spec.id != path.stem:
        raise ProfileError(f"{path.name}: the id {spec.id!r} is not the file's name")
    return to_profile(spec)


def load_all(folder: Path = FOLDER) -> tuple[Profile, ...]:
    return tuple(load(path) for path in sorted(folder.glob("*.yaml")))


__all__ = ["FOLDER", "Profile", "ProfileError", "ProfileSpec", "load", "load_all", "to_profile"]
