"""The ingest benchmark's data: transaction records built in memory, a connector that serves
them instantly, its catalogue entry, and the rows bankhub stores for them (for the baseline).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from bankhub.accounts.details import RowKeys, masked, seal
from bankhub.catalogue import Catalogue, Service
from bankhub.categories import categorize
from bankhub.connectors.base import (
    AccountRecord,
    AccountType,
    Answer,
    AuthFlow,
    Connector,
    ConnectorContext,
    ConnectorInfo,
    CredentialField,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.registry import ConnectorRegistry
from bankhub.security.crypto import Cipher
from bankhub.sync.engine import TRANSACTION_COLUMNS, _normal_text, fingerprint

CONNECTOR_ID = "bench-ingest"
SERVICE_ID = 90_001
CURRENCY = "EUR"
HISTORY_DAYS = 730

#: (merchant, description stem, sign, typical amount in cents): known shops, bills, income,
#: transfers and some text no rule knows (the categorizer then reads every token)
_MERCHANTS: tuple[tuple[str | None, str, int, int], ...] = (
    ("Tesco", "CARD PAYMENT TESCO STORES {n} LONDON", -1, 4_250),
    ("Lidl", "KARTENZAHLUNG LIDL DIENSTLEISTUNG FIL {n} BERLIN", -1, 3_180),
    ("Uber", "UBER *TRIP HELP.UBER.COM {n}", -1, 1_870),
    ("Netflix", "NETFLIX.COM {n} AMSTERDAM", -1, 1_299),
    ("Shell", "SHELL TANKSTELLE {n} MUENCHEN", -1, 6_420),
    ("Amazon", "AMAZON MKTPLACE PMTS {n} AMZN.CO.UK", -1, 2_799),
    ("Starbucks", "STARBUCKS COFFEE {n} PARIS", -1, 540),
    ("Deutsche Bahn", "DB VERTRIEB GMBH FAHRKARTE {n}", -1, 8_900),
    ("Vodafone", "LASTSCHRIFT VODAFONE GMBH MOBILFUNK RECHNUNG {n}", -1, 3_999),
    ("Airbnb", "AIRBNB * HMQ{n} SAN FRANCISCO", -1, 31_500),
    ("Apotheke am Markt", "APOTHEKE AM MARKT {n}", -1, 1_645),
    (None, "GEHALT ACME GMBH LOHN/GEHALT {n}", 1, 325_000),
    (None, "SALARY PAYMENT ACME LTD REF {n}", 1, 280_000),
    (None, "SEPA UEBERWEISUNG AN MAX MUSTERMANN {n}", -1, 15_000),
    (None, "STANDING ORDER RENT FLAT 2B {n}", -1, 95_000),
    (None, "KONTOFUEHRUNGSENTGELT {n}", -1, 690),
    (None, "POS {n} KIOSK NR 7 HAUPTBAHNHOF", -1, 350),
    (None, "VERWENDUNGSZWECK {n} BELEG 8841 XYZ TRADING CO", -1, 12_990),
    ("Zalando", "ZALANDO SE {n} BERLIN", -1, 8_995),
    ("Spotify", "SPOTIFY P{n} STOCKHOLM", -1, 999),
)


@dataclass(frozen=True, slots=True)
class Dataset:
    accounts: list[AccountRecord]
    #: the records of each account, by the account's bank id
    transactions: dict[str, list[TransactionRecord]]

    @property
    def rows(self) -> int:
        return sum(len(records) for records in self.transactions.values())


def build_dataset(accounts: int, per_account: int, today: date, seed: int = 20261120) -> Dataset:
    """``accounts`` × ``per_account`` records over the last two years, newest first."""
    rng = random.Random(seed)  # noqa: S311 - test data
    account_records: list[AccountRecord] = []
    transactions: dict[str, list[TransactionRecord]] = {}
    for a in range(accounts):
        bank_id = f"acc-{a:04d}"
        account_records.append(
            AccountRecord(
                bank_id=bank_id,
                name=f"Girokonto {a}",
                type=AccountType.CURRENT,
                currency=CURRENCY,
                balance=Decimal("1234.56"),
                available_balance=Decimal("1234.56"),
                iban=f"DE89 3704 0044 {a:04d} 1320 13",
            )
        )
        records: list[TransactionRecord] = []
        for i in range(per_account):
            merchant, stem, sign, cents = _MERCHANTS[rng.randrange(len(_MERCHANTS))]
            amount = Decimal(sign * max(1, int(cents * rng.uniform(0.3, 1.7)))).scaleb(-2)
            booked = today - timedelta(days=(i * HISTORY_DAYS) // per_account)
            pending = i < 3 and sign < 0
            records.append(
                TransactionRecord(
                    bank_id=f"tx-{a:04d}-{i:07d}",
                    booking_date=booked,
                    amount=amount,
                    currency=CURRENCY,
                    description=stem.format(n=rng.randrange(10_000_000)),
                    value_date=booked,
                    merchant=merchant,
                    status=TransactionStatus.PENDING if pending else TransactionStatus.BOOKED,
                )
            )
        transactions[bank_id] = records
    return Dataset(account_records, transactions)


# --- the connector ------------------------------------------------------------------------------


class IngestConnector:
    """Serves the prepared lists instantly: what is timed is bankhub, not a bank."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id=CONNECTOR_ID,
        version="1.0",
        credential_fields=(CredentialField("username", "Username"),),
        auth_flows=(AuthFlow.CREDENTIALS,),
        unattended_refreshes_per_day=4,
        history_days=HISTORY_DAYS,
    )

    def __init__(self, context: ConnectorContext, dataset: Dataset) -> None:
        self.context = context
        self.dataset = dataset

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        self.context.state.save({"session": "bench"})

    async def resume(self, answer: Answer) -> None:
        return None

    async def open_session(self) -> None:
        return None

    async def fetch_accounts(self) -> list[AccountRecord]:
        return self.dataset.accounts

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        return self.dataset.transactions[account.bank_id or ""]


