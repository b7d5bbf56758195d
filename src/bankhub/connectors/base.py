"""The connector interface: declarations, typed interactions and failures, records, capabilities.

A connector is built for one institution (its parameters come from the service catalogue) with an
injected :class:`ConnectorContext`. It authenticates with credentials that live only in memory,
raising an :class:`Interaction` whenever the bank needs something more from the user, and a
:class:`ConnectorFailure` when the bank refuses. Capabilities are small protocols; the sync layer
asks ``isinstance(connector, TransactionsCapability)`` instead of calling unimplemented methods.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx

from bankhub.clock import Clock

# --- declarations -------------------------------------------------------------------------------


class FieldKind(StrEnum):
    TEXT = "text"
    SECRET = "secret"  # noqa: S105 - a field kind, not a password  # nosec B105
    ONE_TIME = "one_time"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One input on the connect page's credential form."""

    name: str
    label: str
    kind: FieldKind = FieldKind.TEXT
    help: str | None = None
    optional: bool = False


class AuthFlow(StrEnum):
    CREDENTIALS = "credentials"
    REDIRECT = "redirect"
    DECOUPLED = "decoupled"
    EMBEDDED = "embedded"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class ConnectorInfo:
    """What a connector declares; the connect page and the scheduler read this, not the code."""

    id: str
    version: str
    credential_fields: tuple[CredentialField, ...]
    auth_flows: tuple[AuthFlow, ...]
    unattended_refreshes_per_day: int = 4
    #: the bank itself counts every read without the user (PSD2's ``frequencyPerDay``): a
    #: partner's manual refresh uses the same daily quota as the scheduler's, and a bank's own
    #: lower ``frequency_per_day`` (catalogue param) wins
    bank_counts_unattended: bool = False
    history_days: int = 730
    consent_days: int = 90
    description: str = ""
    #: the bank's payments API needs the debtor account: the user cannot choose it at the
    #: bank, so a payment must name one (``account_id``)
    payment_needs_debtor: bool = False


# --- interactions: the bank needs more from the user ---------------------------------------------


class Interaction(Exception):
    """Raised by ``authenticate`` or ``resume`` when the user must do something more."""

    #: what the bank says to its users alongside the step (plain text; shown on the page)
    notices: tuple[str, ...] = ()


