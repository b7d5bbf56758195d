"""The sandbox connector: scenario-rich fake banks for development, demos and tests.

The username picks the scenario (see PRODUCT.md §3), the password is always ``pass_good`` and a
one-time code is always ``123456``. Data is generated from the institution's ``seed`` and the
username, so the same login shows the same history on every machine.

Options read from :attr:`ConnectorContext.options`:

``decoupled_delay_seconds`` (float, default 3.0)
    how long after the first request ``user_decoupled``'s approval arrives (clock time).
``slow_seconds`` (float, default 60.0)
    how long ``user_slow`` waits before answering any call.
``payment_settle_seconds`` (float, default 60.0)
    how long ``user_pending``'s and ``user_bankcancel``'s payments stay ``accepted`` before the
    bank executes (or cancels) them.
``sandbox_bank_dir`` (str)
    where the bank keeps its record of payments (:mod:`bankhub.connectors.sandbox.ledger`).
``user_language`` (str)
    the connect page's language while the user is on it; the bank's own consent page is sent
    it as OpenID Connect's ``ui_locales``, so it speaks the language the page spoke.

Payments (docs/payments.md): the user who logs in at the bank picks the scenario as for reads.
``user_good`` and the others are executed at once (the login was the authorisation);
``user_otp`` authorises with the code ``123456``, ``user_decoupled`` in the bank's app,
``user_redirect`` on the bank's page; ``user_nofunds`` is rejected for insufficient funds
(``AM04``); ``user_pending`` stays ``accepted`` until the bank executes it later;
``user_bankcancel``'s payment is accepted, then cancelled by the bank.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

from bankhub.connectors.base import (
    AccountLocked,
    AccountRecord,
    AccountType,
    Answer,
    AuthFlow,
    Choice,
    ConnectorContext,
    ConnectorInfo,
    ConsentExpired,
    ConsentInfo,
    CredentialField,
    FieldKind,
    Interaction,
    InteractionRejected,
    InvalidCredentials,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PasswordExpired,
    PaymentAnswer,
    PaymentOrder,
    PaymentStatus,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.sandbox import bank
from bankhub.connectors.sandbox.history import Profile, ledger
from bankhub.connectors.sandbox.ledger import BankPayment, Ledger

PASSWORD = "pass_good"  # noqa: S105 - the sandbox's published test password  # nosec B105
ONE_TIME_CODE = "123456"
SECURITY_ANSWER = "blue"
RETRY_AFTER_SECONDS = 60.0

#: every username the bank accepts (with :data:`PASSWORD`) and what the bank does for it; the
#: dashboard's Bank Feed lists these for developers, and docs/sandbox.md describes them
USERS: Mapping[str, str] = {
    "user_good": "logs in; 3 accounts (current, savings, credit card), about 2 years of history",
    "user_otp": f"asks for a one-time code ({ONE_TIME_CODE})",
    "user_question": f"asks a security question (answer {SECURITY_ANSWER}), then a device",
    "user_redirect": "sends the user to the bank's own consent page and back",
    "user_decoupled": "asks the user to approve in the bank's app; approval arrives later",
    "user_locked": "account locked (login_account_locked)",
    "user_expired": "password expired (login_password_expired)",
    "user_slow": "answers every call slowly, so bankhub's timeout applies",
    "user_down": "the bank is unreachable (ConnectError)",
    "user_ratelimited": f"refuses with a retry-after of {RETRY_AFTER_SECONDS:.0f} seconds",
    "user_big": "100,000 transactions over 5 years",
    "user_dynamic": "new transactions on every refresh; pending items book later",
    "user_remint": "re-mints its account and transaction ids on every reconnect",
    "user_consent_short": "consent expires 5 minutes after it is given",
    "user_session": "its bank session lasts an hour; then the bank wants the password again",
    "user_nofunds": "logs in like user_good; a payment is rejected for insufficient funds",
    "user_pending": "logs in like user_good; a payment is executed later",
    "user_bankcancel": "logs in like user_good; a payment is cancelled by the bank",
}
SCENARIOS = frozenset(USERS)
#: how long a ``user_session`` bank session lasts before the bank wants the password again
SESSION_LIFETIME = timedelta(hours=1)


def N_(text: str) -> str:
    """Marks the sandbox bank's own words for the catalogs (``scripts/i18n extract``): the
    connect page shows them in the end user's language, as a real bank would show its own in
    the language of its site. A marker only: the connector stays free of the page's locale."""
    return text


