"""Sync: run a connector (outside any database transaction), then apply what it fetched.

Fetching and applying are separate on purpose: a slow bank never holds a database write lock,
and a failed fetch changes nothing but the login's status. Applying is idempotent: transactions
are unique per account on the bank's id, or on a content fingerprint when the bank gives none,
and the fingerprint also finds rows again when a bank re-mints its ids.
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import logging
import time
import unicodedata
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import httpx
import msgspec
from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.accounts import changes as changes_log
from bankhub.accounts import details
from bankhub.accounts.models import Account, Transaction
from bankhub.catalogue import Catalogue, Service
from bankhub.categories import Keywords, categorize
from bankhub.clock import Clock, as_utc
from bankhub.config import Settings
from bankhub.connectors.base import (
    AccountRecord,
    AccountsCapability,
    AuthFlow,
    Connector,
    ConnectorContext,
    ConnectorFailure,
    ConsentCapability,
    MemoryStateStore,
    NoticesCapability,
    ProviderUnavailable,
    RateLimited,
    ReadLimitCapability,
    RevokeCapability,
    TransactionRecord,
    TransactionsCapability,
    TransactionStatus,
)
from bankhub.connectors.registry import ConnectorRegistry
from bankhub.connectors.xs2a.signing import RequestSigner
from bankhub.db import bulk
from bankhub.db.engine import note_growth
from bankhub.events import services as events
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.security.crypto import Cipher, associated_data
from bankhub.security.eidas import CredentialCache, EidasError
from bankhub.security.pan import mask_optional, mask_pans
from bankhub.security.secrets import SecretHasher
from bankhub.security.tls import InstitutionClients
from bankhub.sync import counterparty
from bankhub.sync.category_rules import app_category_rules

T = TypeVar("T")
log = logging.getLogger("bankhub.sync")

ACCOUNT_MATCH = "account-match"
#: how far back a refresh re-reads, so that pending items that booked late are seen
REFRESH_OVERLAP = timedelta(days=30)


@dataclass(slots=True)
class FetchedAccount:
    record: AccountRecord
    transactions: list[TransactionRecord]


@dataclass(slots=True)
class FetchResult:
    accounts: list[FetchedAccount]
    since: date | None
    state: dict[str, Any]
    consent_expires_at: datetime | None
    #: what a NoticesCapability connector attached to this read; None when it has no notices
    notices: list[str] | None = None
    #: when the bank lets the login be read again, if this read used up its limit
    not_before: datetime | None = None


@dataclass(slots=True)
class ApplySummary:
    account_ids: list[int] = field(default_factory=list)
    new_account_ids: list[int] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    removed: int = 0
    #: transactions the fetch held (those not inserted were stored already, or listed twice)
    received: int = 0


@dataclass(slots=True)
class ConnectorRun:
    """A connector with its in-memory state store, built for one run."""

    connector: Connector
    state: MemoryStateStore
    service: Service


def _normal_text(text: str) -> str:
    # NFKC leaves ASCII as it is, and casefold() of ASCII is lower()
    folded = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


def fingerprint(record: TransactionRecord, occurrence: int) -> str:
    """Content digest of a transaction: same day, amount, currency, text and occurrence.

    Not stored as it is: a plain digest of a guessable text is a reversible form of it. What
    is stored is ``accounts.details.RowKeys``' keyed hash of this digest (the digest first, so
    that rows stored before the keyed hash existed get theirs from their stored digest alone).
    """
    return _fingerprint(
        record, record.amount.normalize(), _normal_text(record.description), occurrence
    )


def _fingerprint(record: TransactionRecord, amount: Decimal, text: str, occurrence: int) -> str:
    """:func:`fingerprint` with the normalized amount and text already at hand."""
    raw = f"{record.booking_date.isoformat()}|{amount:f}|{record.currency}|{text}|{occurrence}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


class Turns:
    """Keeps each turn of a long piece of CPU work on the event loop short: ``due()`` says when
    the work has had the loop for ``TURN_SECONDS``, and the caller then awaits ``give()``, so
    that the requests served beside a big sync (the connect page's progress polls) wait for at
    most one short turn at each of their own steps."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.started >= TURN_SECONDS

    async def give(self) -> None:
        await asyncio.sleep(0)
        self.started = time.perf_counter()


def login_state(cipher: Cipher, login: Login) -> dict[str, Any]:
    """A login's connector state (encrypted at rest; plain only in rows not yet rewrapped)."""
    if login.connector_state_enc:
        aad = associated_data(login.app_id, "logins", "connector_state", login.id)
        state: dict[str, Any] = json.loads(cipher.decrypt(login.connector_state_enc, aad))
        return state
    return dict(login.connector_state or {})


def mask_number(value: str | None) -> str | None:
    if not value:
        return None
    compact = "".join(value.split())
    return "•••• " + compact[-4:] if len(compact) > 4 else "••••"


#: what a new transaction row is made of (``id`` comes from the database)
TRANSACTION_COLUMNS = (
    "app_id",
    "account_id",
    "dedupe_key",
    "fingerprint",
    "details_enc",
    "date",
    "value_date",
    "amount",
    "currency",
    "category",
    "status",
    "pending_transaction_id",
    "fetched_at",
    "created_at",
)
CHANGE_COLUMNS = ("app_id", "account_id", "transaction_id", "kind", "changed_at")
TOUCH_BATCH = 500
#: rows per bulk insert (executemany on SQLite, COPY on PostgreSQL)
INSERT_BATCH = 2_000
#: records handled between two looks at the clock, and the longest turn a sync takes on the
#: event loop before it lets other requests in
SLICE = 32
TURN_SECONDS = 0.001
#: how far a booked item's amount may differ from its pending one (tips, currency conversion)
PENDING_AMOUNT_TOLERANCE = Decimal("0.30")
PENDING_DAYS_BEFORE = 2
PENDING_DAYS_AFTER = 10
PENDING_MIN_SIMILARITY = 0.6

# The statements every refresh sends, built once with their values as parameters: one built per
# call costs its construction and its cache key each time (SQLAlchemy keeps a statement's key on
# the statement object), a tenth of a refresh's CPU at scale (bench/README.md, "Refresh").
_LOGIN_ACCOUNTS = select(Account).where(Account.login_id == bindparam("login_id"))
_WINDOW = select(
    Transaction.id,
    Transaction.dedupe_key,
    Transaction.fingerprint,
    Transaction.status,
    Transaction.amount,
    Transaction.currency,
    Transaction.date,
    Transaction.details_enc,
).where(Transaction.account_id == bindparam("account_id"), Transaction.date >= bindparam("low"))
_TOUCH = (
    update(Transaction)
    .where(Transaction.id.in_(bindparam("ids", expanding=True)))
    .values(fetched_at=bindparam("seen_at", type_=Transaction.__table__.c.fetched_at.type))
    .execution_options(synchronize_session=False)
)


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, _normal_text(a), _normal_text(b)).ratio()


