"""GoCardless Bank Account Data (formerly Nordigen) as an upstream: one login, one requisition.

A login is an end-user agreement (what may be read, how far back, for how long) and a
requisition (the link the user follows to their bank, through the provider's pages). The
provider's requisition statuses:

``CR`` created, ``GC`` giving consent, ``UA`` undergoing authentication, ``SA`` selecting
accounts, ``GA`` granting access
    the user has not finished: while they are at the bank the connect page waits for the
    redirect; once they are back it polls a few seconds for the provider to finish (``GC``…``GA``)
    and treats a requisition still at ``CR`` as abandoned.
``LN`` linked
    the accounts can be read; the agreement's validity is the login's consent.
``RJ`` rejected, ``EX`` expired
    at login the user must start again; on an unattended refresh the login's consent has ended
    (``ConsentExpired``), so the user reconnects.

A reconnect creates a new agreement and requisition for the same login and deletes the old
requisition once the new one is linked. The provider gives the accounts of a new requisition new
ids; the connector keeps reporting the first id it saw for the same IBAN (or account number and
currency), so an account keeps its id across reconnects at the provider's level too, not only in
bankhub's own matching.

Options read from :attr:`ConnectorContext.options`:

``gocardless_tokens`` (:class:`~bankhub.connectors.gocardless.client.TokenProvider`)
    the installation's shared token pair; without it every call fails as not configured.
``gocardless_url`` (str)
    the API root (by default the provider's production URL).
``psu_ip_address`` (str)
    unused by the provider's API; accepted like every redirect connector's.
``user_language`` (str)
    the connect page's language, asked of the provider's pages as the requisition's
    ``user_language``; a language the provider refuses is dropped and the requisition made
    without it (its pages then choose), rather than failing the user's connect.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorFailure,
    ConnectorInfo,
    ConsentExpired,
    ConsentInfo,
    InteractionRejected,
    NeedsDecoupledApproval,
    NeedsRedirect,
    ProviderUnavailable,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.gocardless.client import (
    DEFAULT_BASE_URL,
    ConfigurationMissing,
    GoCardlessClient,
    RateLimit,
    Reply,
    TokenProvider,
    failure_for,
)
from bankhub.connectors.xs2a.parse import account_record, items, obj, text, transaction_record

#: the provider's requisition statuses while the user is still on the way
UNFINISHED = frozenset({"GC", "UA", "SA", "GA"})
#: what bankhub asks the provider for: what the connect page's consent lists
ACCESS_SCOPE = ("balances", "details", "transactions")
#: the provider's bounds for an agreement (its OpenAPI description: 1…730 and 1…90 days)
MAX_HISTORY_DAYS = 730
MAX_ACCESS_DAYS = 90
#: how long the connect page waits between two looks at a requisition still being linked
POLL_SECONDS = 2.0


class _Unconfigured:
    """The token provider of a connector built without one: every call says what is missing."""

    async def access_token(self, *, refused: str | None = None) -> str:
        raise ConfigurationMissing(
            "GoCardless is not configured: the operator must set the secret id and key "
            "(bankhub banks gocardless-secret)"
        )


def _refuses_language(body: Any) -> bool:
    """A requisition refused for its ``user_language`` (the field named in the error)."""
    return isinstance(body, Mapping) and "user_language" in body


def _days(institution: Mapping[str, Any], key: str, default: int, highest: int) -> int:
    raw = institution.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = default
    return max(1, min(value, highest))


def _signature(node: Mapping[str, Any], currency: str | None) -> str | None:
    """What names an account across requisitions: its IBAN, else its number and currency."""
    iban = text(node.get("iban"))
    if iban:
        return "iban:" + "".join(iban.split()).upper()
    number = text(node.get("bban")) or text(node.get("maskedPan"))
    if number:
        return f"number:{''.join(number.split()).upper()}:{currency or ''}"
    return None


class GoCardlessConnector:
    """One login through GoCardless Bank Account Data. State: the agreement, the requisition,
    the accounts' stable ids and the requisition a reconnect replaces; no user secret at all
    (the user authenticates on the bank's own pages)."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="gocardless",
        version="1.0",
        credential_fields=(),
        auth_flows=(AuthFlow.REDIRECT,),
        # the provider allows 4 reads of each account a day without the user
        unattended_refreshes_per_day=4,
        history_days=90,
        consent_days=90,
        description="Banks reached through GoCardless Bank Account Data (an upstream "
        "aggregator: about 2,300 banks in the EEA and the UK).",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        institution = context.institution
        self.institution_id = str(institution.get("institution_id") or "")
        self.name = str(institution.get("name") or "the bank")
        self.history_days = _days(institution, "history_days", 90, MAX_HISTORY_DAYS)
        self.access_days = _days(institution, "consent_days", 90, MAX_ACCESS_DAYS)
        tokens = context.options.get("gocardless_tokens")
        provider: TokenProvider = tokens if tokens is not None else _Unconfigured()
        base_url = str(context.options.get("gocardless_url") or DEFAULT_BASE_URL)
        self.client = GoCardlessClient(context.http, base_url, provider)
        #: the per-account limit headers of this run's reads
        self._limits: dict[str, RateLimit] = {}

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Create the agreement and the requisition; send the user to the requisition's link."""
        if not self.institution_id:
            raise ProviderUnavailable(f"{self.name} has no GoCardless institution id")
        agreement = await self.client.call(
            "POST",
            "agreements",
            "enduser",
            stage="login",
            body={
                "institution_id": self.institution_id,
                "max_historical_days": self.history_days,
                "access_valid_for_days": self.access_days,
                "access_scope": list(ACCESS_SCOPE),
            },
        )
        agreement_id = text(obj(agreement.body).get("id"))
        if not agreement_id:
            raise ProviderUnavailable("GoCardless created an agreement without an id")
        reference = str(uuid.uuid4())
        body: dict[str, Any] = {
            "redirect": self.context.return_url,
            "institution_id": self.institution_id,
            "agreement": agreement_id,
            "reference": reference,
            "account_selection": False,
        }
        language = text(self.context.options.get("user_language"))
        if language:
            body["user_language"] = language[:5].upper()
        requisition = await self.client.call(
            "POST", "requisitions", stage="login", body=body, ok=(200, 201, 400)
        )
        if requisition.status == 400 and language and _refuses_language(requisition.body):
            del body["user_language"]
            requisition = await self.client.call(
                "POST", "requisitions", stage="login", body=body, ok=(200, 201, 400)
            )
        if requisition.status == 400:
            raise failure_for(requisition, "login")
        node = obj(requisition.body)
        requisition_id, link = text(node.get("id")), text(node.get("link"))
        if not requisition_id or not link:
            await self._forget_agreement(agreement_id)
            raise ProviderUnavailable("GoCardless created a requisition without an id or a link")
        state = self.context.state.load()
        state["pending"] = {
            "agreement_id": agreement_id,
            "requisition_id": requisition_id,
            "reference": reference,
            "at_bank": True,
        }
        self.context.state.save(state)
        raise NeedsRedirect(link, f"Continue to {self.name}")

    async def resume(self, answer: Answer) -> None:
        """The user is back from the provider (or the page polls): read the requisition."""
        state = self.context.state.load()
        pending = obj(state.get("pending"))
        requisition_id = text(pending.get("requisition_id"))
        if not requisition_id:
            raise InteractionRejected("There is no bank link waiting to finish")
        if answer.kind == "redirect":
            reference = answer.params.get("ref")
            if reference is not None and reference != pending.get("reference"):
                raise InteractionRejected("The bank sent back another link than this one")
            pending["at_bank"] = False
            state["pending"] = pending
            self.context.state.save(state)
        node = obj(
            (await self.client.call("GET", "requisitions", requisition_id, stage="login")).body
        )
        status = text(node.get("status")) or "unknown"
        if status == "LN":
            await self._establish(state, pending, node)
            return
        if status in UNFINISHED and not answer.params.get("error"):
            raise NeedsDecoupledApproval(
                f"{self.name} is finishing the link; this takes a few seconds",
                poll_after_seconds=POLL_SECONDS,
            )
        await self._drop(requisition_id)
        if status == "RJ":
            raise InteractionRejected(f"{self.name} rejected the access")
        if status == "EX":
            raise InteractionRejected(f"The link to {self.name} expired before it was finished")
        detail = answer.params.get("details") or answer.params.get("error")
        raise InteractionRejected(
            f"The access was not given at {self.name}" + (f" ({detail[:200]})" if detail else "")
        )

    async def open_session(self) -> None:
        """Check the requisition without the user: linked and within the agreement, or the
        consent has ended."""
        state = self.context.state.load()
        requisition_id = self._requisition_id(state)
        valid_until = text(state.get("valid_until"))
        if valid_until and datetime.fromisoformat(valid_until) <= self.context.clock():
            raise ConsentExpired(f"The access to {self.name} ended on {valid_until[:10]}")
        node = obj(
            (await self.client.call("GET", "requisitions", requisition_id, stage="read")).body
        )
        status = text(node.get("status")) or "unknown"
        if status in ("EX", "RJ"):
            raise ConsentExpired(
                f"The access to {self.name} has {'expired' if status == 'EX' else 'been rejected'}"
            )
        if status != "LN":
            raise ProviderUnavailable(f"GoCardless reports the link to {self.name} as {status}")

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        """Every linked account with its details and balances; an account the provider no
        longer serves ends the consent."""
        state = self.context.state.load()
        self._requisition_id(state)
        records: list[AccountRecord] = []
        for stable, provider_id in obj(state.get("accounts")).items():
            meta = obj((await self.client.call("GET", "accounts", provider_id, stage="read")).body)
            status = text(meta.get("status"))
            if status in ("EXPIRED", "SUSPENDED"):
                raise ConsentExpired(f"{self.name} reports an account as {status.lower()}")
            details = await self._read(provider_id, "details")
            balances = await self._read(provider_id, "balances")
            node = {**obj(obj(details.body).get("account")), "resourceId": stable}
            if not text(node.get("iban")) and text(meta.get("iban")):
                node["iban"] = text(meta.get("iban"))
            records.append(account_record(node, items(obj(balances.body).get("balances"))))
        return records

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Booked and pending transactions, within the agreement's history."""
        state = self.context.state.load()
        provider_id = obj(state.get("accounts")).get(account.bank_id or "")
        if not isinstance(provider_id, str):
            return []
        today = self.context.clock().date()
        history = int(state.get("history_days") or self.history_days)
        earliest = today - timedelta(days=history - 1)
        start = max(since or earliest, earliest)
        query = {"date_from": start.isoformat()}
        if until is not None:
            query["date_to"] = min(until, today).isoformat()
        reply = await self._read(provider_id, "transactions", query)
        report = obj(obj(reply.body).get("transactions"))
        rows: list[TransactionRecord] = []
        for key, status in (
            ("booked", TransactionStatus.BOOKED),
            ("pending", TransactionStatus.PENDING),
        ):
            for node in items(report.get(key)):
                if not text(node.get("transactionId")) and text(node.get("internalTransactionId")):
                    node = {**node, "transactionId": node["internalTransactionId"]}
                rows.append(transaction_record(node, status, today))
        return [
            row
            for row in rows
            if row.booking_date >= start and (until is None or row.booking_date <= until)
        ]

    def consent(self) -> ConsentInfo:
        """The agreement's end: accepted (linked) plus its access days."""
        valid_until = text(self.context.state.load().get("valid_until"))
        return ConsentInfo(datetime.fromisoformat(valid_until) if valid_until else None)

    def identity(self) -> str | None:
        """The provider does not say who the user is; the accounts decide."""
        return None

    def next_read_possible_at(self) -> datetime | None:
        """When the provider's per-account daily limit lets every account be read again, if
        this run used it up for any of them (``X-RateLimit-Account-Success-*``)."""
        now = self.context.clock()
        waits = [
            limit.reset_seconds
            for limit in self._limits.values()
            if limit.remaining == 0 and limit.reset_seconds
        ]
        return now + timedelta(seconds=max(waits)) if waits else None

    async def revoke(self) -> None:
        """Delete the requisition (and a half-made one) at the provider, then forget them."""
        state = self.context.state.load()
        for requisition_id in (
            text(state.get("requisition_id")),
            text(obj(state.get("pending")).get("requisition_id")),
        ):
            if requisition_id:
                await self._forget(requisition_id)
        self.context.state.save({})

    # --- helpers ----------------------------------------------------------------------------

    async def _read(
        self, provider_id: str, what: str, query: Mapping[str, str] | None = None
    ) -> Reply:
        reply = await self.client.call(
            "GET", "accounts", provider_id, what, stage="read", query=query
        )
        self._limits[f"{provider_id}/{what}"] = reply.account
        return reply

    async def _establish(
        self, state: dict[str, Any], pending: Mapping[str, Any], node: Mapping[str, Any]
    ) -> None:
        """Linked: read the agreement's validity, give the accounts their stable ids, drop the
        requisition this one replaces."""
        agreement_id = str(pending.get("agreement_id") or text(node.get("agreement")) or "")
        agreement = obj(
            (
                await self.client.call("GET", "agreements", "enduser", agreement_id, stage="login")
            ).body
        )
        accepted = _moment(agreement.get("accepted")) or self.context.clock()
        days = agreement.get("access_valid_for_days")
        days = days if isinstance(days, int) and days > 0 else self.access_days
        history = agreement.get("max_historical_days")
        history = history if isinstance(history, int) and history > 0 else self.history_days
        old_ids = {str(v): str(k) for k, v in obj(state.get("accounts")).items()}
        old_signatures = {str(k): str(v) for k, v in obj(state.get("signatures")).items()}
        by_signature = {sig: stable for stable, sig in old_signatures.items()}
        accounts: dict[str, str] = {}
        signatures: dict[str, str] = {}
        for provider_id in [a for a in node.get("accounts") or [] if isinstance(a, str)]:
            meta = obj((await self.client.call("GET", "accounts", provider_id, stage="login")).body)
            signature = _signature(meta, None)
            stable = old_ids.get(provider_id, provider_id)
            if provider_id not in old_ids and signature and signature in by_signature:
                stable = by_signature[signature]
            accounts[stable] = provider_id
            if signature:
                signatures[stable] = signature
        if not accounts:
            raise InteractionRejected(f"No account of {self.name} was shared")
        previous = text(state.get("requisition_id"))
        replaced = previous if previous and previous != pending.get("requisition_id") else None
        state.clear()
        state.update(
            {
                "agreement_id": agreement_id,
                "requisition_id": str(pending.get("requisition_id")),
                "valid_until": (accepted + timedelta(days=days)).astimezone(UTC).isoformat(),
                "history_days": history,
                "accounts": accounts,
                "signatures": signatures,
            }
        )
        self.context.state.save(state)
        if replaced:
            await self._drop(replaced)

    async def _forget(self, requisition_id: str) -> None:
        """Delete a requisition at the provider; one already gone counts as deleted."""
        await self.client.call(
            "DELETE", "requisitions", requisition_id, stage="read", ok=(200, 204, 404)
        )

    async def _drop(self, requisition_id: str) -> None:
        """Delete a requisition that is no longer used, where the provider lets us now; a
        leftover one lapses with its agreement."""
        with contextlib.suppress(ConnectorFailure):
            await self._forget(requisition_id)

    async def _forget_agreement(self, agreement_id: str) -> None:
        with contextlib.suppress(ConnectorFailure):
            await self.client.call(
                "DELETE", "agreements", "enduser", agreement_id, stage="read", ok=(200, 204, 404)
            )

    def _requisition_id(self, state: Mapping[str, Any]) -> str:
        requisition_id = text(state.get("requisition_id"))
        if not requisition_id:
            raise ConsentExpired(f"There is no link to {self.name}; connect again")
        return requisition_id


def _moment(raw: Any) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
