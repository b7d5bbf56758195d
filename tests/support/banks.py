"""A connector whose bank answers what the test wrote down, and a catalogue entry for it.

For engine and sync tests that need a bank with particular data (a named counterparty,
notices, texts that change between two answers) and no protocol around it. A test subclasses
:class:`ScriptedBank` with its own ``info`` (the connector id it registers) and data::

    class NamingBank(ScriptedBank):
        info = ConnectorInfo("naming", "1", (), (AuthFlow.CREDENTIALS,))
        transactions = (TransactionRecord("t1", ...),)

    harness.hub.registry.register("naming", NamingBank)
    run = harness.hub.engine.build(service_for("naming"))

Logging in always succeeds; every account gets the same ``transactions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import ClassVar

from bankhub.catalogue import Service
from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorInfo,
    TransactionRecord,
)


class ScriptedBank:
    info: ClassVar[ConnectorInfo] = ConnectorInfo("scripted", "1", (), (AuthFlow.CREDENTIALS,))
    accounts: ClassVar[tuple[AccountRecord, ...]] = (
        AccountRecord("a1", "Main", AccountType.CURRENT, "EUR", Decimal("0.00")),
    )
    transactions: ClassVar[tuple[TransactionRecord, ...]] = ()

    def __init__(self, context: ConnectorContext) -> None:
        #: what the engine built the connector with, for tests of the engine's options
        self.context = context

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        return None

    async def resume(self, answer: Answer) -> None:
        return None

    async def open_session(self) -> None:
        return None

    async def fetch_accounts(self) -> list[AccountRecord]:
        return list(self.accounts)

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        return list(self.transactions)


def service_for(connector_id: str) -> Service:
    """Service 1 of the catalogue, served by ``connector_id``."""
    return Service(1, "x", "X", "bankhub", "bank", "DE", True, "000000", "FFFFFF", connector_id)
