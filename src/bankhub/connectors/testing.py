"""The contract every connector must keep, as a reusable suite.

A connector's tests describe how to log in successfully (credentials, and how to answer each
interaction the bank raises) in a :class:`ContractCase`; :func:`check_contract` then logs in,
reads everything, reopens the session unattended and reads again, checking at each step what the
platform relies on: declared fields, typed outcomes, Decimal amounts, ISO currencies, stable ids,
JSON-only state without credentials, date filters that hold, and an identity key (where the
connector has one) that carries no secret and does not change when the session is reopened.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from bankhub.connectors.base import (
    AccountRecord,
    AccountsCapability,
    Answer,
    ConnectorInfo,
    FieldKind,
    IdentityCapability,
    Interaction,
    MemoryStateStore,
    TransactionRecord,
    TransactionsCapability,
)

_CURRENCY = re.compile(r"^[A-Z]{3}$")

#: builds a connector around a state store (the suite hands in the same store to reopen later)
Build = Callable[[MemoryStateStore], Any]
#: answers one interaction the way a user would
Respond = Callable[[Interaction], Awaitable[Answer]]


class ContractViolation(AssertionError):
    pass


@dataclass
class ContractCase:
    name: str
    build: Build
    credentials: Mapping[str, str]
    respond: Respond | None = None
    #: the most interactions a successful login may take
    max_steps: int = 10
    #: values that must never be written to the connector's state
    secrets: tuple[str, ...] = field(default_factory=tuple)
    unattended: bool = True


@dataclass
class ContractReport:
    accounts: list[AccountRecord]
    transactions: dict[str, list[TransactionRecord]]
    steps: int
    #: what ``identity()`` said after the login (``None`` too when the connector has none)
    identity: str | None = None


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def check_info(info: ConnectorInfo) -> None:
    _check(bool(info.id) and info.id == info.id.strip(), "info.id must be a non-empty name")
    _check(bool(info.version), "info.version is required")
    names = [f.name for f in info.credential_fields]
    _check(len(names) == len(set(names)), "credential field names must be unique")
    _check(all(f.label for f in info.credential_fields), "every credential field needs a label")
    _check(bool(info.auth_flows), "a connector declares at least one auth flow")
    _check(info.unattended_refreshes_per_day >= 0, "unattended refreshes cannot be negative")
    _check(info.history_days > 0, "history_days must be positive")
    _check(0 < info.consent_days <= 180, "consent lasts between 1 and 180 days")


def _check_state(store: MemoryStateStore, secrets: tuple[str, ...]) -> None:
    state = store.load()
    try:
        dumped = json.dumps(state)
    except (TypeError, ValueError) as exc:
        raise ContractViolation(f"connector state must be plain JSON: {exc}") from None
    for secret in secrets:
        _check(secret not in dumped, "a credential was written to the connector state")


def _identity(case: ContractCase, connector: Any, info: ConnectorInfo) -> str | None:
    """The connector's identity key, checked: a non-empty key or ``None``, and never the
    value of a secret credential field (it is kept, hashed, as long as the login)."""
    if not isinstance(connector, IdentityCapability):
        return None
    key = connector.identity()
    _check(key is None or (isinstance(key, str) and bool(key.strip())), "identity() is empty")
    for declared in info.credential_fields:
        value = case.credentials.get(declared.name, "")
        if declared.kind == FieldKind.SECRET and value and key:
            _check(value not in key, "identity() carries a secret credential")
    return key


def _check_account(record: AccountRecord) -> None:
    _check(
        record.balance is None or isinstance(record.balance, Decimal),
        f"{record.name}: balance must be a Decimal (or None when the source states none)",
    )
    _check(
        record.available_balance is None or isinstance(record.available_balance, Decimal),
        f"{record.name}: available_balance must be a Decimal",
    )
    _check(bool(_CURRENCY.match(record.currency)), f"{record.name}: currency must be ISO 4217")
    _check(bool(record.name), "an account needs a name")


def _check_transactions(account: AccountRecord, rows: list[TransactionRecord]) -> None:
    ids = [r.bank_id for r in rows if r.bank_id]
    _check(len(ids) == len(set(ids)), f"{account.name}: bank ids repeat within one answer")
    for row in rows:
        _check(isinstance(row.amount, Decimal), "transaction amounts must be Decimal")
        _check(bool(_CURRENCY.match(row.currency)), "transaction currency must be ISO 4217")
        _check(isinstance(row.booking_date, date), "booking_date must be a date")
        _check(row.description is not None, "description must be a string")


async def _login(case: ContractCase, connector: Any) -> int:
    steps = 0
    call: Awaitable[None] = connector.authenticate(dict(case.credentials))
    while True:
        try:
            await call
            return steps
        except Interaction as interaction:
            steps += 1
            _check(case.respond is not None, f"unexpected interaction {interaction!r}")
            _check(steps <= case.max_steps, "too many interactions for one login")
            assert case.respond is not None  # noqa: S101 - narrowed for the type checker  # nosec B101
            call = connector.resume(await case.respond(interaction))


async def _read(
    connector: Any, since: date | None
) -> tuple[list[AccountRecord], dict[str, list[TransactionRecord]]]:
    _check(isinstance(connector, AccountsCapability), "a connector must list accounts")
    accounts = await connector.fetch_accounts()
    for account in accounts:
        _check_account(account)
    transactions: dict[str, list[TransactionRecord]] = {}
    if isinstance(connector, TransactionsCapability):
        for account in accounts:
            rows = await connector.fetch_transactions(account, since, None)
            _check_transactions(account, rows)
            transactions[account.bank_id or account.name] = rows
    return accounts, transactions


async def check_contract(case: ContractCase) -> ContractReport:
    """Run the whole contract for one successful login; raises :class:`ContractViolation`."""
    store = MemoryStateStore()
    connector = case.build(store)
    check_info(type(connector).info)
    steps = await _login(case, connector)
    _check_state(store, case.secrets)
    identity = _identity(case, connector, type(connector).info)
    accounts, transactions = await _read(connector, None)
    _check(bool(accounts), "a successful login sees at least one account")

    # Date filters hold: a window returns a subset, all inside the window.
    for account in accounts:
        rows = transactions.get(account.bank_id or account.name, [])
        if not rows or not isinstance(connector, TransactionsCapability):
            continue
        newest = max(r.booking_date for r in rows)
        since, until = newest - timedelta(days=30), newest - timedelta(days=1)
        window = await connector.fetch_transactions(account, since, until)
        _check(
            all(since <= r.booking_date <= until for r in window),
            f"{account.name}: fetch_transactions returned rows outside since/until",
        )
        inside = {r.bank_id for r in rows if r.bank_id and since <= r.booking_date <= until}
        _check(
            inside <= {r.bank_id for r in window if r.bank_id},
            f"{account.name}: a window dropped rows that the full read had",
        )

    if case.unattended:
        # A fresh instance with only the saved state reopens the session and sees the same ids.
        again = case.build(MemoryStateStore(store.load()))
        await again.open_session()
        _check_state(store, case.secrets)
        accounts_again, transactions_again = await _read(again, None)
        reopened = _identity(case, again, type(again).info)
        _check(
            reopened is None or reopened == identity,
            "a reopened session names another identity than the login did",
        )
        _check(
            {a.bank_id for a in accounts_again} == {a.bank_id for a in accounts},
            "account ids changed between two reads of the same session",
        )
        for key, rows in transactions.items():
            booked = {r.bank_id for r in rows if r.bank_id and r.status == "booked"}
            again_ids = {r.bank_id for r in transactions_again.get(key, []) if r.bank_id}
            _check(booked <= again_ids, "booked transaction ids changed between two reads")
    return ContractReport(accounts, transactions, steps, identity)