DEVICES = (
    Choice("phone", N_("Phone ending in 42")),
    Choice("tablet", N_("Tablet (Sandbox Bank app)")),
)
BIG_HISTORY_DAYS = 5 * 365 + 1
#: how old an ordinary scenario user's accounts are (about two years of history)
USER_HISTORY_DAYS = 730
BIG_TOTAL = 100_000


class SandboxConnector:
    """A simulated bank; one instance serves one login of one sandbox institution.

    Everything that must outlive the instance (session, consent expiry, a pending SCA step,
    re-mint epoch, refresh counter) lives in ``context.state``; the password and one-time codes
    never do.
    """

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="sandbox",
        version="1.0",
        credential_fields=(
            CredentialField("username", N_("Username"), help="user_good, user_otp, user_redirect…"),
            CredentialField("password", N_("Password"), FieldKind.SECRET, help="pass_good"),
        ),
        auth_flows=(AuthFlow.CREDENTIALS, AuthFlow.REDIRECT, AuthFlow.DECOUPLED),
        unattended_refreshes_per_day=4,
        # the banks keep five years (user_big has them all); an institution may keep less
        history_days=BIG_HISTORY_DAYS,
        consent_days=90,
        description="Simulated banks whose username picks the scenario; for demos and tests.",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        institution = context.institution
        self.slug = str(institution.get("slug", "sandbox"))
        self.seed = int(institution.get("seed", 0))
        self.currency = str(institution.get("currency", "EUR")).upper()
        self.country = str(institution.get("country_code", "DE")).upper()
        self.bank_name = str(institution.get("name", "Sandbox Bank"))

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Log in; raises the scenario's interaction or failure."""
        username = credentials.get("username", "").strip()
        await self._bank_answers(username)
        password = credentials.get("password", "")
        if username not in SCENARIOS or not hmac.compare_digest(
            password.encode(), PASSWORD.encode()
        ):
            raise InvalidCredentials("The bank rejected the username or password")
        if username == "user_locked":
            raise AccountLocked()
        if username == "user_expired":
            raise PasswordExpired()
        state = self.context.state.load()
        state = {
            key: state[key] for key in ("epoch", "refresh_dates") if key in state
        }  # a fresh login drops any old session, consent and half-done step
        state["username"] = username
        if username == "user_otp":
            self._ask(state, {"step": "code"})
            raise NeedsCode(N_("Enter the code we sent to your phone (hint: 123456)"))
        if username == "user_question":
            self._ask(state, {"step": "question"})
            raise NeedsCode(
                N_("Security question: what is your favourite colour?"),
                secret=False,
                field_label=N_("Answer"),
            )
        if username == "user_redirect":
            request_id = secrets.token_urlsafe(16)
            self._ask(state, {"step": "redirect", "request": request_id})
            raise NeedsRedirect(self._consent_page(request_id), f"Continue at {self.bank_name}")
        if username == "user_decoupled":
            now = self.context.clock().isoformat()
            self._ask(state, {"step": "decoupled", "requested_at": now})
            raise NeedsDecoupledApproval(N_("Approve the login in your Sandbox Bank app"))
        self._establish(state)

    async def resume(self, answer: Answer) -> None:
        """Continue the pending step; a wrong answer raises ``InteractionRejected`` and the
        step stays pending so the user can try again."""
        state = self.context.state.load()
        pending = state.get("pending")
        await self._bank_answers(str(state.get("username", "")))
        if not isinstance(pending, dict):
            raise InteractionRejected("There is no login step waiting for an answer")
        step = pending.get("step")
        if step == "code":
            if answer.kind != "code" or not _same(answer.value.strip(), ONE_TIME_CODE):
                raise InteractionRejected("The code is not valid")
        elif step == "question":
            if answer.kind != "code" or answer.value.strip().casefold() != SECURITY_ANSWER:
                raise InteractionRejected("That is not the answer we have on file")
            self._ask(state, {"step": "device"})
            raise NeedsChoice(N_("Where should we send login notifications?"), list(DEVICES))
        elif step == "device":
            if answer.kind != "choice" or answer.value not in {d.id for d in DEVICES}:
                raise InteractionRejected("Choose one of the devices offered")
        elif step == "redirect":
            self._check_redirect(state, str(pending.get("request", "")), answer)
        elif step == "decoupled":
            requested = datetime.fromisoformat(str(pending["requested_at"]))
            delay = float(self.context.options.get("decoupled_delay_seconds", 3.0))
            if self.context.clock() - requested < timedelta(seconds=delay):
                raise NeedsDecoupledApproval(N_("Still waiting for approval in the app"))
        else:
            raise InteractionRejected("There is no login step waiting for an answer")
        self._establish(state)

    async def open_session(self) -> None:
        """Reopen from saved state; each call is one refresh for ``user_dynamic``."""
        state = self.context.state.load()
        await self._bank_answers(str(state.get("username", "")))
        self._require_session(state)
        if state["username"] == "user_dynamic":
            today = self.context.clock().date().isoformat()
            state["refresh_dates"] = [*state.get("refresh_dates", []), today]
        state["session"] = secrets.token_urlsafe(16)
        self.context.state.save(state)

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        """The three accounts (current, savings, credit card) of the login."""
        state = await self._session()
        return list(ledger(self._profile(state)).accounts)

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Transactions of ``account`` booked between ``since`` and ``until`` (inclusive),
        newest first."""
        state = await self._session()
        book = ledger(self._profile(state))
        transactions = book.transactions.get(account.bank_id or "")
        if transactions is None:
            # an account from before a re-mint: find it by what the bank does not re-mint
            for known in book.accounts:
                if (known.iban and known.iban == account.iban) or (
                    known.number and known.number == account.number
                ):
                    transactions = book.transactions[known.bank_id or ""]
                    break
        booked = list(transactions or ())
        paid = self._paid_from(state, account)
        if paid:
            booked = sorted([*booked, *paid], key=lambda t: t.booking_date, reverse=True)
        return [
            t
            for t in booked
            if (since is None or t.booking_date >= since)
            and (until is None or t.booking_date <= until)
        ]

    def _paid_from(
        self, state: Mapping[str, Any], account: AccountRecord
    ) -> list[TransactionRecord]:
        """The debits of the user's executed payments from ``account``, each carrying the
        ``EndToEndId`` bankhub gave the transfer."""
        if not account.iban:
            return []
        debits: list[TransactionRecord] = []
        for payment in self._ledger().executed(self.slug, str(state.get("username", ""))):
            if payment.order.get("debtor_iban") != account.iban:
                continue
            for position, t in enumerate(payment.order.get("transfers", [])):
                debits.append(
                    TransactionRecord(
                        bank_id=f"{payment.bank_id}-{position}",
                        booking_date=(payment.settle_at or payment.created_at).date(),
                        amount=-Decimal(t["amount"]),
                        currency=t["currency"],
                        description=t["remittance"] or f"Transfer to {t['creditor_name']}",
                        counterparty_name=t["creditor_name"],
                        counterparty_account=t["creditor_iban"] or t["creditor_account"],
                        meta={"end_to_end_id": t["end_to_end_id"]},
                    )
                )
        return debits

    def identity(self) -> str | None:
        """The bank's user: the username picks the person, whatever the scenario does."""
        username = self.context.state.load().get("username")
        return f"user:{username}" if username else None

    def consent(self) -> ConsentInfo:
        """When the consent given at the last connect expires."""
        expires = self.context.state.load().get("consent_expires_at")
        return ConsentInfo(datetime.fromisoformat(expires) if expires else None)

    async def revoke(self) -> None:
        """Withdraw the consent: the session ends and refreshes need a reconnect."""
        state = self.context.state.load()
        await self._bank_answers(str(state.get("username", "")))
        for key in ("session", "consent_expires_at", "pending"):
            state.pop(key, None)
        self.context.state.save(state)

    # --- payments ---------------------------------------------------------------------------

    def _ledger(self) -> Ledger:
        directory = self.context.options.get("sandbox_bank_dir")
        return Ledger(str(directory) if directory else None)

    async def initiate_payment(self, order: PaymentOrder) -> PaymentAnswer:
        """Record the order at the bank (once per ``request_id``) and ask for the scenario's
        authorisation; a user who needs no more than the login is authorised at once."""
        state = await self._session()
        username = str(state["username"])
        accounts = ledger(self._profile(state)).accounts
        debtor = next(
            (a for a in accounts if order.debtor_iban and a.iban == order.debtor_iban), None
        )
        # no debtor named: the user chooses the account at the bank first
        step = "account" if order.debtor_iban is None else self._authorisation_step(username)
        request = _order_json(order, debtor.iban if debtor else None)
        now = self.context.clock()
        payment, _ = self._ledger().put(
            slug=self.slug,
            request_id=order.request_id,
            username=username,
            status=PaymentStatus.PENDING_AUTHORISATION,
            step=step,
            order=request,
            now=now,
        )
        if debtor is None and order.debtor_iban is not None:
            self._ledger().update(
                payment.bank_id,
                status=PaymentStatus.REJECTED,
                reason="AC01 the debtor account is not one of this user's accounts",
                step=None,
                now=now,
            )
            return self._answer(payment.bank_id)
        if payment.step is None:
            return self._answer(payment.bank_id)
        return self._answer(payment.bank_id, ask=True)

    async def initiate_bulk_payment(self, order: PaymentOrder) -> PaymentAnswer:
        """A batch: one record, one authorisation, a status per transfer."""
        return await self.initiate_payment(order)

    async def authorise_payment(self, bank_payment_id: str, answer: Answer) -> PaymentAnswer:
        payment = self._payment(bank_payment_id)
        await self._bank_answers(payment.username)
        step = payment.step or ""
        if payment.status != PaymentStatus.PENDING_AUTHORISATION or not step:
            return self._answer(bank_payment_id)
        if step == "account":
            chosen = {a.iban for a in self._payable_accounts(payment.username)}
            if answer.kind != "choice" or answer.value not in chosen:
                raise InteractionRejected("Choose one of your accounts")
            following = self._authorisation_step(payment.username)
            self._ledger().update(
                bank_payment_id,
                status=PaymentStatus.PENDING_AUTHORISATION,
                reason=None,
                step=following,
                now=self.context.clock(),
                order={**payment.order, "debtor_iban": answer.value},
            )
            return self._answer(bank_payment_id, ask=True)
        if step == "code":
            if answer.kind != "code" or not _same(answer.value.strip(), ONE_TIME_CODE):
                raise InteractionRejected("The code is not valid")
        elif step.startswith("decoupled:"):
            requested = datetime.fromisoformat(step.partition(":")[2])
            delay = float(self.context.options.get("decoupled_delay_seconds", 3.0))
            if self.context.clock() - requested < timedelta(seconds=delay):
                return self._answer(bank_payment_id, ask=True)
        elif step == "redirect":
            if answer.kind != "redirect":
                raise InteractionRejected("Expected the bank's redirect")
            if answer.params.get("error") == "access_denied":
                self._ledger().update(
                    bank_payment_id,
                    status=PaymentStatus.REJECTED,
                    reason="The user declined the payment at the bank",
                    step=None,
                    now=self.context.clock(),
                )
                return self._answer(bank_payment_id)
            if not (
                _same(answer.params.get("request", ""), bank_payment_id)
                and bank.is_valid_consent_code(bank_payment_id, answer.params.get("code", ""))
            ):
                raise InteractionRejected("The bank's answer could not be verified")
        self._settle(payment)
        return self._answer(bank_payment_id)

    async def payment_status(self, bank_payment_id: str) -> PaymentAnswer:
        payment = self._payment(bank_payment_id)
        await self._bank_answers(payment.username)
        if (
            payment.status == PaymentStatus.ACCEPTED
            and payment.settle_at is not None
            and self.context.clock() >= payment.settle_at
        ):
            if payment.username == "user_bankcancel":
                status, reason = PaymentStatus.CANCELLED, "DS02 cancelled by the bank"
            else:
                status, reason = PaymentStatus.EXECUTED, None
            self._ledger().update(
                bank_payment_id, status=status, reason=reason, step=None, now=self.context.clock()
            )
        return self._answer(bank_payment_id)

    async def find_payment(self, request_id: str) -> PaymentAnswer | None:
        found = self._ledger().by_request(self.slug, request_id)
        if found is None:
            return None
        await self._bank_answers(found.username)
        return self._answer(found.bank_id, ask=found.step is not None)

    async def cancel_payment(self, bank_payment_id: str) -> PaymentAnswer:
        """The bank cancels what it has not executed yet."""
        payment = self._payment(bank_payment_id)
        await self._bank_answers(payment.username)
        if payment.status in (
            PaymentStatus.PENDING_AUTHORISATION,
            PaymentStatus.AUTHORISED,
            PaymentStatus.ACCEPTED,
        ):
            self._ledger().update(
                bank_payment_id,
                status=PaymentStatus.CANCELLED,
                reason="cancelled at the debtor's request",
                step=None,
                now=self.context.clock(),
            )
        return self._answer(bank_payment_id)

    def _authorisation_step(self, username: str) -> str | None:
        step = _payment_step(username)
        if step == "decoupled":
            return f"decoupled:{self.context.clock().isoformat()}"
        return step

    def _payable_accounts(self, username: str) -> list[AccountRecord]:
        """The user's accounts a transfer may leave from (not the credit card)."""
        state = {"username": username}
        accounts = ledger(self._profile(state)).accounts
        return [a for a in accounts if a.iban and a.type != AccountType.CREDIT_CARD]

    def _payment(self, bank_payment_id: str) -> BankPayment:
        payment = self._ledger().get(self.slug, bank_payment_id)
        if payment is None:
            raise InteractionRejected("The bank knows no such payment")
        return payment

    def _settle(self, payment: BankPayment) -> None:
        """The authorised payment goes the scenario's way."""
        now = self.context.clock()
        settle_at = None
        if payment.username == "user_nofunds":
            status, reason = PaymentStatus.REJECTED, "AM04 insufficient funds"
        elif payment.username in ("user_pending", "user_bankcancel"):
            status, reason = PaymentStatus.ACCEPTED, None
            delay = float(self.context.options.get("payment_settle_seconds", 60.0))
            settle_at = now + timedelta(seconds=delay)
        else:
            status, reason = PaymentStatus.EXECUTED, None
        self._ledger().update(
            payment.bank_id, status=status, reason=reason, step=None, now=now, settle_at=settle_at
        )

    def _answer(self, bank_payment_id: str, *, ask: bool = False) -> PaymentAnswer:
        payment = self._payment(bank_payment_id)
        if payment.status == PaymentStatus.PENDING_AUTHORISATION and payment.step is None:
            # authorised by the login alone: settle now
            self._settle(payment)
            payment = self._payment(bank_payment_id)
        status = PaymentStatus(payment.status)
        count = len(payment.order.get("transfers", ()))
        items = (
            tuple((status, payment.reason) for _ in range(count))
            if payment.order.get("batch")
            else ()
        )
        sca: Interaction | None = None
        if ask and status == PaymentStatus.PENDING_AUTHORISATION and payment.step:
            sca = self._payment_sca(payment)
        return PaymentAnswer(payment.bank_id, status, payment.reason, sca, items)

    def _payment_sca(self, payment: BankPayment) -> Interaction:
        step = payment.step or ""
        what = _describe(payment.order)
        if step == "account":
            return NeedsChoice(
                f"Which account should {what} be paid from?",
                [
                    Choice(a.iban or "", f"{a.name} ({a.iban})")
                    for a in self._payable_accounts(payment.username)
                ],
            )
        if step == "code":
            return NeedsCode(
                f"To approve {what}, enter the code we sent to your phone (hint: 123456)"
            )
        if step == "redirect":
            return NeedsRedirect(
                self._consent_page(payment.bank_id), f"Approve {what} at {self.bank_name}"
            )
        return NeedsDecoupledApproval(f"Approve {what} in your Sandbox Bank app")

    # --- the simulated bank -----------------------------------------------------------------

    async def _bank_answers(self, username: str) -> None:
        """What every call to the bank goes through first: delays, outages, throttling."""
        if username == "user_slow":
            await asyncio.sleep(float(self.context.options.get("slow_seconds", 60.0)))
        if username == "user_down" or bank.is_down(self.slug):
            raise ProviderUnavailable(f"{self.bank_name} cannot be reached")
        if username == "user_ratelimited":
            raise RateLimited("Too many requests", retry_after=RETRY_AFTER_SECONDS)

    def _ask(self, state: dict[str, Any], pending: dict[str, str]) -> None:
        state["pending"] = pending
        self.context.state.save(state)

    def _establish(self, state: dict[str, Any]) -> None:
        now = self.context.clock()
        if state["username"] == "user_remint":
            # this bank hands out new account and transaction ids on every connect
            state["epoch"] = int(state.get("epoch", 0)) + 1
        lifetime = (
            timedelta(minutes=5)
            if state["username"] == "user_consent_short"
            else timedelta(days=self.info.consent_days)
        )
        state.pop("pending", None)
        state["consent_expires_at"] = (now + lifetime).isoformat()
        state["session"] = secrets.token_urlsafe(16)
        state["session_started_at"] = now.isoformat()
        self.context.state.save(state)

    def _require_session(self, state: Mapping[str, Any]) -> None:
        if not state.get("session") or state.get("username") not in SCENARIOS:
            raise InvalidCredentials("There is no session with the bank; reconnect")
        expires = state.get("consent_expires_at")
        if expires and self.context.clock() >= datetime.fromisoformat(expires):
            raise ConsentExpired("The consent given to the bank has expired")
        started = state.get("session_started_at")
        if (
            state.get("username") == "user_session"
            and started
            and self.context.clock() >= datetime.fromisoformat(started) + SESSION_LIFETIME
        ):
            raise SessionExpired("The bank asks for the password again")

    async def _session(self) -> dict[str, Any]:
        state = self.context.state.load()
        await self._bank_answers(str(state.get("username", "")))
        self._require_session(state)
        return state

    def _consent_page(self, request_id: str) -> str:
        base = self.context.public_url.rstrip("/")
        language = str(self.context.options.get("user_language") or "")
        return (
            f"{base}/sandbox-bank/authorize?request={quote(request_id)}"
            f"&return_url={quote(self.context.return_url, safe='')}&bank={quote(self.slug)}"
            + (f"&ui_locales={quote(language)}" if language else "")
        )

    def _check_redirect(self, state: dict[str, Any], request_id: str, answer: Answer) -> None:
        params = answer.params
        if answer.kind != "redirect":
            raise InteractionRejected("Expected the bank's redirect")
        if params.get("error") == "access_denied":
            state.pop("pending", None)
            self.context.state.save(state)
            raise InteractionRejected("The bank declined the consent")
        returned = params.get("request", "")
        code = params.get("code", "")
        if not (request_id and _same(returned, request_id)) or not bank.is_valid_consent_code(
            returned, code
        ):
            raise InteractionRejected("The bank's answer could not be verified")

    def _history_days(self) -> int:
        """An ordinary user's history: about two years, or less where the bank keeps less
        (``history_days`` in the catalogue)."""
        days = int(self.context.institution.get("history_days", self.info.history_days))
        return max(1, min(days, USER_HISTORY_DAYS))

    def _profile(self, state: Mapping[str, Any]) -> Profile:
        username = str(state["username"])
        big = username == "user_big"
        return Profile(
            slug=self.slug,
            seed=self.seed,
            currency=self.currency,
            country=self.country,
            username=username,
            today=self.context.clock().date(),
            history_days=BIG_HISTORY_DAYS if big else self._history_days(),
            epoch=int(state.get("epoch", 0)) if username == "user_remint" else 0,
            exact_total=BIG_TOTAL if big else None,
            pending=username in {"user_good", "user_dynamic"},
            refresh_dates=tuple(date.fromisoformat(d) for d in state.get("refresh_dates", ())),
        )


