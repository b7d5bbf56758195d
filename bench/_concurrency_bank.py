"""The concurrency benchmark's bank: every call answers after 200 ms; calls are counted.

Each login's connector state names its number ``n``; the bank then has one account ``acc-<n>``
with the transactions ``tx-<n>-0`` ... (the ones seeded into the database) plus one new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from bankhub.catalogue import Catalogue, Service
from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorInfo,
    CredentialField,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.registry import ConnectorRegistry

CONNECTOR_ID = "bench-slow-bank"
SERVICE_ID = 90_002
LATENCY_SECONDS = 0.2
CURRENCY = "EUR"
#: transactions each login already has in the database (the bank lists them again)
SEEDED = 5


def account_record(n: int) -> AccountRecord:
    return AccountRecord(
        bank_id=f"acc-{n}",
        name="Girokonto",
        type=AccountType.CURRENT,
        currency=CURRENCY,
        balance=Decimal("1000.00"),
        available_balance=Decimal("1000.00"),
    )


def transaction_records(n: int, today: date) -> list[TransactionRecord]:
    """The seeded ones (newest first) and, at index ``SEEDED``, one the database lacks."""
    records = [
        TransactionRecord(
            bank_id=f"tx-{n}-{i}",
            booking_date=today - timedelta(days=i + 1),
            amount=Decimal(-(100 + 7 * i + n % 50)).scaleb(-2),
            currency=CURRENCY,
            description=f"KARTENZAHLUNG REWE MARKT {n} FIL {i}",
            merchant="REWE",
        )
        for i in range(SEEDED)
    ]
    records.append(
        TransactionRecord(
            bank_id=f"tx-{n}-new",
            booking_date=today,
            amount=Decimal("-4.20"),
            currency=CURRENCY,
            description=f"STARBUCKS COFFEE {n}",
            merchant="Starbucks",
        )
    )
    return records


class SlowBank:
    """A sandbox bank that answers every call after ``LATENCY_SECONDS``."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id=CONNECTOR_ID,
        version="1.0",
        credential_fields=(CredentialField("username", "Username"),),
        auth_flows=(AuthFlow.CREDENTIALS,),
        unattended_refreshes_per_day=4,
        history_days=90,
    )
    #: calls answered, all instances together (one process runs them all)
    calls: ClassVar[int] = 0

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context

    async def _answer(self) -> None:
        SlowBank.calls += 1
        await asyncio.sleep(LATENCY_SECONDS)

    def _n(self) -> int:
        state = self.context.state.load()
        if "n" not in state:
            raise SessionExpired("no session")
        return int(state["n"])

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        await self._answer()
        self.context.state.save({"n": int(credentials["username"])})

    async def resume(self, answer: Answer) -> None:
        await self._answer()

    async def open_session(self) -> None:
        await self._answer()
        self._n()

    async def fetch_accounts(self) -> list[AccountRecord]:
        await self._answer()
        return [account_record(self._n())]

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        await self._answer()
        today: date = self.context.clock().date()
        return transaction_records(self._n(), today)


def registry() -> ConnectorRegistry:
    registry = ConnectorRegistry()
    registry.register(CONNECTOR_ID, SlowBank)
    return registry


def catalogue(media_dir: Path) -> Catalogue:
    service = Service(
        id=SERVICE_ID,
        slug="bench-slow-bank",
        name="Bench Slow Bank",
        provider="bankhub",
        type="bank",
        country_code="DE",
        has_balance=True,
        color_primary="000000",
        color_secondary="FFFFFF",
        connector=CONNECTOR_ID,
    )
    return Catalogue([service], media_dir)
