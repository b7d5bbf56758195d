"""What a statement file holds, independent of its format."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Literal

from bankhub.connectors.base import AccountRecord, AccountType, TransactionRecord

#: what is wrong with a file, in the terms the end user's page words it (the connect page's
#: upload step says each in the user's language, with what to do; the message stays the
#: technical detail, in English, for a developer or the bank's support)
Problem = Literal[
    "empty", "no_transactions", "too_large", "unknown_format", "no_currency", "unreadable"
]


class StatementError(ValueError):
    """The file is not a statement bankhub can read; the message says what is wrong and where."""

    def __init__(
        self, message: str, *, format: str | None = None, problem: Problem = "unreadable"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.format = format
        self.problem: Problem = problem


@dataclass(frozen=True, slots=True)
class StatementAccount:
    """One account found in a file, with its transactions and the balances the file states.

    ``transactions`` carry the bank's own id in ``bank_id`` when the format has one that is
    unique per account (OFX FITID, camt AcctSvcrRef/NtryRef, MT940 bank reference when it is
    not ``NONREF``); otherwise ``bank_id`` is None and bankhub dedupes on a fingerprint.
    """

    currency: str
    number: str | None = None
    iban: str | None = None
    #: BIC, bank code (BLZ), routing number or OFX BANKID when the file gives one
    bank_code: str | None = None
    name: str | None = None
    holder_name: str | None = None
    type: AccountType = AccountType.CURRENT
    opening_balance: Decimal | None = None
    opening_date: date | None = None
    closing_balance: Decimal | None = None
    closing_date: date | None = None
    available_balance: Decimal | None = None
    transactions: tuple[TransactionRecord, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """How the account is named to the user: IBAN, else number, with the currency."""
        return f"{self.iban or self.number or self.name or '?'} {self.currency}"

    def to_account_record(self) -> AccountRecord:
        """The account as a sync stores it. Its balance is the newest balance the file states,
        with its date: the closing balance, or the opening balance of a file that holds no
        bookings after it. Otherwise None: an opening balance (or 0) plus the file's rows is not
        a balance, because the file need not hold every booking."""
        ident = self.iban or self.number
        balance, day = self.closing_balance, self.closing_date
        if balance is None and not self.transactions:
            balance, day = self.opening_balance, self.opening_date
        return AccountRecord(
            bank_id=f"{ident}:{self.currency}" if ident else None,
            name=self.name or (f"Account {ident[-4:]}" if ident else "Imported account"),
            type=self.type,
            currency=self.currency,
            balance=balance,
            available_balance=self.available_balance,
            number=self.number,
            iban=self.iban,
            holder_name=self.holder_name,
            balance_date=day,
        )


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """A whole file: its detected format (``ofx``, ``camt.053``, ``mt940``, ``csv:dkb``...)."""

    format: str
    accounts: tuple[StatementAccount, ...]