def _payment_step(username: str) -> str | None:
    """The authorisation a payment of ``username`` asks for beyond the login."""
    return {
        "user_otp": "code",
        "user_question": "code",
        "user_decoupled": "decoupled",
        "user_redirect": "redirect",
    }.get(username)


def _order_json(order: PaymentOrder, debtor_iban: str | None) -> dict[str, Any]:
    return {
        "batch": order.batch,
        "debtor_iban": debtor_iban,
        "execution_date": order.execution_date.isoformat() if order.execution_date else None,
        "transfers": [
            {
                "end_to_end_id": t.end_to_end_id,
                "creditor_name": t.creditor_name,
                "creditor_iban": t.creditor_iban,
                "creditor_account": t.creditor_account,
                "amount": str(t.amount),
                "currency": t.currency,
                "remittance": t.remittance,
            }
            for t in order.transfers
        ],
    }


def _describe(order: Mapping[str, Any]) -> str:
    transfers = order.get("transfers", [])
    if len(transfers) == 1:
        t = transfers[0]
        return f"the payment of {t['amount']} {t['currency']} to {t['creditor_name']}"
    total = sum((Decimal(t["amount"]) for t in transfers), Decimal(0))
    currency = transfers[0]["currency"] if transfers else ""
    return f"the batch of {len(transfers)} payments ({total} {currency})"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
