"""The UK Open Banking connector: Read/Write API v3.1.x account information for any UK bank.

The dialogue, following the Open Banking security profile (FAPI 1.0 Advanced):

1. a client-credentials token (``private_key_jwt`` over mutual TLS) creates an
   ``account-access-consent`` with the permissions bankhub reads, ``TransactionFromDateTime``
   from the history depth and ``ExpirationDateTime`` from the consent days;
2. the user is sent to the bank's authorization endpoint with a signed request object naming
   the consent (``openbanking_intent_id``); the bank sends them back to the connect page's
   return step with a code (and in the hybrid flow an ID token, checked here);
3. the code is exchanged for an access token and a refresh token (kept in the login's sealed
   state); unattended refreshes renew the access token with the refresh token, and a bank that
   refuses it, a consent past its ``ExpirationDateTime``, or a 401/403 that a fresh token does
   not cure, ends the login as ``ConsentExpired``.

Options read from :attr:`ConnectorContext.options`:

``psu_ip_address`` (str)
    the user's IP address, sent as ``x-fapi-customer-ip-address`` only while the user is present.
``user_language`` (str)
    the connect page's language, asked of the bank's authorization pages as OpenID Connect's
    ``ui_locales`` inside the signed request object (a bank without the language ignores it).
``signing_key`` (an RSA or EC private key)
    the key of the signing certificate registered in the Open Banking directory (the operator's
    QSealC or OBSeal, ``security/eidas.py``); ``params.signing_key_id`` names it to the bank.
``eidas_problem`` (str)
    why the configured certificates cannot be used now; every call then fails with it.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bankhub.connectors.base import (
    AccountRecord,
    Answer,
    AuthFlow,
    ConnectorContext,
    ConnectorInfo,
    ConsentExpired,
    ConsentInfo,
    InteractionRejected,
    NeedsRedirect,
    ProviderUnavailable,
    TransactionRecord,
)
from bankhub.connectors.ukob import fapi
from bankhub.connectors.ukob.client import AccessTokenRejected, UkobClient, consent_status
from bankhub.connectors.ukob.params import UkobParams
from bankhub.connectors.ukob.parse import account_record, transaction_record
from bankhub.connectors.xs2a.parse import items, obj, text

#: the most pages one read follows
MAX_PAGES = 500
#: an access token this close to its expiry is renewed before use
TOKEN_MARGIN = timedelta(seconds=60)
#: the consent statuses after which the user must connect again
CONSENT_ENDED = frozenset({"Rejected", "Revoked"})


def _utc(raw: Any, what: str, bank: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ProviderUnavailable(f"{bank} sent {raw!r} as the {what}") from None
    if moment.tzinfo is None:  # the spec's times are UTC where no offset is written
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


class UkobConnector:
    """One login at one UK Open Banking bank. State holds the consent id, its expiry and the
    tokens; nothing the user types reaches bankhub (they authenticate at the bank)."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="ukob",
        version="1.0",
        credential_fields=(),
        auth_flows=(AuthFlow.REDIRECT,),
        unattended_refreshes_per_day=4,
        history_days=730,
        consent_days=90,
        description="UK banks speaking the Open Banking Read/Write API v3.1 (account information).",
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self.params = UkobParams.from_institution(context.institution)
        key = context.options.get("signing_key")
        self.client = UkobClient(
            context.http,
            self.params,
            context.clock,
            self._customer_ip,
            key if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else None,
            problem=str(context.options.get("eidas_problem") or "") or None,
        )
        #: whether the user is at the connect page now (their IP address is sent only then)
        self._present = False
        #: whether this run renewed the access token already (a second 401 ends the consent)
        self._refreshed = False

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Create the consent and send the user to the bank to authorise it."""
        self._present = True
        params, now = self.params, self.context.clock()
        metadata = await self.client.metadata()
        response_type = self._response_type(metadata.response_types)
        token = await self._client_token()
        today = datetime.combine(now.date(), time.min, tzinfo=UTC)
        _, body = await self.client.call(
            "POST",
            "/account-access-consents",
            token,
            stage="login",
            present=True,
            body={
                "Data": {
                    "Permissions": list(params.permissions),
                    "ExpirationDateTime": _stamp(now + timedelta(days=params.consent_days)),
                    "TransactionFromDateTime": _stamp(today - timedelta(days=params.history_days)),
                },
                "Risk": {},
            },
        )
        data = obj(body.get("Data"))
        consent_id = text(data.get("ConsentId"))
        if not consent_id:
            raise ProviderUnavailable(f"{params.name} created a consent without a ConsentId")
        redirect_uri, state = self._redirect()
        nonce = secrets.token_urlsafe(24)
        verifier, challenge = fapi.pkce_pair() if metadata.pkce else (None, None)
        request = fapi.request_object(
            self.client.key(),
            params.signing_key_id,
            client_id=params.client_id,
            issuer=metadata.issuer,
            redirect_uri=redirect_uri,
            response_type=response_type,
            scope="openid accounts",
            state=state,
            nonce=nonce,
            consent_id=consent_id,
            now=now,
            code_challenge=challenge,
            ui_locales=str(self.context.options.get("user_language") or "") or None,
        )
        # a fresh login replaces whatever consent and tokens the state held
        self.context.state.save(
            {
                "consent_id": consent_id,
                "pending": {
                    "nonce": nonce,
                    "state": state,
                    "redirect_uri": redirect_uri,
                    "response_type": response_type,
                    "code_verifier": verifier,
                },
            }
        )
        query = {
            "client_id": params.client_id,
            "response_type": response_type,
            "scope": "openid accounts",
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": nonce,
            "request": request,
        }
        joiner = "&" if "?" in metadata.authorization_endpoint else "?"
        raise NeedsRedirect(
            f"{metadata.authorization_endpoint}{joiner}{urlencode(query)}",
            f"Continue at {params.name}",
        )

    async def resume(self, answer: Answer) -> None:
        """The bank sent the user back: check its answer, exchange the code, keep the tokens."""
        self._present = True
        state = self.context.state.load()
        pending = obj(state.get("pending"))
        consent_id = text(state.get("consent_id"))
        if not consent_id or not pending or answer.kind != "redirect":
            raise InteractionRejected("There is no login step waiting for an answer")
        name, reply = self.params.name, answer.params
        if reply.get("state") not in (None, pending["state"]):
            raise InteractionRejected(f"The answer from {name} is not for this login")
        if reply.get("error"):
            if reply["error"] == "access_denied":
                raise InteractionRejected(f"The access was not approved at {name}")
            detail = reply.get("error_description") or reply["error"]
            raise InteractionRejected(f"{name} did not complete the approval ({detail})")
        code = reply.get("code", "")
        if not code:
            raise InteractionRejected(f"{name} sent no authorization code back")
        if pending["response_type"] == "code id_token":
            front = reply.get("id_token", "")
            if not front:
                raise InteractionRejected(f"{name} sent no ID token with the code")
            await self._check_id_token(
                front, pending, consent_id, code=code, state=pending["state"]
            )
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending["redirect_uri"],
        }
        if pending.get("code_verifier"):
            form["code_verifier"] = pending["code_verifier"]
        tokens = await self.client.token(form, stage="login")
        if text(tokens.get("id_token")):
            await self._check_id_token(str(tokens["id_token"]), pending, consent_id)
        elif pending["response_type"] == "code":
            raise InteractionRejected(f"{name} sent no ID token with the access token")
        _, body = await self.client.call(
            "GET",
            f"/account-access-consents/{quote(consent_id, safe='')}",
            await self._client_token(),
            stage="login",
            present=True,
        )
        status = consent_status(body)
        if status != "Authorised":
            raise InteractionRejected(f"{name} reports the consent as {status}")
        expires = obj(body.get("Data")).get("ExpirationDateTime")
        kept: dict[str, Any] = {
            "consent_id": consent_id,
            "expires_at": _stamp(_utc(expires, "consent's expiry", name)) if expires else None,
        }
        self._keep_tokens(kept, tokens)
        self.context.state.save(kept)

    async def open_session(self) -> None:
        """Reopen without the user: the consent must not have expired; the access token is
        renewed with the refresh token when it is (nearly) spent."""
        self._present = False
        state = self._established()
        expires_at = state.get("expires_at")
        if expires_at and _utc(expires_at, "expiry", self.params.name) <= self.context.clock():
            raise ConsentExpired(f"The consent at {self.params.name} expired on {expires_at}")
        access_until = state.get("access_expires_at")
        if not access_until or _utc(access_until, "expiry", self.params.name) - TOKEN_MARGIN <= (
            self.context.clock()
        ):
            await self._refresh(state)

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        """Every account the consent covers, with its balances (one bulk read, paged)."""
        accounts = await self._pages("/accounts", "Account")
        balances = await self._pages("/balances", "Balance")
        records: list[AccountRecord] = []
        for node in accounts:
            if node.get("Status") == "Deleted":
                continue
            account_id = text(node.get("AccountId"))
            own = [b for b in balances if text(b.get("AccountId")) == account_id]
            if not own and account_id:
                own = await self._pages(
                    f"/accounts/{quote(account_id, safe='')}/balances", "Balance"
                )
            records.append(account_record(node, own))
        return records

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Booked and pending transactions between ``since`` and ``until`` (inclusive),
        following ``Links.Next`` across pages."""
        if not account.bank_id:
            return []
        today = self.context.clock().date()
        start = since or today - timedelta(days=self.params.history_days)
        query = {"fromBookingDateTime": _stamp(datetime.combine(start, time.min, tzinfo=UTC))}
        if until is not None:
            query["toBookingDateTime"] = _stamp(datetime.combine(until, time.max, tzinfo=UTC))
        nodes = await self._pages(
            f"/accounts/{quote(account.bank_id, safe='')}/transactions", "Transaction", query
        )
        rows: dict[str, TransactionRecord] = {}
        anonymous: list[TransactionRecord] = []
        for node in nodes:
            row = transaction_record(node, today)
            if row is None:
                continue
            if row.bank_id is None:
                anonymous.append(row)
            else:
                rows.setdefault(row.bank_id, row)
        return [
            row
            for row in [*rows.values(), *anonymous]
            if (since is None or row.booking_date >= since)
            and (until is None or row.booking_date <= until)
        ]

    def identity(self) -> str | None:
        """Open Banking tells bankhub nothing stable of who approved (the ID token's ``sub`` is
        the consent at most banks): the consent's accounts decide."""
        return None

    def consent(self) -> ConsentInfo:
        expires_at = self.context.state.load().get("expires_at")
        if not expires_at:
            return ConsentInfo(None)
        return ConsentInfo(_utc(expires_at, "expiry", self.params.name))

    async def revoke(self) -> None:
        """Delete the consent at the bank (already gone counts as done) and forget it."""
        consent_id = text(self.context.state.load().get("consent_id"))
        if consent_id:
            with contextlib.suppress(ConsentExpired):
                await self.client.call(
                    "DELETE",
                    f"/account-access-consents/{quote(consent_id, safe='')}",
                    await self._client_token(),
                    stage="read",
                )
        self.context.state.save({})

    # --- helpers ----------------------------------------------------------------------------

    async def _client_token(self) -> str:
        tokens = await self.client.token(
            {"grant_type": "client_credentials", "scope": "accounts"}, stage="login"
        )
        return str(tokens["access_token"])

    def _response_type(self, offered: tuple[str, ...]) -> str:
        wanted = self.params.response_type
        if wanted is not None:
            if offered and wanted not in offered:
                raise ProviderUnavailable(
                    f"{self.params.name} does not offer the response type {wanted!r}"
                )
            return wanted
        for candidate in ("code id_token", "code"):
            if candidate in offered:
                return candidate
        raise ProviderUnavailable(
            f"{self.params.name} offers neither the hybrid ('code id_token') nor the code flow"
        )

    def _redirect(self) -> tuple[str, str]:
        """The registered redirect URL and the ``state`` to send: the connect page's return
        step carries the session's own state in its query; the bank must get it without the
        query (a registered URL is compared exactly) and send it back as ``state``."""
        parts = urlsplit(self.context.return_url)
        query = dict(parse_qsl(parts.query))
        state = query.pop("state", None) or secrets.token_urlsafe(24)
        bare = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        return self.params.redirect_url or bare, state

    async def _check_id_token(
        self,
        token: str,
        pending: Mapping[str, Any],
        consent_id: str,
        *,
        code: str | None = None,
        state: str | None = None,
    ) -> None:
        metadata = await self.client.metadata()
        fapi.verify_id_token(
            token,
            await self.client.jwks(),
            issuer=metadata.issuer,
            client_id=self.params.client_id,
            nonce=str(pending["nonce"]),
            consent_id=consent_id,
            now=self.context.clock(),
            bank=self.params.name,
            code=code,
            state=state,
        )

    def _keep_tokens(self, state: dict[str, Any], tokens: Mapping[str, Any]) -> None:
        state["access_token"] = str(tokens["access_token"])
        lifetime = tokens.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 300.0
        state["access_expires_at"] = _stamp(self.context.clock() + timedelta(seconds=seconds))
        if text(tokens.get("refresh_token")):
            state["refresh_token"] = str(tokens["refresh_token"])

    async def _refresh(self, state: dict[str, Any]) -> None:
        refresh_token = text(state.get("refresh_token"))
        if not refresh_token:
            raise ConsentExpired(f"{self.params.name} gave no refresh token; connect again")
        tokens = await self.client.token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, stage="read"
        )
        self._keep_tokens(state, tokens)
        self.context.state.save(state)
        self._refreshed = True

    def _established(self) -> dict[str, Any]:
        state = self.context.state.load()
        if not text(state.get("consent_id")) or not text(state.get("access_token")):
            raise ConsentExpired(f"There is no consent for {self.params.name}; connect again")
        return state

    async def _read(self, url: str, query: Mapping[str, str] | None) -> dict[str, Any]:
        """A resource read; a 401 is answered by one token renewal and one more try."""
        state = self._established()
        try:
            _, body = await self.client.call(
                "GET", url, state["access_token"], stage="read", present=self._present, query=query
            )
        except AccessTokenRejected:
            if self._refreshed:
                raise
            await self._refresh(state)
            _, body = await self.client.call(
                "GET", url, state["access_token"], stage="read", present=self._present, query=query
            )
        return body

    async def _pages(
        self, path: str, key: str, query: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Every ``Data.<key>`` entry across the pages ``Links.Next`` chains."""
        found: list[dict[str, Any]] = []
        target: str | None = path
        seen: set[str] = set()
        while target is not None:
            if target in seen or len(seen) >= MAX_PAGES:
                raise ProviderUnavailable(f"{self.params.name} keeps linking to more pages")
            seen.add(target)
            body = await self._read(target, query)
            found.extend(items(obj(body.get("Data")).get(key)))
            target = text(obj(body.get("Links")).get("Next"))
            query = None  # the next link carries its own query
        return found

    def _customer_ip(self) -> str | None:
        value = self.context.options.get("psu_ip_address")
        return str(value) if value and self._present else None