class IngestFactory:
    """A connector factory that carries the data set (and the ``info`` the registry reads)."""

    info: ClassVar[ConnectorInfo] = IngestConnector.info

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __call__(self, context: ConnectorContext) -> Connector:
        return IngestConnector(context, self.dataset)


def registry_for(dataset: Dataset) -> ConnectorRegistry:
    registry = ConnectorRegistry()
    registry.register(CONNECTOR_ID, IngestFactory(dataset))
    return registry


def service() -> Service:
    return Service(
        id=SERVICE_ID,
        slug="bench-ingest-bank",
        name="Bench Ingest Bank",
        provider="bankhub",
        type="bank",
        country_code="DE",
        has_balance=True,
        color_primary="000000",
        color_secondary="FFFFFF",
        connector=CONNECTOR_ID,
    )


def catalogue(media_dir: Path) -> Catalogue:
    return Catalogue([service()], media_dir)


# --- the rows bankhub stores (the baseline inserts exactly these) -------------------------------

#: exactly the columns the sync engine writes for a new transaction
COLUMNS = TRANSACTION_COLUMNS


def stored_rows(
    dataset: Dataset,
    app_id: int,
    account_ids: Mapping[str, int],
    now: datetime,
    dialect: str,
    box: Cipher,
    keys: RowKeys,
) -> list[tuple[Any, ...]]:
    """The ``transactions`` rows bankhub writes for the data set on its first fetch, computed
    with bankhub's own fingerprint, keyed hashes, categorizer and sealing (the details in an
    envelope of the same size as bankhub's), encoded as the dialect stores them."""
    sqlite = dialect == "sqlite"
    stamp: Any = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
    rows: list[tuple[Any, ...]] = []
    for bank_id, records in dataset.transactions.items():
        account_id = account_ids[bank_id]
        occurrences: dict[tuple[date, Decimal, str, str], int] = {}
        for record in records:
            ident = (
                record.booking_date,
                record.amount.normalize(),
                record.currency,
                _normal_text(record.description),
            )
            n = occurrences.get(ident, 0)
            occurrences[ident] = n + 1
            fp = keys.fingerprint(fingerprint(record, n))
            category = categorize(
                record.description, record.merchant, record.amount, record.category
            )
            dedupe_key = keys.bank_key(record.bank_id or "")
            fields = masked(
                record.bank_id or "",
                record.description,
                record.merchant,
                dict(record.meta) if record.meta else None,
            )
            booked, valued = record.booking_date, record.value_date
            rows.append(
                (
                    app_id,
                    account_id,
                    dedupe_key,
                    fp,
                    seal(box, app_id, account_id, dedupe_key, fields),
                    booked.isoformat() if sqlite else booked,
                    (valued.isoformat() if sqlite else valued) if valued else None,
                    format(record.amount, "f") if sqlite else record.amount,
                    record.currency,
                    category,
                    str(record.status),
                    None,
                    stamp,
                    stamp,
                )
            )
    return rows