@dataclass(frozen=True, slots=True)
class Vanished:
    """A stored pending item the bank no longer lists, with its details opened."""

    id: int
    date: date
    amount: Decimal
    details: details.Details


def _reworded(
    rows: list[Any],
    claimed: set[int],
    incoming_keys: set[str],
    new_rows: list[dict[str, Any]],
    new_records: list[TransactionRecord],
) -> list[tuple[Any, TransactionRecord, str, str]]:
    """Booked items a bank without ids gave again in other words, paired with their rows.

    Such an item is known only by its content fingerprint, which includes its text: when the
    text changes (the bank completes it later, or a new version of bankhub's reader keeps words
    the old one dropped) the item would be stored a second time. A booked row keyed by content
    that the answer no longer lists is the same booking as a new booked record without a bank
    id of the same day, amount and currency; they are paired in the order the bank lists them
    and the order they were stored. The pairs are taken out of ``new_rows``/``new_records``
    (in place); pending items are left to :func:`link_pending`.
    """
    Group = tuple[date, Decimal, str]
    gone: dict[Group, list[Any]] = {}
    for row in rows:
        if (
            row.id not in claimed
            and row.status == TransactionStatus.BOOKED
            and row.dedupe_key.startswith(details.FINGERPRINT_KEY)
            and row.dedupe_key not in incoming_keys
        ):
            gone.setdefault((row.date, row.amount.normalize(), row.currency), []).append(row)
    if not gone:
        return []
    for rows_of_group in gone.values():
        rows_of_group.sort(key=lambda row: row.id)
    pairs: list[tuple[Any, TransactionRecord, str, str]] = []
    kept = 0
    for new_row, record in zip(list(new_rows), list(new_records), strict=True):
        waiting: list[Any] | None = (
            gone.get((record.booking_date, record.amount.normalize(), record.currency))
            if record.bank_id is None and record.status == TransactionStatus.BOOKED
            else None
        )
        if waiting:
            pairs.append((waiting.pop(0), record, new_row["fingerprint"], new_row["dedupe_key"]))
            continue
        new_rows[kept], new_records[kept] = new_row, record
        kept += 1
    del new_rows[kept:], new_records[kept:]
    return pairs


