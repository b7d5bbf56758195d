"""The SimpleFIN connector: claim a setup token once, then read with the access URL.

The access URL is the long-lived credential. It lives only in the connector state (which the
platform encrypts at rest) and never in a message, an exception or a log line. The bridge's
``errors`` of the last read are kept for :meth:`SimplefinConnector.notices`.

Institution params (catalogue): ``custom_currencies`` (optional) maps a custom-currency URL to
an ISO 4217 code; accounts in any other custom currency are skipped with a notice.

Options read from :attr:`ConnectorContext.options`:

``allow_insecure_http`` (bool, default False)
    accept ``http://`` claim and access URLs (a local SimpleFIN server in development or tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar

import httpx

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorInfo,
    ConsentExpired,
    CredentialField,
    FieldKind,
    InteractionRejected,
    InvalidCredentials,
    ProviderUnavailable,
    RateLimited,
    TransactionRecord,
)
from bankhub.connectors.simplefin import protocol
from bankhub.connectors.simplefin.protocol import Access, sanitize

BRIDGE = "The SimpleFIN Bridge"
Window = tuple[int | None, int | None]


class SimplefinConnector:
    """One SimpleFIN access (which may span several banks); one instance serves one run."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="simplefin",
        version="1.0",
        credential_fields=(
            CredentialField(
                "setup_token",
                "SimpleFIN setup token",
                FieldKind.SECRET,
                help="Create a setup token at your SimpleFIN Bridge and paste it here",
            ),
        ),
        auth_flows=(AuthFlow.CREDENTIALS,),
        # each refresh costs two bridge requests; the bridge allows about 24 a day
        unattended_refreshes_per_day=4,
        history_days=90,
        consent_days=180,
        description="Accounts shared through a SimpleFIN Bridge (or a bank's SimpleFIN server).",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self._allow_http = bool(context.options.get("allow_insecure_http", False))
        custom = context.institution.get("custom_currencies") or {}
        self._custom: dict[str, str] = {str(k): str(v) for k, v in dict(custom).items()}
        self._notices: list[str] = []
        self._reads: dict[Window, dict[str, list[dict[str, Any]]]] = {}

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Claim the setup token and keep the access URL it yields."""
        url = protocol.claim_url(credentials.get("setup_token", ""), allow_http=self._allow_http)
        try:
            response = await self.context.http.post(url)
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"{BRIDGE} did not answer the claim in time") from None
        except httpx.HTTPError:
            raise ProviderUnavailable(f"{BRIDGE} could not be reached to claim the token") from None
        if response.status_code == httpx.codes.FORBIDDEN:
            raise InvalidCredentials(
                "This SimpleFIN setup token was already claimed or does not exist. If you did "
                "not use it yourself it may be compromised: disable it at your SimpleFIN Bridge "
                "and create a new one."
            )
        self._raise_for_status(response, "claim")
        access_url = response.text.strip()
        protocol.parse_access_url(access_url, allow_http=self._allow_http)
        self._reads.clear()
        self.context.state.save({"access_url": access_url})

    async def resume(self, answer: Answer) -> None:
        raise InteractionRejected("A SimpleFIN login asks for nothing after the setup token")

    async def open_session(self) -> None:
        """The saved access URL is the session; nothing is asked of the user."""
        self._access()

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        accounts, _ = await self._read({"balances-only": "1"})
        records = []
        for raw in accounts:
            currency = protocol.currency_of(raw, self._custom)
            if currency is None:
                self._notices.append(
                    sanitize(
                        f"The account '{raw.get('name')}' is held in a custom currency "
                        f"({raw.get('currency')}) that bankhub cannot show; it was skipped."
                    )
                )
                continue
            records.append(protocol.account_record(raw, currency))
        return records

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Booked and pending rows; one bridge request serves every account of a window."""
        key = protocol.window(since, until)
        if key not in self._reads:
            params = {"pending": "1"}
            if key[0] is not None:
                params["start-date"] = str(key[0])
            if key[1] is not None:
                params["end-date"] = str(key[1])
            accounts, _ = await self._read(params)
            self._reads[key] = {
                str(raw.get("id")): _rows(raw.get("transactions")) for raw in accounts
            }
        today = self.context.clock().date()
        rows = [
            protocol.transaction_record(raw, account.currency, today)
            for raw in self._reads[key].get(account.bank_id or "", [])
        ]
        return [
            r
            for r in rows
            if (since is None or r.booking_date >= since)
            and (until is None or r.booking_date <= until)
        ]

    def identity(self) -> str | None:
        """An access URL is minted afresh by every claim and names no user, so ``None``: the
        accounts decide, by the bridge's account ids (stable for an account at a bridge)."""
        return None

    def notices(self) -> list[str]:
        """The bridge's messages from the last read (sanitized), plus skipped accounts."""
        return list(self._notices)

    # --- the bridge -------------------------------------------------------------------------

    def _access(self) -> Access:
        url = self.context.state.load().get("access_url")
        if not isinstance(url, str) or not url:
            raise ConsentExpired(
                "No SimpleFIN access is saved for this login; connect again with a new setup token"
            )
        return protocol.parse_access_url(url, allow_http=self._allow_http)

    async def _read(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
        access = self._access()
        try:
            response = await self.context.http.get(
                f"{access.root}/accounts",
                params=params,
                auth=httpx.BasicAuth(access.username, access.password),
            )
        except httpx.TimeoutException:
            raise ProviderUnavailable(f"{BRIDGE} did not answer in time") from None
        except httpx.HTTPError:
            raise ProviderUnavailable(f"{BRIDGE} could not be reached") from None
        if response.status_code == httpx.codes.FORBIDDEN:
            raise ConsentExpired(
                "The SimpleFIN access for this login was revoked or is no longer valid; "
                "connect again with a new setup token"
            )
        self._raise_for_status(response, "read")
        accounts, errors = protocol.decode_account_set(response.content)
        self._notices = list(errors)
        if errors and not accounts:
            quoted = "; ".join(f'"{e}"' for e in errors)
            raise ProviderUnavailable(f"{BRIDGE} returned no accounts and reported: {quoted}")
        return accounts, errors

    @staticmethod
    def _raise_for_status(response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status == httpx.codes.OK:
            return
        if status == httpx.codes.PAYMENT_REQUIRED:
            raise ProviderUnavailable(
                f"{BRIDGE} requires payment (HTTP 402): the SimpleFIN subscription must be "
                "renewed before accounts can be read"
            )
        if status == httpx.codes.TOO_MANY_REQUESTS:
            retry = response.headers.get("Retry-After", "")
            raise RateLimited(
                f"{BRIDGE} refuses more requests for now",
                retry_after=float(retry) if retry.isdigit() else None,
            )
        raise ProviderUnavailable(f"{BRIDGE} answered the {what} with HTTP {status}")


def _rows(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise protocol.ProtocolError("The SimpleFIN server sent 'transactions' that is not a list")
    return [row for row in value if isinstance(row, dict)]
