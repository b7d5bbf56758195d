"""The XS2A connector: Berlin Group NextGenPSD2 1.3.x account information for any bank.

Every bank-specific fact comes from the institution's catalogue params (see
:class:`~bankhub.connectors.xs2a.params.Xs2aParams`). The SCA dialogue follows the hyperlinks the
bank returns (``scaRedirect``, ``startAuthorisationWith…``, ``selectAuthenticationMethod``,
``authoriseTransaction``) so one code path serves redirect, decoupled and embedded banks.

Options read from :attr:`ConnectorContext.options`:

``psu_ip_address`` (str)
    the user's IP address; sent as ``PSU-IP-Address`` while the user is present (required by
    the spec when creating a consent) and never on unattended refreshes.
``user_language`` (str)
    the connect page's language; sent as ``PSU-Accept-Language`` while the user is present, so
    a bank that words its SCA messages and pages for the user can use it.
``request_signer`` (:class:`~bankhub.connectors.xs2a.signing.RequestSigner`)
    signs every request with the operator's QSealC (``Digest``, ``Signature``,
    ``TPP-Signature-Certificate``); the QWAC is the TLS client certificate of ``context.http``.
``eidas_problem`` (str)
    why the configured eIDAS certificates cannot be used now (one expired since start-up);
    every call then fails with it as ``ProviderUnavailable`` instead of reaching the bank.
``payment_initiation`` (bool)
    the login is for a payment (:mod:`~bankhub.connectors.xs2a.payments`): no account
    consent is created, the user's ID and password are kept in memory for the payment's own
    authorisation, and an OAuth2 pre-step asks for the ``PIS`` scope.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

from bankhub.connectors.base import (
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
    ProviderUnavailable,
    TransactionRecord,
    TransactionStatus,
)
from bankhub.connectors.xs2a.client import Reply, Stage, Xs2aClient
from bankhub.connectors.xs2a.oauth import (
    Pkce,
    Tokens,
    authorization_url,
    request_tokens,
    server_metadata,
    split_return_url,
)
from bankhub.connectors.xs2a.params import OAuthVariant, ScaApproach, Xs2aParams
from bankhub.connectors.xs2a.parse import (
    account_record,
    code_prompt,
    flag,
    items,
    obj,
    text,
    transaction_record,
)
from bankhub.connectors.xs2a.payments import Xs2aPayments
from bankhub.connectors.xs2a.signing import RequestSigner

#: consent states after which the user must connect again
CONSENT_ENDED = frozenset({"rejected", "revokedByPsu", "expired", "terminatedByTpp"})
#: how many SCA steps the bank may chain without asking the user anything
MAX_AUTOMATIC_STEPS = 6
#: the most transaction pages one read follows
MAX_PAGES = 500


def _links(body: Mapping[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, link in obj(body.get("_links")).items():
        href = text(obj(link).get("href"))
        if href:
            found[name] = href
    return found


class Xs2aConnector(Xs2aPayments):
    """One login at one XS2A bank. State holds the consent id, its validity and a pending SCA
    step (or, for a payment, the payment's: ``Xs2aPayments``); the PSU's password and one-time
    codes stay in memory only."""

    info: ClassVar[ConnectorInfo] = ConnectorInfo(
        id="xs2a",
        version="1.0",
        credential_fields=(
            CredentialField(
                "psu_id",
                "Online banking user ID",
                help="Needed by banks that identify you before you approve",
                optional=True,
            ),
            CredentialField(
                "password",
                "Online banking password",
                FieldKind.SECRET,
                help="Only for banks that approve inside bankhub (embedded SCA)",
                optional=True,
            ),
        ),
        auth_flows=(AuthFlow.REDIRECT, AuthFlow.DECOUPLED, AuthFlow.EMBEDDED),
        unattended_refreshes_per_day=4,
        bank_counts_unattended=True,
        history_days=730,
        consent_days=90,
        description=(
            "Banks speaking the Berlin Group NextGenPSD2 (XS2A) account information and "
            "payment initiation API."
        ),
        payment_needs_debtor=True,
    )

    def __init__(self, context: ConnectorContext) -> None:
        self.context = context
        self.params = Xs2aParams.from_institution(context.institution)
        signer = context.options.get("request_signer")
        self.client = Xs2aClient(
            context.http,
            self.params,
            context.clock,
            self._psu_ip_address,
            signer if isinstance(signer, RequestSigner) else None,
            problem=str(context.options.get("eidas_problem") or "") or None,
            bearer=self._access_token,
            psu_language=self._psu_language,
        )
        #: whether the user is at the connect page now (PSU-IP-Address is sent only then)
        self._present = False
        self._psu_id: str | None = None
        self._password: str | None = None

    # --- the Connector protocol -------------------------------------------------------------

    async def authenticate(self, credentials: Mapping[str, str]) -> None:
        """Create a consent and start its SCA; raises the interaction the bank asks for."""
        self._present = True
        params = self.params
        psu_id = credentials.get("psu_id", "").strip() or None
        password = credentials.get("password", "") or None
        embedded = params.preferred_sca_approach is ScaApproach.EMBEDDED
        if (params.psu_id_required or embedded) and not psu_id:
            raise InvalidCredentials(f"{params.name} needs your online banking user ID")
        if embedded and not password:
            raise InvalidCredentials(f"{params.name} needs your online banking password")
        if not self._psu_ip_address():
            raise ProviderUnavailable(
                "The user's IP address (option psu_ip_address) is missing; XS2A banks require "
                "it when a consent is created"
            )
        self._psu_id, self._password = psu_id, password
        if (
            params.preferred_sca_approach is ScaApproach.OAUTH
            and params.oauth_variant is OAuthVariant.PRE_STEP
        ):
            # the bank wants bankhub authorised by the PSU before it accepts a consent
            # (a cancellation's login keeps the payment it is about)
            kept = {k: v for k, v in self.context.state.load().items() if k == "pis"}
            self.context.state.save({**kept, "pending": {}})
            assert params.oauth_metadata_url is not None  # noqa: S101 - checked by the params  # nosec B101
            scope = "PIS" if self._for_payment else params.oauth_scope
            await self._start_oauth(self.context.state.load(), params.oauth_metadata_url, scope)
        if self._for_payment:
            return  # the payment's own authorisation is the user's SCA: no account consent
        await self._create_consent({})

    async def _create_consent(self, kept: Mapping[str, Any]) -> None:
        """POST the consent and follow the SCA the bank asks for; ``kept`` (the pre-step's
        tokens) goes into the fresh state."""
        params = self.params
        today = self.context.clock().date()
        valid_until = today + timedelta(days=params.consent_days)
        access: dict[str, Any] = (
            {"allPsd2": "allAccounts"}
            if params.all_psd2
            else {"accounts": [], "balances": [], "transactions": []}
        )
        redirect = params.preferred_sca_approach in (ScaApproach.REDIRECT, ScaApproach.OAUTH)
        reply = await self.client.call(
            "POST",
            "/v1/consents",
            stage="login",
            headers={
                **self._psu_headers(),
                **self._redirect_headers(),
                "TPP-Redirect-Preferred": flag(redirect),
                "TPP-Decoupled-Preferred": flag(
                    params.preferred_sca_approach is ScaApproach.DECOUPLED
                ),
            },
            body={
                "access": access,
                "recurringIndicator": True,
                "validUntil": valid_until.isoformat(),
                "frequencyPerDay": params.frequency_per_day,
                "combinedServiceIndicator": False,
            },
        )
        consent_id = text(reply.body.get("consentId"))
        if not consent_id:
            raise ProviderUnavailable(f"{params.name} created a consent without a consentId")
        # a fresh login replaces whatever consent and half-done step the state held
        state: dict[str, Any] = {
            **kept,
            "consent_id": consent_id,
            "requested_valid_until": valid_until.isoformat(),
            "pending": {},
        }
        self.context.state.save(state)
        await self._advance(reply, state)

    async def resume(self, answer: Answer) -> None:
        """Continue the pending SCA step with the user's answer."""
        self._present = True
        state = self.context.state.load()
        pending = obj(state.get("pending"))
        step = pending.get("step")
        if not (state.get("consent_id") or step == "oauth") or not step:
            raise InteractionRejected("There is no login step waiting for an answer")
        if step == "oauth":
            await self._after_oauth(state, answer)
        elif step == "redirect":
            await self._after_redirect(state, answer)
        elif step == "decoupled":
            await self._poll_decoupled(state)
        elif step == "choice":
            if answer.kind != "choice" or answer.value not in pending.get("options", []):
                raise InteractionRejected("Choose one of the offered confirmation methods")
            reply = await self._send(
                pending, {"authenticationMethodId": answer.value}, state, stage="answer"
            )
            await self._advance(reply, state)
        elif step == "code":
            code = answer.value.strip()
            if answer.kind != "code" or not code:
                raise InteractionRejected("Enter the code to confirm")
            reply = await self._send(pending, {"scaAuthenticationData": code}, state, "answer")
            await self._advance(reply, state)
        else:
            raise InteractionRejected("There is no login step waiting for an answer")

    async def open_session(self) -> None:
        """Check the saved consent without the user; ended or expired → ``ConsentExpired``."""
        self._present = False
        state = self.context.state.load()
        consent_id = self._consent_id(state)
        valid_until = state.get("valid_until")
        if valid_until and date.fromisoformat(valid_until) < self.context.clock().date():
            raise ConsentExpired(f"The consent at {self.params.name} expired on {valid_until}")
        await self._fresh_token()
        reply = await self.client.call(
            "GET", f"/v1/consents/{quote(consent_id, safe='')}/status", stage="read"
        )
        status = text(reply.body.get("consentStatus")) or "unknown"
        if status != "valid":
            raise ConsentExpired(f"The consent at {self.params.name} is {status}")

    # --- capabilities -----------------------------------------------------------------------

    async def fetch_accounts(self) -> list[AccountRecord]:
        """Every account the consent covers, with its booked and available balances."""
        consent_id = self._consent_id(self.context.state.load())
        await self._fresh_token()
        query = {"withBalance": "true"} if self.params.with_balance else None
        reply = await self.client.call(
            "GET", "/v1/accounts", stage="read", consent_id=consent_id, query=query
        )
        records: list[AccountRecord] = []
        for node in items(reply.body.get("accounts")):
            if node.get("status") == "deleted":
                continue
            balances = items(node.get("balances"))
            resource_id = text(node.get("resourceId"))
            if not balances and resource_id:
                answer = await self.client.call(
                    "GET",
                    f"/v1/accounts/{quote(resource_id, safe='')}/balances",
                    stage="read",
                    consent_id=consent_id,
                )
                balances = items(answer.body.get("balances"))
            records.append(account_record(node, balances))
        return records

    async def fetch_transactions(
        self, account: AccountRecord, since: date | None, until: date | None
    ) -> list[TransactionRecord]:
        """Booked and pending transactions between ``since`` and ``until`` (inclusive), following
        ``_links.next`` across pages."""
        consent_id = self._consent_id(self.context.state.load())
        if not account.bank_id:
            return []
        await self._fresh_token()
        today = self.context.clock().date()
        query = {
            "bookingStatus": self.params.booking_status,
            "dateFrom": (since or today - timedelta(days=self.params.history_days)).isoformat(),
        }
        if until is not None:
            query["dateTo"] = until.isoformat()
        target: str | None = f"/v1/accounts/{quote(account.bank_id, safe='')}/transactions"
        seen_pages: set[str] = set()
        rows: dict[str, TransactionRecord] = {}
        anonymous: list[TransactionRecord] = []
        while target is not None:
            if target in seen_pages or len(seen_pages) >= MAX_PAGES:
                raise ProviderUnavailable(f"{self.params.name} keeps linking to more pages")
            seen_pages.add(target)
            reply = await self.client.call(
                "GET", target, stage="read", consent_id=consent_id, query=query
            )
            report = obj(reply.body.get("transactions"))
            if not report and "download" in _links(reply.body):
                raise ProviderUnavailable(
                    f"{self.params.name} offers these transactions only as a file download"
                )
            for key, status in (
                ("booked", TransactionStatus.BOOKED),
                ("pending", TransactionStatus.PENDING),
            ):
                for node in items(report.get(key)):
                    row = transaction_record(node, status, today)
                    if row.bank_id is None:
                        anonymous.append(row)
                    else:
                        rows.setdefault(row.bank_id, row)
            target = _links(report).get("next") or _links(reply.body).get("next")
            query = {}  # the next link carries its own query
        return [
            row
            for row in [*rows.values(), *anonymous]
            if (since is None or row.booking_date >= since)
            and (until is None or row.booking_date <= until)
        ]

    def identity(self) -> str | None:
        """The PSU-ID the user logged in with, where the bank asks for one. Banks that identify
        the user only on their own pages (redirect, decoupled without a PSU-ID) tell bankhub
        nothing of who approved, so ``None``: the consent's accounts (IBANs) decide. Compared
        ignoring case, so that a reconnect typed in other capitals is not taken for another
        person."""
        return f"psu:{self._psu_id.casefold()}" if self._psu_id else None

    def consent(self) -> ConsentInfo:
        """The consent lasts through its ``validUntil`` day (inclusive, read as UTC)."""
        valid_until = self.context.state.load().get("valid_until")
        if not valid_until:
            return ConsentInfo(None)
        last = date.fromisoformat(valid_until)
        if last >= date.max - timedelta(days=1):
            return ConsentInfo(datetime.max.replace(tzinfo=UTC))
        return ConsentInfo(datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC))

    async def revoke(self) -> None:
        """Delete the consent at the bank (already gone counts as done) and forget it."""
        state = self.context.state.load()
        consent_id = text(state.get("consent_id"))
        if consent_id:
            with contextlib.suppress(ConsentExpired):
                await self.client.call(
                    "DELETE", f"/v1/consents/{quote(consent_id, safe='')}", stage="read"
                )
        self.context.state.save({})

    # --- SCA -------------------------------------------------------------------------------

    async def _advance(self, reply: Reply, state: dict[str, Any], depth: int = 0) -> None:
        """Take the next SCA step the bank's answer calls for: finish, follow a link the
        connector can answer itself, or raise the interaction the user must answer."""
        if depth > MAX_AUTOMATIC_STEPS:
            raise ProviderUnavailable(f"{self.params.name} kept asking for more SCA steps")
        body, links = reply.body, _links(reply.body)
        pending = obj(state.get("pending"))
        announced = reply.headers.get("ASPSP-SCA-Approach", "").upper()
        if announced in ScaApproach.__members__:
            pending["approach"] = announced
        approach = pending.get("approach") or self.params.preferred_sca_approach.value
        if text(body.get("authorisationId")):
            pending["authorisation_id"] = text(body.get("authorisationId"))
        if "scaStatus" in links:
            pending["sca_status_href"] = links["scaStatus"]
        state["pending"] = pending
        self.context.state.save(state)

        sca_status = text(body.get("scaStatus"))
        if sca_status == "failed" or body.get("consentStatus") == "rejected":
            raise InteractionRejected(f"{self.params.name} refused the authorisation")
        if sca_status in ("finalised", "exempted") or body.get("consentStatus") == "valid":
            await self._establish(state)
            return
        if "scaRedirect" in links and (
            "scaOAuth" not in links or self.params.preferred_sca_approach is not ScaApproach.OAUTH
        ):
            self._wait_for(state, step="redirect")
            raise NeedsRedirect(
                self.client.absolute(links["scaRedirect"]), f"Continue at {self.params.name}"
            )
        if "scaOAuth" in links:
            # the integrated variant: the link names the bank's authorization server metadata
            await self._start_oauth(
                state, links["scaOAuth"], f"AIS:{state['consent_id']}", absolute=True
            )
        methods = [
            m for m in items(body.get("scaMethods")) if text(m.get("authenticationMethodId"))
        ]
        select = links.get("selectAuthenticationMethod")
        start_select = links.get("startAuthorisationWithAuthenticationMethodSelection")
        if methods and (select or start_select) and not body.get("chosenScaMethod"):
            step = {"href": select or start_select, "method": "PUT" if select else "POST"}
            options = [
                Choice(
                    str(m["authenticationMethodId"]),
                    text(m.get("name")) or text(m.get("authenticationType")) or "Method",
                )
                for m in methods
            ]
            if len(options) == 1:
                choice: dict[str, Any] = {"authenticationMethodId": options[0].id}
                await self._advance(
                    await self._send(step, choice, state, "login"), state, depth + 1
                )
                return
            self._wait_for(state, step="choice", options=[o.id for o in options], **step)
            raise NeedsChoice("How do you want to confirm the access?", options)
        for name, method in (
            ("startAuthorisationWithPsuAuthentication", "POST"),
            ("updatePsuAuthentication", "PUT"),
        ):
            if name in links:
                password, self._password = self._password, None
                if not password:
                    raise InvalidCredentials(f"{self.params.name} needs your password again")
                step = {"href": links[name], "method": method}
                answer = {"psuData": {"password": password}}
                await self._advance(
                    await self._send(step, answer, state, "login"), state, depth + 1
                )
                return
        for name, method in (
            ("startAuthorisationWithPsuIdentification", "POST"),
            ("updatePsuIdentification", "PUT"),
            ("startAuthorisation", "POST"),
        ):
            if name in links:
                step = {"href": links[name], "method": method}
                await self._advance(await self._send(step, {}, state, "login"), state, depth + 1)
                return
        code_href = links.get("authoriseTransaction")
        code_method = "PUT"
        if code_href is None and "startAuthorisationWithTransactionAuthorisation" in links:
            code_href, code_method = links["startAuthorisationWithTransactionAuthorisation"], "POST"
        authorisation_id = pending.get("authorisation_id")
        if (
            code_href is None
            and authorisation_id
            and (
                body.get("chosenScaMethod")
                or (approach == ScaApproach.EMBEDDED and sca_status == "scaMethodSelected")
            )
        ):
            code_href = (
                f"/v1/consents/{quote(state['consent_id'], safe='')}"
                f"/authorisations/{quote(str(authorisation_id), safe='')}"
            )
        if code_href is not None:
            self._wait_for(state, step="code", href=code_href, method=code_method)
            raise NeedsCode(code_prompt(body, self.params.name))
        if approach == ScaApproach.DECOUPLED or pending.get("sca_status_href") or sca_status:
            self._wait_for(state, step="decoupled")
            raise NeedsDecoupledApproval(
                text(body.get("psuMessage"))
                or f"Approve the access in your {self.params.name} app",
                poll_after_seconds=self.params.decoupled_poll_seconds,
            )
        raise ProviderUnavailable(f"{self.params.name} offered no way to continue the approval")

    async def _after_redirect(self, state: dict[str, Any], answer: Answer) -> None:
        if answer.kind != "redirect":
            raise InteractionRejected(f"Finish the approval at {self.params.name} first")
        status = await self._consent_status(state)
        if status == "valid":
            await self._establish(state)
            return
        if answer.params.get("sca") == "nok" or status in CONSENT_ENDED:
            raise InteractionRejected(f"The access was not approved at {self.params.name}")
        raise InteractionRejected(
            f"{self.params.name} has not confirmed the approval yet (consent {status})"
        )

    async def _poll_decoupled(self, state: dict[str, Any]) -> None:
        status = await self._consent_status(state)
        if status == "valid":
            await self._establish(state)
            return
        if status in CONSENT_ENDED:
            raise InteractionRejected(f"The access was not approved at {self.params.name}")
        href = obj(state.get("pending")).get("sca_status_href")
        if href:
            reply = await self.client.call("GET", str(href), stage="login")
            if reply.body.get("scaStatus") == "failed":
                raise InteractionRejected(f"The approval failed at {self.params.name}")
        raise NeedsDecoupledApproval(
            f"Still waiting for your approval in the {self.params.name} app",
            poll_after_seconds=self.params.decoupled_poll_seconds,
        )

    async def _establish(self, state: dict[str, Any]) -> None:
        """The SCA is done: read the consent back (the bank may adjust validUntil) and keep
        only what unattended refreshes need."""
        consent_id = self._consent_id(state)
        reply = await self.client.call(
            "GET", f"/v1/consents/{quote(consent_id, safe='')}", stage="login"
        )
        status = text(reply.body.get("consentStatus"))
        if status != "valid":
            raise InteractionRejected(f"{self.params.name} reports the consent as {status}")
        valid_until = text(reply.body.get("validUntil")) or state.get("requested_valid_until")
        try:
            valid_until = date.fromisoformat(str(valid_until)).isoformat()
        except ValueError:
            raise ProviderUnavailable(
                f"{self.params.name} sent {valid_until!r} as the consent's validUntil"
            ) from None
        tokens = state.get("oauth")
        state.clear()
        state.update({"consent_id": consent_id, "valid_until": valid_until})
        if tokens:
            state["oauth"] = tokens
        self.context.state.save(state)

    # --- OAuth2 SCA ------------------------------------------------------------------------

    async def _start_oauth(
        self, state: dict[str, Any], metadata_url: str, scope: str, *, absolute: bool = False
    ) -> None:
        """Send the PSU to the bank's authorization endpoint (code flow with PKCE)."""
        params = self.params
        if not params.oauth_client_id:
            raise ProviderUnavailable(
                f"{params.name} asks for the OAuth2 SCA approach, but its catalogue entry has "
                "no oauth_client_id"
            )
        if not self.context.return_url:
            raise ProviderUnavailable("The OAuth2 SCA approach needs the connect page's return URL")
        url = self.client.absolute(metadata_url) if absolute else metadata_url
        metadata = await server_metadata(
            self.context.http, url, params.name, params.timeout_seconds
        )
        redirect_uri, session_state = split_return_url(self.context.return_url)
        pkce = Pkce.new()
        oauth_state = session_state or secrets.token_urlsafe(24)
        self._wait_for(
            state,
            step="oauth",
            oauth={
                "state": oauth_state,
                "verifier": pkce.verifier,
                "redirect_uri": redirect_uri,
                "token_endpoint": metadata.token_endpoint,
            },
        )
        raise NeedsRedirect(
            authorization_url(
                metadata,
                client_id=params.oauth_client_id,
                redirect_uri=redirect_uri,
                scope=scope,
                state=oauth_state,
                pkce=pkce,
            ),
            f"Continue at {params.name}",
        )

    async def _after_oauth(self, state: dict[str, Any], answer: Answer) -> None:
        """The bank's authorization server sent the PSU back: check ``state``, exchange the code
        for tokens, then create the consent (pre-step) or read it back (integrated)."""
        await self._exchange_oauth_code(state, answer)
        if self._for_payment:
            return  # a payment's pre-step: the payment is initiated with the token next
        if state.get("consent_id"):
            await self._establish(state)
        else:
            await self._create_consent({"oauth": state["oauth"]})

    async def _exchange_oauth_code(self, state: dict[str, Any], answer: Answer) -> None:
        """Check the return's ``state`` and exchange its code for tokens, kept in ``state``."""
        pending = obj(state.get("pending"))
        flow = obj(pending.get("oauth"))
        if answer.kind != "redirect":
            raise InteractionRejected(f"Finish the approval at {self.params.name} first")
        returned = answer.params.get("state", "")
        if not hmac.compare_digest(returned.encode(), str(flow.get("state", "")).encode()):
            raise InteractionRejected(
                f"The answer from {self.params.name} does not belong to this login"
            )
        if answer.params.get("error"):
            raise InteractionRejected(
                f"The access was not approved at {self.params.name} ({answer.params['error']})"
            )
        code = answer.params.get("code", "")
        if not code:
            raise InteractionRejected(f"{self.params.name} sent no authorization code back")
        token_endpoint = str(flow["token_endpoint"])
        try:
            tokens = await request_tokens(
                self.context.http,
                token_endpoint,
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": str(flow["redirect_uri"]),
                    "client_id": str(self.params.oauth_client_id),
                    "code_verifier": str(flow["verifier"]),
                },
                now=self.context.clock(),
                bank=self.params.name,
                seconds=self.params.timeout_seconds,
            )
        except ConsentExpired as refused:
            # while the user is here, a refused code is a failed approval, not an old consent
            raise InteractionRejected(str(refused)) from None
        state["oauth"] = tokens.to_state(token_endpoint)
        pending.pop("oauth", None)
        pending.pop("step", None)
        state["pending"] = pending
        self.context.state.save(state)

    def _access_token(self) -> str | None:
        token = obj(self.context.state.load().get("oauth")).get("access_token")
        return str(token) if token else None

    async def _fresh_token(self) -> None:
        """Renew the access token with the refresh token before it expires; a refresh the bank
        refuses means the PSU must authorise again (``ConsentExpired``)."""
        state = self.context.state.load()
        held = obj(state.get("oauth"))
        if not held:
            return
        now = self.context.clock()
        expires_at = datetime.fromisoformat(str(held["expires_at"]))
        if expires_at - timedelta(seconds=self.params.oauth_refresh_margin_seconds) > now:
            return
        refresh = text(held.get("refresh_token"))
        if refresh is None:
            if expires_at <= now:
                raise ConsentExpired(
                    f"The access to {self.params.name} has expired and cannot be renewed"
                )
            return
        token_endpoint = str(held["token_endpoint"])
        tokens: Tokens = await request_tokens(
            self.context.http,
            token_endpoint,
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh,
                "client_id": str(self.params.oauth_client_id),
            },
            now=now,
            bank=self.params.name,
            seconds=self.params.timeout_seconds,
            previous_refresh=refresh,
        )
        state["oauth"] = tokens.to_state(token_endpoint)
        self.context.state.save(state)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def _for_payment(self) -> bool:
        return bool(self.context.options.get("payment_initiation"))

    async def _send(
        self, step: Mapping[str, Any], body: Mapping[str, Any], state: dict[str, Any], stage: Stage
    ) -> Reply:
        """An SCA request to the authorisation resource; carries the PSU-ID while it is known."""
        return await self.client.call(
            str(step.get("method") or "PUT"),
            str(step["href"]),
            stage=stage,
            headers={**self._psu_headers(), **self._redirect_headers()},
            body=body,
        )

    async def _consent_status(self, state: Mapping[str, Any]) -> str:
        consent_id = self._consent_id(state)
        reply = await self.client.call(
            "GET", f"/v1/consents/{quote(consent_id, safe='')}/status", stage="login"
        )
        return text(reply.body.get("consentStatus")) or "unknown"

    def _wait_for(self, state: dict[str, Any], **step: Any) -> None:
        pending = obj(state.get("pending"))
        for key in ("step", "href", "method", "options"):
            pending.pop(key, None)
        pending.update(step)
        state["pending"] = pending
        self.context.state.save(state)

    def _consent_id(self, state: Mapping[str, Any]) -> str:
        consent_id = text(state.get("consent_id"))
        if not consent_id:
            raise ConsentExpired(f"There is no consent for {self.params.name}; connect again")
        return consent_id

    def _psu_ip_address(self) -> str | None:
        if not self._present:
            return None
        value = self.context.options.get("psu_ip_address")
        return str(value) if value else None

    def _psu_language(self) -> str | None:
        if not self._present:
            return None
        value = self.context.options.get("user_language")
        return str(value) if value else None

    def _psu_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._psu_id:
            headers["PSU-ID"] = self._psu_id
            if self.params.psu_id_type:
                headers["PSU-ID-Type"] = self.params.psu_id_type
        return headers

    def _redirect_headers(self) -> dict[str, str]:
        url = self.context.return_url
        if not url:
            return {}
        joiner = "&" if "?" in url else "?"
        return {"TPP-Redirect-URI": url, "TPP-Nok-Redirect-URI": f"{url}{joiner}sca=nok"}