def link_pending(
    new_rows: list[dict[str, Any]], records: list[TransactionRecord], vanished: list[Vanished]
) -> None:
    """Set ``pending_transaction_id`` on new booked rows that replace a vanished pending item.

    A booked item matches a pending one when it is booked from 2 days before to 10 days after
    it, its amount is within 30 % (same sign), and its text (or merchant) is alike (compared as
    stored: card numbers masked). Each pending item links to its best match only, best first.
    """
    if not vanished:
        for row in new_rows:
            row.setdefault("pending_transaction_id", None)
        return
    candidates: list[tuple[float, int, int]] = []
    for index, (row, record) in enumerate(zip(new_rows, records, strict=True)):
        if row["status"] != TransactionStatus.BOOKED:
            continue
        description, merchant = mask_pans(record.description), mask_optional(record.merchant)
        for pending in vanished:
            days = (row["date"] - pending.date).days
            if not -PENDING_DAYS_BEFORE <= days <= PENDING_DAYS_AFTER:
                continue
            amount, was = row["amount"], pending.amount
            if was == 0 or (amount < 0) != (was < 0):
                continue
            drift = abs(amount - was) / abs(was)
            if drift > PENDING_AMOUNT_TOLERANCE:
                continue
            same_merchant = bool(merchant) and merchant == pending.details.merchant
            alike = _similarity(description, pending.details.description)
            if not same_merchant and alike < PENDING_MIN_SIMILARITY:
                continue
            score = alike + (0.5 if same_merchant else 0.0) - float(drift) - abs(days) / 30
            candidates.append((score, index, pending.id))
    taken_rows: set[int] = set()
    taken_pending: set[int] = set()
    for _, index, pending_id in sorted(candidates, reverse=True):
        if index in taken_rows or pending_id in taken_pending:
            continue
        new_rows[index]["pending_transaction_id"] = pending_id
        taken_rows.add(index)
        taken_pending.add(pending_id)
    for row in new_rows:
        row.setdefault("pending_transaction_id", None)


def _take_balance(account: Account, record: AccountRecord) -> None:
    """Store the record's balance unless it states none, or states it for an older day than
    the stored one (an older statement file imported after a newer one). The available
    balance travels with the balance it was stated with."""
    if record.balance is None:
        return
    stored = account.balance_date
    if stored is not None and record.balance_date is not None and record.balance_date < stored:
        return
    account.balance = record.balance
    account.available_balance = record.available_balance
    account.balance_date = record.balance_date


