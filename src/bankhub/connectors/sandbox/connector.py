"""The sandbox connector: scenario-rich fake banks for development, demos and tests.

The username picks the scenario (see PRODUCT.md §3), the password is always ``pass_good`` and a
one-time code is always ``123456``. Data is generated from the institution's ``seed`` and the
username, so the same login shows the same history on every machine.

Options read from :attr:`ConnectorContext.options`:

``decoupled_delay_seconds`` (float, default 3.0)
    how long after the first request ``user_decoupled``'s approval arrives (clock time).
``slow_seconds`` (float, default 60.0)
    how long ``user_slow`` waits before answering any call.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from bankhub.connectors.base import (
    AccountLocked,
    AccountRecord,
    Answer,
    AuthFlow,
    Choice,
    ConnectorContext,
    ConnectorInfo,
    ConsentExpired,
    ConsentInfo,
    CredentialField,
    FieldKind,
    InteractionRejected,
    InvalidCredentials,
    NeedsChoice,
    NeedsCode,
    NeedsDecoupledApproval,
    NeedsRedirect,
    PasswordExpired,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.sandbox import bank
from bankhub.connectors.sandbox.history import Profile, ledger

PASSWORD = "pass_good"  # noqa: S105 - the sandbox's published test password  # nosec B105
ONE_TIME_CODE = "123456"
SECURITY_ANSWER = "blue"

SCENARIOS = frozenset(
    {
        "user_good",
        "user_otp",
        "user_question",
        "user_redirect",
        "user_decoupled",
        "user_locked",
        "user_expired",
        "user_slow",
        "user_down",
        "user_ratelimited",
        "user_big",
        "user_dynamic",
        "user_remint",
        "user_consent_short",
        "user_session",
    }
)
#: how long a ``user_session`` bank session lasts before the bank wants the password again
SESSION_LIFETIME = timedelta(hours=1)

DEVICES = (Choice("phone", "Phone ending in 42"), Choice("tablet", "Tablet (Sandbox Bank app)"))
BIG_HISTORY_DAYS = 5 * 365 + 1
#: how old an ordinary scenario user's accounts are (about two years of history)
USER_HISTORY_DAYS = 730
BIG_TOTAL = 100_000
RETRY_AFTER_SECONDS = 60.0


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
            CredentialField("username", "Username", help="user_good, user_otp, user_redirect…"),
            CredentialField("password", "Password", FieldKind.SECRET, help="pass_good"),
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
            raise NeedsCode("Enter the code we sent to your phone (hint: 123456)")
        if username == "user_question":
            self._ask(state, {"step": "question"})
            raise NeedsCode(
                "Security question: what is your favourite colour?",
                secret=False,
                field_label="Answer",
            )
        if username == "user_redirect":
            request_id = secrets.token_urlsafe(16)
            self._ask(state, {"step": "redirect", "request": request_id})
            raise NeedsRedirect(self._consent_page(request_id), f"Continue at {self.bank_name}")
        if username == "user_decoupled":
            now = self.context.clock().isoformat()
            self._ask(state, {"step": "decoupled", "requested_at": now})
            raise NeedsDecoupledApproval("Approve the login in your Sandbox Bank app")
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
            raise NeedsChoice("Where should we send login notifications?", list(DEVICES))
        elif step == "device":
            if answer.kind != "choice" or answer.value not in {d.id for d in DEVICES}:
                raise InteractionRejected("Choose one of the devices offered")
        elif step == "redirect":
            self._check_redirect(state, str(pending.get("request", "")), answer)
        elif step == "decoupled":
            requested = datetime.fromisoformat(str(pending["requested_at"]))
            delay = float(self.context.options.get("decoupled_delay_seconds", 3.0))
            if self.context.clock() - requested < timedelta(seconds=delay):
                raise NeedsDecoupledApproval("Still waiting for approval in the app")
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
        return [
            t
            for t in transactions or ()
            if (since is None or t.booking_date >= since)
            and (until is None or t.booking_date <= until)
        ]

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
        return (
            f"{base}/sandbox-bank/authorize?request={quote(request_id)}"
            f"&return_url={quote(self.context.return_url, safe='')}&bank={quote(self.slug)}"
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


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