class ChallengeKind(StrEnum):
    #: an image the user scans with the bank's app or reader (photoTAN, QR-TAN)
    IMAGE = "image"
    #: an animated image a chipTAN reader reads off the screen (HHD flicker code)
    FLICKER = "flicker"


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a code's challenge shows besides its text. It goes to the user's browser only:
    the connect session holds it in memory, it is never stored nor logged."""

    kind: ChallengeKind
    #: ``image/png``, ``image/jpeg``, ``image/gif`` or ``image/svg+xml`` (a flicker code)
    media_type: str
    data: bytes = field(repr=False)
    alt: str
    #: what the user may key in instead ("chipTAN manuell"): (label, value) pairs
    manual: tuple[tuple[str, str], ...] = ()

    def data_url(self) -> str:
        """The image inline (the connect page's policy allows ``data:`` images only)."""
        return f"data:{self.media_type};base64,{base64.b64encode(self.data).decode('ascii')}"


class NeedsCode(Interaction):
    """A one-time code (SMS, app, card reader) or the answer to a security question."""

    def __init__(
        self,
        prompt: str,
        *,
        secret: bool = True,
        field_label: str = "Code",
        challenge: Challenge | None = None,
    ) -> None:
        super().__init__(prompt)
        self.prompt = prompt
        self.secret = secret
        self.field_label = field_label
        self.challenge = challenge


@dataclass(frozen=True, slots=True)
class Choice:
    id: str
    label: str


class NeedsChoice(Interaction):
    """Pick one option, for example the device that should receive the code."""

    def __init__(self, prompt: str, options: list[Choice]) -> None:
        super().__init__(prompt)
        self.prompt = prompt
        self.options = options


class NeedsRedirect(Interaction):
    """Send the user to the bank's own page; the bank sends them back to the return URL."""

    def __init__(self, url: str, prompt: str = "Continue at your bank") -> None:
        super().__init__(prompt)
        self.url = url
        self.prompt = prompt


class NeedsDecoupledApproval(Interaction):
    """The user approves in the bank's own app; poll with ``resume(Answer.poll())``."""

    def __init__(self, prompt: str, poll_after_seconds: float = 2.0) -> None:
        super().__init__(prompt)
        self.prompt = prompt
        self.poll_after_seconds = poll_after_seconds


AnswerKind = Literal["code", "choice", "redirect", "poll"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The user's reply to an :class:`Interaction`."""

    kind: AnswerKind
    value: str = ""
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def poll(cls) -> Answer:
        return cls("poll")


# --- failures: the bank refused ------------------------------------------------------------------


class ConnectorFailure(Exception):
    """Base of every typed failure; the sync layer maps each to a login status and error code."""

    status: ClassVar[str] = "provider_unavailable"
    #: whether the user must come back to the connect page (reconnect) to fix it
    needs_user: ClassVar[bool] = False

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = message or (self.__class__.__doc__ or "").strip()
        self.retry_after = retry_after


class InvalidCredentials(ConnectorFailure):
    """The bank rejected the username or password."""

    status = "wrong_credentials"
    needs_user = True


class AccountLocked(ConnectorFailure):
    """The bank has locked this login; the user must contact the bank."""

    status = "account_locked"
    needs_user = True


class PasswordExpired(ConnectorFailure):
    """The password has expired; the user must change it at the bank first."""

    status = "password_expired"
    needs_user = True


class ConsentExpired(ConnectorFailure):
    """The consent given to the bank has expired; the user must reconnect."""

    status = "consent_expired"
    needs_user = True


class SessionExpired(ConnectorFailure):
    """The bank asks for the password again: the user reconnects (or the vault logs in)."""

    status = "session_expired"
    needs_user = True


class ProviderUnavailable(ConnectorFailure):
    """The bank cannot be reached right now."""

    status = "provider_unavailable"


class RateLimited(ConnectorFailure):
    """The bank refuses more requests for now."""

    status = "rate_limited"


class InteractionRejected(ConnectorFailure):
    """The user's answer (code, choice, approval) was refused by the bank."""

    status = "wrong_credentials"
    needs_user = True


# --- records -------------------------------------------------------------------------------------


class AccountType(StrEnum):
    CURRENT = "current"
    SAVINGS = "savings"
    CREDIT_CARD = "credit_card"
    LOAN = "loan"
    INVESTMENT = "investment"
    OTHER = "other"


class TransactionStatus(StrEnum):
    BOOKED = "booked"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as the bank reports it. ``bank_id`` may change when a bank re-mints ids.

    ``balance`` is None when the source states none (a statement file without a closing
    balance): bankhub never makes one up, and keeps the one stated before. ``balance_date`` is
    the day the source states the balance for (a statement's closing date); a record whose
    date is older than the stored balance's does not move it back.
    """

    bank_id: str | None
    name: str
    type: AccountType
    currency: str
    balance: Decimal | None
    available_balance: Decimal | None = None
    number: str | None = None
    iban: str | None = None
    holder_name: str | None = None
    balance_date: date | None = None


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """A transaction as the bank reports it; negative amounts are debits."""

    bank_id: str | None
    booking_date: date
    amount: Decimal
    currency: str
    description: str
    value_date: date | None = None
    merchant: str | None = None
    category: str | None = None
    status: TransactionStatus = TransactionStatus.BOOKED
    meta: Mapping[str, Any] | None = None
    #: the other party: payer of a credit, payee of a debit, as the source names them; stored
    #: in ``meta`` (``counterparty_name``, ``counterparty_account``, card numbers masked)
    counterparty_name: str | None = None
    counterparty_account: str | None = None


# --- the context a connector is built with ------------------------------------------------------


class StateStore(Protocol):
    """Opaque per-login state (session tokens, consent ids). Encryption is the platform's job."""

    def load(self) -> dict[str, Any]: ...

    def save(self, state: dict[str, Any]) -> None: ...


class MemoryStateStore:
    """A state store kept in memory; the platform copies it to the login row after each run."""

    def __init__(self, initial: dict[str, Any] | None = None) -> None:
        self._state: dict[str, Any] = dict(initial or {})

    def load(self) -> dict[str, Any]:
        return dict(self._state)

    def save(self, state: dict[str, Any]) -> None:
        self._state = dict(state)


@dataclass(slots=True)
class ConnectorContext:
    """Everything a connector may use; nothing else (no database, no settings object)."""

    institution: Mapping[str, Any]
    http: httpx.AsyncClient
    state: StateStore
    clock: Clock
    #: where a redirect-SCA bank sends the user back to (the connect page's return endpoint)
    return_url: str = ""
    #: the base URL bankhub is reached at, for connectors whose bank pages bankhub itself serves
    public_url: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


# --- the connector and its capabilities ----------------------------------------------------------


class Connector(Protocol):
    """Every connector: declare, authenticate interactively, and reopen a session unattended."""

    info: ClassVar[ConnectorInfo]

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Log in with the user's credentials (held in memory only).

        Returns when the session is established; raises an :class:`Interaction` when the user must
        do more (answer with :meth:`resume`) or a :class:`ConnectorFailure` when the bank refuses.
        """
        ...

    async def resume(self, answer: Answer) -> None:
        """Continue after an interaction; same outcomes as :meth:`authenticate`."""
        ...

    async def open_session(self) -> None:
        """Reopen a session from saved state without the user (unattended refresh).

        Raises a :class:`ConnectorFailure` (``ConsentExpired``, ``InvalidCredentials``...) when
        the user must reconnect.
        """
        ...


@runtime_checkable
class AccountsCapability(Protocol):
    async def fetch_accounts(self) -> list[AccountRecord]:
        """Every account the session can see."""
        ...


@runtime_checkable
class TransactionsCapability(Protocol):
    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Booked and pending transactions of ``account`` between ``since`` and ``until``."""
        ...


@runtime_checkable
class RevokeCapability(Protocol):
    async def revoke(self) -> None:
        """Withdraw the consent at the bank."""
        ...


@dataclass(frozen=True, slots=True)
class ConsentInfo:
    expires_at: datetime | None


@runtime_checkable
class ConsentCapability(Protocol):
    def consent(self) -> ConsentInfo:
        """The consent the bank granted in the current session."""
        ...


@runtime_checkable
class IdentityCapability(Protocol):
    def identity(self) -> str | None:
        """Who the bank says the user of this session is, as a stable key.

        The same on every connect of the same person at this institution, and never the same
        for two people: the bank's own user id, or the login name the bank knows the user by.
        Asked after a successful login; ``None`` when the connector cannot tell, and the
        platform then compares the account sets instead. bankhub keeps only a keyed hash of it,
        so it may be plain text, but it must never be a secret (no password, no token).
        """
        ...


@runtime_checkable
class NoticesCapability(Protocol):
    def notices(self) -> list[str]:
        """Messages the provider attached to the last read, meant for the user (plain text)."""
        ...


@runtime_checkable
class ReadLimitCapability(Protocol):
    def next_read_possible_at(self) -> datetime | None:
        """When the bank lets this login's accounts be read again, if the last read used up
        its limit (a provider's daily quota per account); None when it did not say or
        did not run out."""
        ...


# --- payment initiation --------------------------------------------------------------------------


class PaymentStatus(StrEnum):
    """A payment's status, the same words at the bank and on bankhub's API."""

    PENDING_AUTHORISATION = "pending_authorisation"
    AUTHORISED = "authorised"
    ACCEPTED = "accepted"
    EXECUTED = "executed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    #: handed to the user as a pain.001 file to upload at their bank: never sent by bankhub,
    #: whose part ends there (the bank's own record follows it; its transfers are linked at
    #: the account's refresh by their EndToEndId)
    EXPORTED = "exported"

    @property
    def final(self) -> bool:
        return self in _FINAL_PAYMENT_STATUSES


_FINAL_PAYMENT_STATUSES = frozenset(
    {
        PaymentStatus.EXECUTED,
        PaymentStatus.REJECTED,
        PaymentStatus.CANCELLED,
        PaymentStatus.EXPIRED,
        PaymentStatus.EXPORTED,
    }
)


def end_to_end_id(payment_id: str, position: int) -> str:
    """bankhub's ``EndToEndId`` of transfer ``position`` of payment ``payment_id`` (a UUID):
    its 32 hex digits and three of the position, 35 characters, SEPA's limit."""
    return f"{uuid.UUID(payment_id).hex}{position:03d}"


def payment_of(reference: str | None) -> tuple[str, int] | None:
    """The payment id and position an ``EndToEndId`` of :func:`end_to_end_id` names."""
    if not reference or len(reference) != 35 or not reference[32:].isdigit():
        return None
    try:
        return str(uuid.UUID(hex=reference[:32])), int(reference[32:])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CreditTransfer:
    """One credit transfer, as bankhub checked it (SEPA characters, the currency's scale)."""

    #: bankhub's reference of the transfer, carried to the creditor and back in the debtor's
    #: statement (ISO 20022 ``EndToEndId``, at most 35 characters)
    end_to_end_id: str
    creditor_name: str
    amount: Decimal
    currency: str
    creditor_iban: str | None = None
    #: a local account number where the creditor has no IBAN
    creditor_account: str | None = None
    creditor_bic: str | None = None
    remittance: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentOrder:
    """What bankhub asks a bank to execute: one transfer, or a batch under one authorisation."""

    #: bankhub's id of the order: the bank's idempotency reference (XS2A ``X-Request-ID``),
    #: so asking twice with it never makes two payments
    request_id: str
    transfers: tuple[CreditTransfer, ...]
    batch: bool = False
    #: the debtor's account; ``None`` lets the user choose it at the bank
    debtor_iban: str | None = None
    execution_date: date | None = None


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """The bank's answer about a payment. ``bank_payment_id`` comes first: the platform
    records it before it acts on anything else the answer says."""

    bank_payment_id: str
    status: PaymentStatus
    #: the bank's own words or code for the status (``AM04`` insufficient funds...)
    reason: str | None = None
    #: the step the user must take at the bank to authorise the payment, if any
    sca: Interaction | None = None
    #: per transfer of a batch, in the order's order: (status, reason)
    items: tuple[tuple[PaymentStatus, str | None], ...] = ()
    #: the bank does what was asked (a cancellation) only once the account holder authorises
    #: it; ``sca`` is that step where the bank let it start without the user
    needs_authorisation: bool = False


@runtime_checkable
class PaymentsCapability(Protocol):
    """Payment initiation (PSD2 PIS). Every call may raise a :class:`ConnectorFailure`."""

    async def initiate_payment(self, order: PaymentOrder) -> PaymentAnswer:
        """Submit ``order`` (idempotent on ``order.request_id``); the answer names the bank's
        payment id and, in ``sca``, the step that authorises it."""
        ...

    async def authorise_payment(self, bank_payment_id: str, answer: Answer) -> PaymentAnswer:
        """The user's answer to the payment's ``sca`` step; a new ``sca`` when the bank asks
        more (a decoupled approval not given yet), else the status after authorisation."""
        ...

    async def payment_status(self, bank_payment_id: str) -> PaymentAnswer:
        """The payment's status at the bank now."""
        ...

    async def find_payment(self, request_id: str) -> PaymentAnswer | None:
        """The payment the bank made of the order ``request_id``, or ``None`` when the order
        never reached it (asked after a crash between sending and recording)."""
        ...

    async def cancel_payment(self, bank_payment_id: str) -> PaymentAnswer:
        """Cancel at the bank; the answer's status says whether the bank did."""
        ...


@runtime_checkable
class CancellationAuthorisationCapability(Protocol):
    """A bank that may want the account holder to authorise a cancellation
    (``PaymentAnswer.needs_authorisation``): the user does it on the connect page."""

    async def authorise_cancellation(self, bank_payment_id: str) -> PaymentAnswer:
        """Start the cancellation's authorisation with the user present (logged in on the
        connect page); its step comes back as the answer's ``sca`` and is answered with
        :meth:`PaymentsCapability.authorise_payment`, else the status after it."""
        ...


@runtime_checkable
class BulkPaymentsCapability(PaymentsCapability, Protocol):
    """Batches: many transfers from one account under one authorisation."""

    async def initiate_bulk_payment(self, order: PaymentOrder) -> PaymentAnswer:
        """As :meth:`PaymentsCapability.initiate_payment`, for ``order.batch`` orders."""
        ...