class SyncEngine:
    """Builds connectors for services and runs fetch/apply for the connect page and refreshes."""

    def __init__(
        self,
        settings: Settings,
        registry: ConnectorRegistry,
        catalogue: Catalogue,
        clock: Clock,
        hasher: SecretHasher,
        http: httpx.AsyncClient,
        box: Cipher,
    ) -> None:
        self.box = box
        #: keyed hashes of transactions' bank ids and contents (their dedupe keys)
        self.keys = details.RowKeys(hasher)
        self.settings = settings
        self.registry = registry
        self.catalogue = catalogue
        self.clock = clock
        self.hasher = hasher
        self.http = http
        #: S31: an institution whose catalogue entry names a ``ca_bundle`` gets a client trusting it
        self.clients = InstitutionClients(
            http, settings.connector_timeout_seconds, settings.ca_bundle
        )
        #: the QWAC and QSealC each XS2A bank is reached with (security/eidas.py)
        self.eidas = CredentialCache(settings)
        #: what the composition root adds to a connector's options, by connector id (the
        #: installation's shared upstream access, such as GoCardless' token keeper)
        self.connector_options: dict[str, Mapping[str, Any]] = {}

    # --- connectors ---------------------------------------------------------------------------

    def build(
        self,
        service: Service,
        state: Mapping[str, Any] | None = None,
        *,
        return_url: str = "",
        public_url: str = "",
        psu_ip_address: str | None = None,
        language: str | None = None,
        payment: bool = False,
    ) -> ConnectorRun:
        """A connector for one run; ``psu_ip_address`` and ``language`` (the connect page's
        locale, which a bank's own pages may follow) only while the user is on the page;
        ``payment`` when the user logs in to authorise a payment (no data access is asked)."""
        store = MemoryStateStore(dict(state or {}))
        options: dict[str, Any] = {
            "decoupled_delay_seconds": self.settings.sandbox_decoupled_delay_seconds,
            "slow_seconds": self.settings.sandbox_slow_seconds,
            "payment_settle_seconds": self.settings.sandbox_payment_settle_seconds,
            "sandbox_bank_dir": str(self.settings.data_dir),
        }
        if psu_ip_address:
            options["psu_ip_address"] = psu_ip_address
        if language:
            options["user_language"] = language
        if payment:
            options["payment_initiation"] = True
        if self.settings.fints_product_id:
            options["fints_product_id"] = self.settings.fints_product_id
        options.update(self.connector_options.get(service.connector, {}))
        qwac = None
        try:
            credentials = self.eidas.for_bank(
                service.id, service.connector, service.params, service.name, self.clock()
            )
        except EidasError as exc:
            # start-up checked them; one that has expired since fails the bank's calls, named
            options["eidas_problem"] = str(exc)
        else:
            if credentials is not None:
                qwac = credentials.qwac
                if credentials.qseal is not None:
                    # UK Open Banking signs its JWTs (private_key_jwt, request objects) with it
                    options["signing_key"] = credentials.qseal.key
                    options["request_signer"] = RequestSigner(
                        credentials.qseal.certificate, credentials.qseal.key, self.clock
                    )
        context = ConnectorContext(
            institution={**service.params, "slug": service.slug, "name": service.name},
            http=self.clients.client_for(service.params, qwac),
            state=store,
            clock=self.clock,
            return_url=return_url,
            public_url=public_url,
            options=options,
        )
        connector = self.registry.create(service.connector, context)
        return ConnectorRun(connector, store, service)

    # --- the credential vault (an app's opt-in) --------------------------------------------------

    def seal_credentials(self, login: Login, credentials: Mapping[str, str]) -> str:
        """Encrypt credentials bound to this login's row: a copy elsewhere does not decrypt."""
        aad = associated_data(login.app_id, "logins", "vault_credentials", login.id)
        return self.box.encrypt(json.dumps(dict(credentials)).encode(), aad)

    # --- fields encrypted at rest ----------------------------------------------------------------

    def state_of(self, login: Login) -> dict[str, Any]:
        return login_state(self.box, login)

    def keep_state(self, login: Login, state: Mapping[str, Any]) -> None:
        aad = associated_data(login.app_id, "logins", "connector_state", login.id)
        login.connector_state_enc = self.box.encrypt(json.dumps(dict(state)).encode(), aad)
        login.connector_state = {}

    def _seal_account(self, account: Account, record: AccountRecord) -> None:
        # An IBAN is kept whole (it is not a card number); a card account's number is not.
        for column, value in (
            ("iban", record.iban),
            ("number", mask_optional(record.number)),
            ("holder_name", mask_optional(record.holder_name)),
            ("bank_id", mask_optional(record.bank_id)),
        ):
            aad = associated_data(account.app_id, "accounts", column, account.id)
            sealed = self.box.encrypt_text(value, aad) if value else None
            setattr(account, f"{column}_enc", sealed)
        account.bank_id = None

    def account_details(self, account: Account) -> dict[str, str | None]:
        """The account's IBAN, number and holder name, decrypted."""
        opened: dict[str, str | None] = {}
        for column in ("iban", "number", "holder_name"):
            sealed = getattr(account, f"{column}_enc")
            aad = associated_data(account.app_id, "accounts", column, account.id)
            opened[column] = self.box.decrypt_text(sealed, aad) if sealed else None
        return opened

    def account_bank_id(self, account: Account) -> str | None:
        return details.account_bank_id(self.box, account)

    def open_credentials(self, login: Login) -> dict[str, str] | None:
        if not login.vault_credentials_enc:
            return None
        aad = associated_data(login.app_id, "logins", "vault_credentials", login.id)
        opened: dict[str, str] = json.loads(self.box.decrypt(login.vault_credentials_enc, aad))
        return opened

    async def revoke(self, service: Service, state: Mapping[str, Any]) -> bool:
        """Withdraw the consent at the bank, where the connector can; never blocks a deletion."""
        run = self.build(service, state)
        if not isinstance(run.connector, RevokeCapability):
            return False
        try:
            await self.guarded(run.connector.revoke())
        except ConnectorFailure as failure:
            log.warning("revoking at %s failed: %s", service.slug, failure.message)
            return False
        return True

    async def guarded(self, call: Awaitable[T]) -> T:
        """Every connector call runs under the outbound timeout (S35)."""
        try:
            async with asyncio.timeout(self.settings.connector_timeout_seconds):
                return await call
        except TimeoutError:
            raise ProviderUnavailable("The bank did not answer in time") from None
        except (httpx.TransportError, OSError) as exc:
            raise ProviderUnavailable(
                f"The bank cannot be reached ({type(exc).__name__})"
            ) from None

    async def fetch(self, run: ConnectorRun, since: date | None) -> FetchResult:
        connector = run.connector
        if not isinstance(connector, AccountsCapability):
            raise ProviderUnavailable(f"connector {run.service.connector} cannot list accounts")
        records = await self.guarded(connector.fetch_accounts())
        fetched: list[FetchedAccount] = []
        for record in records:
            transactions: list[TransactionRecord] = []
            if isinstance(connector, TransactionsCapability):
                transactions = await self.guarded(connector.fetch_transactions(record, since, None))
            fetched.append(FetchedAccount(record, transactions))
        consent = (
            connector.consent().expires_at if isinstance(connector, ConsentCapability) else None
        )
        notices = (
            [str(n) for n in connector.notices()]
            if isinstance(connector, NoticesCapability)
            else None
        )
        not_before = (
            connector.next_read_possible_at()
            if isinstance(connector, ReadLimitCapability)
            else None
        )
        return FetchResult(fetched, since, run.state.load(), consent, notices, not_before)

    def refreshable(self, service: Service) -> bool:
        """Whether a login of ``service`` has a bank to refresh from (a statement file's has
        none: its data is the files it was given)."""
        return AuthFlow.FILE not in self.registry.info(service.connector).auth_flows

    def history_days(self, service: Service, consented: int | None = None) -> int:
        """How many days back a sync may read: as far as the bank keeps (the institution's
        ``history_days`` in the catalogue, else its connector's default), and never further
        than the user consented to (``consented``, the consent's depth, when there is one)."""
        declared = self.registry.info(service.connector).history_days
        try:
            days = int(service.params.get("history_days", declared))
        except (TypeError, ValueError):
            days = declared
        if consented is not None:
            days = min(days, consented)
        return max(1, days)

    def history_start(self, service: Service, consented: int | None = None) -> date:
        """The first day a first sync reads (see :meth:`history_days`)."""
        return self.clock().date() - timedelta(days=self.history_days(service, consented))

    def refresh_since(
        self, last_refresh_at: datetime | None, service: Service, consented: int | None = None
    ) -> date:
        """A later sync reads what is new, with an overlap for late bookings, within the same
        bounds as the first."""
        start = self.history_start(service, consented)
        if last_refresh_at is None:
            return start
        return max(as_utc(last_refresh_at).date() - REFRESH_OVERLAP, start)

    # --- applying -----------------------------------------------------------------------------

    def record_match_key(self, record: AccountRecord) -> str | None:
        """The account's match key (see :meth:`match_key`): tells a reconnect's accounts apart
        (``sync.identity``) and finds an account again when the bank re-mints its id."""
        return self.match_key(record.iban or record.number, record.currency)

    def match_key(self, number: str | None, currency: str) -> str | None:
        """Keyed hash of an IBAN or account number and currency (``Account.match_key``): finds
        an account again whoever names it, without storing the number in clear."""
        if not number:
            return None
        compact = "".join(number.split()).upper()
        return self.hasher.hash(f"{compact}|{currency}", purpose=ACCOUNT_MATCH)

    async def _apply_account(
        self,
        session: AsyncSession,
        login: Login,
        existing: list[Account],
        record: AccountRecord,
        claimed: set[int],
        now: datetime,
    ) -> tuple[Account, bool]:
        match_key = self.record_match_key(record)
        candidates = [a for a in existing if a.id not in claimed]
        # Stored bank ids are masked (a card account's id may be its number): compare masked.
        wanted = mask_optional(record.bank_id)
        found = next((a for a in candidates if wanted and self.account_bank_id(a) == wanted), None)
        if found is None and match_key:
            found = next((a for a in candidates if a.match_key == match_key), None)
        if found is None:
            same = [
                a
                for a in candidates
                if a.name == mask_pans(record.name)
                and a.currency == record.currency
                and a.type == record.type
            ]
            found = same[0] if len(same) == 1 else None
        created = found is None
        if found is None:
            found = Account(app_id=login.app_id, login_id=login.id, created_at=now)
            session.add(found)
        found.match_key = match_key
        found.name = mask_pans(record.name)
        found.type = str(record.type)
        found.currency = record.currency
        _take_balance(found, record)
        found.number_masked = mask_number(record.iban or record.number)
        found.updated_at = now
        if created:
            await session.flush()  # the sealed values are bound to the row's id
        self._seal_account(found, record)
        await session.flush()
        claimed.add(found.id)
        return found, created

    async def _window(self, session: AsyncSession, account_id: int, low: date) -> list[Any]:
        """The stored rows of the account from ``low`` on, with keyed keys: rows stored before
        keys were keyed and details sealed are sealed first, so that the records of this sync
        find them (the rewrap command does the same for the rest)."""
        window = {"account_id": account_id, "low": low}
        rows = list((await session.execute(_WINDOW, window)).all())
        if any(row.details_enc is None for row in rows):
            plain = (
                await session.execute(
                    select(*details.PLAIN_COLUMNS).where(
                        Transaction.account_id == account_id,
                        Transaction.date >= low,
                        Transaction.details_enc.is_(None),
                    )
                )
            ).all()
            await details.seal_plain_rows(session, self.box, self.keys, plain)
            rows = list((await session.execute(_WINDOW, window)).all())
        return rows

    def _stored(self, app_id: int, account_id: int, row: Any) -> details.Details:
        return details.open_sealed(self.box, app_id, account_id, row.dedupe_key, row.details_enc)

    async def _apply_transactions(
        self,
        session: AsyncSession,
        account: Account,
        records: list[TransactionRecord],
        since: date | None,
        now: datetime,
    ) -> tuple[int, int, int]:
        if not records and since is None:
            return 0, 0, 0
        app_id, account_id = account.app_id, account.id
        dates = [r.booking_date for r in records]
        low = min([*dates, since] if since else dates)
        rows = await self._window(session, account_id, low)
        by_key: dict[str, Any] = {row.dedupe_key: row for row in rows}
        by_fp: dict[str, Any] = {}
        for existing_row in rows:
            by_fp.setdefault(existing_row.fingerprint, existing_row)

        # Big histories are CPU work on the event loop: it is done a slice at a time, and other
        # requests get a turn whenever one has lasted long enough.
        turns = Turns()
        keys = self.keys
        occurrences: dict[tuple[date, Decimal, str, str], int] = {}
        incoming_keys: set[str] = set()
        prepared: list[tuple[TransactionRecord, str, str]] = []
        for start in range(0, len(records), SLICE):
            for record in records[start : start + SLICE]:
                amount = record.amount.normalize()
                text = _normal_text(record.description)
                ident = (record.booking_date, amount, record.currency, text)
                n = occurrences.get(ident, 0)
                occurrences[ident] = n + 1
                fp = keys.fingerprint(_fingerprint(record, amount, text, n))
                key = keys.bank_key(record.bank_id) if record.bank_id else keys.content_key(fp)
                if key in incoming_keys:
                    continue  # the bank listed the same item twice in one answer
                incoming_keys.add(key)
                prepared.append((record, fp, key))
            if turns.due():
                await turns.give()

        claimed: set[int] = set()
        new_rows: list[dict[str, Any]] = []
        new_records: list[TransactionRecord] = []
        modified: list[int] = []
        for position, (record, fp, key) in enumerate(prepared):
            if position % SLICE == SLICE - 1 and turns.due():
                await turns.give()
            row = by_key.get(key)
            if row is None and by_fp:
                candidate = by_fp.get(fp)
                # A re-minted id: same content, and the old key is no longer in the bank's answer.
                if (
                    candidate is not None
                    and candidate.id not in claimed
                    and candidate.dedupe_key not in incoming_keys
                ):
                    row = candidate
            original_id = record.bank_id or f"fp-{fp}"
            if row is not None:
                claimed.add(row.id)
                changes: dict[str, Any] = {}
                if row.status != str(record.status):
                    changes["status"] = str(record.status)
                if row.amount != record.amount:
                    changes["amount"] = record.amount
                stored = self._stored(app_id, account_id, row)
                description = mask_pans(record.description)
                if row.dedupe_key != key or stored.description != description:
                    fresh = msgspec.structs.replace(stored, description=description)
                    if row.dedupe_key != key:
                        fresh = msgspec.structs.replace(fresh, original_id=mask_pans(original_id))
                    # sealed again under the row's (new) key, which the envelope is bound to
                    changes.update(
                        dedupe_key=key,
                        details_enc=details.seal(self.box, app_id, account_id, key, fresh),
                    )
                if changes:
                    changes.update(fingerprint=fp, fetched_at=now)
                    await session.execute(
                        update(Transaction).where(Transaction.id == row.id).values(**changes)
                    )
                    modified.append(row.id)
                continue
            new_records.append(record)
            new_rows.append(
                {
                    "app_id": app_id,
                    "account_id": account_id,
                    "dedupe_key": key,
                    "fingerprint": fp,
                    "original_id": original_id,
                    "date": record.booking_date,
                    "value_date": record.value_date,
                    "amount": record.amount,
                    "currency": record.currency,
                    "status": str(record.status),
                    "pending_transaction_id": None,
                    "fetched_at": now,
                    "created_at": now,
                }
            )
        for row, record, fp, key in _reworded(rows, claimed, incoming_keys, new_rows, new_records):
            claimed.add(row.id)
            stored = self._stored(app_id, account_id, row)
            fresh = details.masked(
                stored.original_id,  # the id a partner knows the row by stays
                record.description,
                record.merchant,
                counterparty.stored_meta(record),
            )
            await session.execute(
                update(Transaction)
                .where(Transaction.id == row.id)
                .values(
                    dedupe_key=key,
                    fingerprint=fp,
                    details_enc=details.seal(self.box, app_id, account_id, key, fresh),
                    fetched_at=now,
                )
            )
            modified.append(row.id)
        # Pending items the bank no longer lists within the window were dropped or booked anew;
        # a new booked item that looks like one of them is linked to it.
        vanished = [
            Vanished(row.id, row.date, row.amount, self._stored(app_id, account_id, row))
            for row in rows
            if row.status == TransactionStatus.PENDING and row.id not in claimed
        ]
        link_pending(new_rows, new_records, vanished)
        added = await self._insert_new(session, account, new_rows, new_records, turns)
        removed = [row.id for row in vanished]
        if removed:
            await session.execute(delete(Transaction).where(Transaction.id.in_(removed)))
        # Rows seen again count as fetched now: retention purges only what was not fetched again.
        seen = sorted(claimed - set(modified))
        for start in range(0, len(seen), TOUCH_BATCH):
            await session.execute(
                _TOUCH, {"ids": seen[start : start + TOUCH_BATCH], "seen_at": now}
            )
        # The change log, in this order; the database makes its rows from the ids.
        await changes_log.log(
            session,
            app_id=app_id,
            entries=[
                (account_id, changes_log.ADDED, added),
                (account_id, changes_log.MODIFIED, modified),
                (account_id, changes_log.REMOVED, removed),
            ],
            now=now,
        )
        return len(added), len(modified), len(removed)

    def _finish_rows(
        self,
        account: Account,
        rows: list[dict[str, Any]],
        records: list[TransactionRecord],
        overrides: Keywords | None = None,
    ) -> None:
        """Categorize new rows (the app's own rules first) and seal their details (card
        numbers masked first)."""
        to_seal: list[tuple[str, details.Details]] = []
        for row, record in zip(rows, records, strict=True):
            row["category"] = categorize(
                record.description,
                record.merchant,
                record.amount,
                record.category,
                record.counterparty_name,
                meta=record.meta,
                overrides=overrides,
            )
            fields = details.masked(
                row["original_id"],
                record.description,
                record.merchant,
                counterparty.stored_meta(record),
            )
            to_seal.append((row["dedupe_key"], fields))
        sealed = details.seal_many(self.box, account.app_id, account.id, to_seal)
        for row, envelope in zip(rows, sealed, strict=True):
            row["details_enc"] = envelope

    async def _insert_new(
        self,
        session: AsyncSession,
        account: Account,
        new_rows: list[dict[str, Any]],
        records: list[TransactionRecord],
        turns: Turns,
    ) -> list[int]:
        """Store the new rows (categorized and sealed here); their ids, in order."""
        table = cast(Table, Transaction.__table__)
        scope = ("account_id", account.id)
        overrides = await app_category_rules(session, account.app_id)
        if len(new_rows) <= bulk.SMALL:
            # A refresh's few new rows: one INSERT ... RETURNING.
            self._finish_rows(account, new_rows, records, overrides)
            by_key = await bulk.insert_many_with_ids(
                session, table, new_rows, TRANSACTION_COLUMNS, key="dedupe_key", scope=scope
            )
            return [by_key[row["dedupe_key"]] for row in new_rows]
        # Straight to the driver, the rows categorized and encoded a slice at a time; each
        # batch is prepared while the database writes the previous one. On SQLite the batch is
        # written in one step without the GIL (bulk.insert_encoded's one_step: an executemany
        # would take the GIL back after every row and starve both the preparing and the
        # requests served on this loop, such as the connect page's progress polls).
        dialect = (await session.connection()).dialect
        encode = bulk.encoder(table, TRANSACTION_COLUMNS, dialect)
        added: list[int] = []
        writing: asyncio.Future[list[int]] | None = None
        try:
            for start in range(0, len(new_rows), INSERT_BATCH):
                values: list[tuple[Any, ...]] = []
                stop = min(start + INSERT_BATCH, len(new_rows))
                for first in range(start, stop, SLICE):
                    part = new_rows[first : min(first + SLICE, stop)]
                    self._finish_rows(account, part, records[first : first + len(part)], overrides)
                    values += encode(part)
                    if turns.due():
                        await turns.give()
                if writing is not None:
                    added += await writing
                writing = asyncio.ensure_future(
                    bulk.insert_encoded_with_ids(
                        session,
                        table,
                        TRANSACTION_COLUMNS,
                        values,
                        [row["dedupe_key"] for row in new_rows[start:stop]],
                        key="dedupe_key",
                        scope=scope,
                        one_step=True,
                    )
                )
            if writing is not None:
                added += await writing
                writing = None
        finally:
            if writing is not None and not writing.done():
                # Preparing failed while a batch was being written: let the write finish
                # before the unit of work rolls back (its own error, if any, is superseded).
                await asyncio.wait([writing])
            if writing is not None and not writing.cancelled():
                writing.exception()  # retrieved: the error that matters is the one raised
        return added

    async def apply(self, session: AsyncSession, login: Login, result: FetchResult) -> ApplySummary:
        """Store a fetch for ``login``: accounts matched to their stable ids, rows deduplicated."""
        now = self.clock()
        existing = list((await session.execute(_LOGIN_ACCOUNTS, {"login_id": login.id})).scalars())
        summary = ApplySummary()
        claimed: set[int] = set()
        for fetched in result.accounts:
            account, created = await self._apply_account(
                session, login, existing, fetched.record, claimed, now
            )
            summary.account_ids.append(account.id)
            if created:
                summary.new_account_ids.append(account.id)
            inserted, updated, removed = await self._apply_transactions(
                session, account, fetched.transactions, result.since, now
            )
            summary.inserted += inserted
            summary.received += len(fetched.transactions)
            summary.updated += updated
            summary.removed += removed
        self.keep_state(login, result.state)
        login.consent_expires_at = result.consent_expires_at
        login.not_before = result.not_before
        if result.notices is not None:
            login.notices = list(result.notices)
        login.last_refresh_at = now
        login.updated_at = now
        if logins.set_status(login, logins.ACTIVE, now):
            await events.record(
                session,
                app_id=login.app_id,
                login_id=login.id,
                type=events.LOGIN_STATUS,
                payload=events.login_status_payload(login.id, logins.ACTIVE),
                now=now,
            )
        # a large first sync leaves the planner's statistics behind: refreshed after the commit
        note_growth(session, "transactions", summary.inserted)
        if summary.inserted:
            await events.record(
                session,
                app_id=login.app_id,
                login_id=login.id,
                type=events.NEW_TRANSACTIONS,
                payload=events.new_transactions_payload(
                    login.id, now, summary.account_ids, summary.inserted
                ),
                now=now,
            )
        return summary

    async def record_failure(
        self,
        session: AsyncSession,
        login: Login,
        failure: ConnectorFailure,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Move the login to the failure's status and tell the partner when it changed."""
        now = self.clock()
        if state is not None:
            self.keep_state(login, state)
        if isinstance(failure, RateLimited) and failure.retry_after:
            # the bank said when it takes requests again: no refresh is tried before that
            login.not_before = now + timedelta(seconds=failure.retry_after)
        if logins.set_status(login, failure.status, now, failure.message):
            await events.record(
                session,
                app_id=login.app_id,
                login_id=login.id,
                type=events.LOGIN_STATUS,
                payload=events.login_status_payload(login.id, failure.status),
                now=now,
            )
        await events.record(
            session,
            app_id=login.app_id,
            login_id=login.id,
            type=events.SYNC_FAILED,
            payload=events.sync_failed_payload(login.id, failure.status, failure.message),
            now=now,
        )
