"""The OFX Direct Connect connector: ACCTINFO for the account list, then a statement each.

Direct Connect sends the user id and password with every request. bankhub keeps them in
memory for one run only, so :meth:`OfxDirectConnector.open_session` always raises
``SessionExpired``: an unattended refresh needs the app's opt-in credential vault (which logs
in again) or the user. The state holds only how to name each account in a request.

Institution params (catalogue): ``url`` (the OFX server), ``org``, ``fid``, ``bankid`` (routing
number when the account list names none), ``ofx_version`` (default 220), ``app_id`` and
``app_version`` (default QWIN 2700, which most banks accept), ``language`` (default ENG).

Options read from :attr:`ConnectorContext.options`:

``allow_insecure_http`` (bool, default False)
    accept an ``http://`` server URL (tests and local development only).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import ClassVar

import httpx

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorInfo,
    CredentialField,
    FieldKind,
    InteractionRejected,
    InvalidCredentials,
    ProviderUnavailable,
    RateLimited,
    SessionExpired,
    TransactionRecord,
)
from bankhub.connectors.ofxdirect import messages
from bankhub.connectors.ofxdirect.messages import AccountRef, Requests, Settings
from bankhub.statements.model import StatementAccount


class OfxDirectConnector:
    """One Direct Connect login at one bank; one instance serves one run."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="ofx",
        version="1.0",
        credential_fields=(
            CredentialField("user_id", "User ID", help="Your online banking user id"),
            CredentialField("password", "Password", FieldKind.SECRET),
        ),
        auth_flows=(AuthFlow.CREDENTIALS,),
        unattended_refreshes_per_day=4,
        history_days=365,
        consent_days=180,
        description="A bank's OFX Direct Connect server (the protocol Quicken and GnuCash use).",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self._credentials: tuple[str, str] | None = None
        self._notices: list[str] = []

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Sign on with an account-list request; keeps the credentials for this run only."""
        userid = credentials.get("user_id", "").strip()
        password = credentials.get("password", "")
        if not userid or not password:
            raise InvalidCredentials("Enter both the user id and the password")
        self._credentials = (userid, password)
        try:
            await self._account_refs()
        except BaseException:
            self._credentials = None
            raise

    async def resume(self, answer: Answer) -> None:
        raise InteractionRejected("An OFX Direct Connect login asks for nothing more")

    async def open_session(self) -> None:
        """Direct Connect has no session to reopen without the password."""
        raise SessionExpired(
            "OFX Direct Connect sends the password with every request and bankhub does not "
            "keep it: log in again (or let the credential vault do it)"
        )

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        """The accounts of the last account list, with balances from a statement request."""
        refs = self._saved_refs() or await self._account_refs()
        records = []
        for ref in refs:
            stmt = await self._statement(ref, None, None, transactions=False)
            records.append(messages.account_record(ref, stmt))
        return records

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        ref = next((r for r in self._saved_refs() if r.acctid == account.bank_id), None)
        if ref is None:
            ref = next((r for r in await self._account_refs() if r.acctid == account.bank_id), None)
        if ref is None:
            raise ProviderUnavailable(f"The bank no longer lists the account {account.name}")
        stmt = await self._statement(ref, since, until, transactions=True)
        return [
            r
            for r in stmt.transactions
            if (since is None or r.booking_date >= since)
            and (until is None or r.booking_date <= until)
        ]

    def identity(self) -> str | None:
        """The online banking user id the bank signed on, compared ignoring case so that a
        reconnect typed in other capitals is not taken for another person."""
        return f"user:{self._credentials[0].casefold()}" if self._credentials else None

    def notices(self) -> list[str]:
        """Accounts of the last account list that are not read (investment, bill pay)."""
        return list(self._notices)

    # --- the bank ---------------------------------------------------------------------------

    def _requests(self) -> tuple[Requests, str]:
        if self._credentials is None:
            raise SessionExpired("Log in again: OFX Direct Connect needs the password")
        settings = Settings.from_params(self.context.institution)
        if not settings.url.startswith("https://") and not self.context.options.get(
            "allow_insecure_http", False
        ):
            raise ProviderUnavailable("The catalogue's OFX server URL must use HTTPS")
        userid, password = self._credentials
        return Requests(settings, userid, self.context.clock), password

    async def _account_refs(self) -> list[AccountRef]:
        requests, password = self._requests()
        answer = await self._post(requests, requests.account_info(password))
        refs, self._notices = messages.account_refs(messages.parse(answer))
        state = self.context.state.load()
        state["accounts"] = [ref.to_state() for ref in refs]
        self.context.state.save(state)
        return refs

    def _saved_refs(self) -> list[AccountRef]:
        saved = self.context.state.load().get("accounts") or []
        return [AccountRef.from_state(item) for item in saved if isinstance(item, dict)]

    async def _statement(
        self, ref: AccountRef, since: date | None, until: date | None, *, transactions: bool
    ) -> StatementAccount:
        requests, password = self._requests()
        body = requests.statement(password, ref, since, until, transactions=transactions)
        return messages.statement(await self._post(requests, body), ref)

    async def _post(self, requests: Requests, body: bytes) -> bytes:
        try:
            response = await self.context.http.post(
                requests.settings.url, content=body, headers=requests.headers
            )
        except httpx.TimeoutException:
            raise ProviderUnavailable("The bank's OFX server did not answer in time") from None
        except httpx.HTTPError:
            raise ProviderUnavailable("The bank's OFX server could not be reached") from None
        if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
            raise RateLimited("The bank's OFX server refuses more requests for now")
        if response.status_code != httpx.codes.OK:
            raise ProviderUnavailable(f"The bank's OFX server answered HTTP {response.status_code}")
        return response.content
