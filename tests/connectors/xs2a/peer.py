"""A stateful NextGenPSD2 bank on 127.0.0.1: the subset of the spec the XS2A connector uses.

Consents move received → valid (redirect approval at the bank page, decoupled approval after a
number of polls, embedded password + code), expire by the peer's own date, are deleted on
DELETE; unattended reads are counted against frequencyPerDay (429 ACCESS_EXCEEDED); transaction
lists honour dateFrom/dateTo and page through ``_links.next``. Faults (any status, a stall) can
be queued per path. The server runs in a thread and stops by itself after ``lifetime`` seconds.
"""

from __future__ import annotations

import html
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.connectors.xs2a.oauth_peer import OAuthRecords, PeerAuthorizationServer, PeerClient
from tests.connectors.xs2a.pis_peer import PaymentsPeer
from tests.support.loopback import serving

PREFIX = "/psd2"
WELL_KNOWN = "/.well-known/oauth-authorization-server"
OAUTH_CLIENT_ID = "bankhub-tpp"


@dataclass
class Fault:
    path: str
    status: int = 503
    code: str | None = None
    retry_after: str | None = None
    stall: float = 0.0
    times: int = 1


@dataclass
class Authorisation:
    id: str
    sca_status: str
    method: str | None = None


@dataclass
class Consent:
    id: str
    approach: str
    valid_until: date
    frequency: int
    redirect_uri: str | None
    nok_uri: str | None
    status: str = "received"
    polls: int = 0
    authorisations: dict[str, Authorisation] = field(default_factory=dict)
    reads: dict[tuple[str, str], int] = field(default_factory=dict)
    #: the OAuth approach: the scope an access token must carry to use this consent
    oauth_scope: str | None = None


@dataclass
class Row:
    id: str | None
    entry: str | None
    day: date
    amount: str
    pending: bool
    text: str
    counterparty: str


def _ledger(account: str, today: date, count: int) -> list[Row]:
    rows = []
    for n in range(count):
        cents = (n * 7919 + len(account) * 131) % 50000 - 25000
        amount = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
        with_id = n % 5 != 0
        rows.append(
            Row(
                id=f"{account}-t{n:04d}" if with_id else None,
                entry=None if with_id else f"{account}-e{n:04d}",
                day=today - timedelta(days=2 + n * 3),
                amount=amount,
                pending=False,
                text=f"Payment {n} on {account}",
                counterparty=f"Party {n % 9}",
            )
        )
    rows.append(Row(f"{account}-p1", None, today, "-19.99", True, "Card hold", "Shop"))
    rows.append(Row(None, f"{account}-pe2", today - timedelta(days=1), "5", True, "", "Refund"))
    return rows


ACCOUNTS = (
    {
        "resourceId": "acc-giro",
        "iban": "DE89370400440532013000",
        "currency": "EUR",
        "name": "Girokonto",
        "product": "Girokonto Plus",
        "cashAccountType": "CACC",
        "ownerName": "Erika Mustermann",
        "balances": [
            {
                "balanceAmount": {"currency": "EUR", "amount": "1523.42"},
                "balanceType": "interimBooked",
            },
            {
                "balanceAmount": {"currency": "EUR", "amount": "3523.42"},
                "balanceType": "interimAvailable",
                "creditLimitIncluded": True,
            },
        ],
    },
    {
        "resourceId": "acc-save",
        "bban": "0532013001",
        "currency": "EUR",
        "product": "Tagesgeld",
        "cashAccountType": "SVGS",
        "ownerNames": [{"name": "Erika Mustermann"}, {"name": "Max Mustermann"}],
        "balances": [
            {
                "balanceAmount": {"currency": "EUR", "amount": "10000.5"},
                "balanceType": "closingBooked",
            }
        ],
    },
    {
        "resourceId": "acc-usd",
        "iban": "DE89370400440532013002",
        "currency": "USD",
        "name": "Dollar account",
        "cashAccountType": "CACC",
        "balances": [
            {"balanceAmount": {"currency": "USD", "amount": "-42.10"}, "balanceType": "expected"}
        ],
    },
)


class PeerBank(PaymentsPeer):
    """The bank's state; tests read and steer it between connector calls (payments:
    :class:`~tests.connectors.xs2a.pis_peer.PaymentsPeer`)."""

    def __init__(
        self,
        *,
        approaches: tuple[str, ...] = ("REDIRECT", "DECOUPLED", "EMBEDDED"),
        psu_id: str = "erika",
        password: str = "open-sesame",
        code: str = "246810",
        methods: tuple[str, ...] = ("sms", "push"),
        decoupled_polls: int = 2,
        decoupled_outcome: str = "approve",
        page_size: int = 25,
        absolute_next: bool = False,
        max_valid_days: int = 90,
        rows_per_account: int = 60,
        today: date = date(2026, 11, 20),
        oauth_variant: str = "integrated",
        oauth_redirect_uris: tuple[str, ...] = ("http://127.0.0.1/v2/connect/return",),
        token_seconds: int = 3600,
    ) -> None:
        self.approaches = approaches
        self.psu_id = psu_id
        self.password = password
        self.code = code
        self.methods = methods
        self.decoupled_polls = decoupled_polls
        self.decoupled_outcome = decoupled_outcome
        self.page_size = page_size
        self.absolute_next = absolute_next
        self.max_valid_days = max_valid_days
        self.rows_per_account = rows_per_account
        self.today = today
        self.consents: dict[str, Consent] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: the status of every answer, in order
        self.answered: list[int] = []
        self.lock = threading.Lock()
        self.origin = ""
        self.oauth_variant = oauth_variant
        #: the authorization server's clock (seconds); tests point it at their FakeClock
        self.now: Callable[[], float] = time.time
        self.oauth_records = OAuthRecords(lambda: self.now(), token_seconds)
        self.oauth_client = PeerClient(OAUTH_CLIENT_ID, list(oauth_redirect_uris))
        self.oauth = PeerAuthorizationServer(
            self.oauth_records, {OAUTH_CLIENT_ID: self.oauth_client}
        )
        self._pis_init()

    # --- steering -------------------------------------------------------------------------

    def fail(self, path: str, status: int = 503, **kwargs: Any) -> None:
        self.faults.append(Fault(path, status, **kwargs))

    def advance(self, days: int) -> None:
        self.today += timedelta(days=days)

    @property
    def base_url(self) -> str:
        return f"{self.origin}{PREFIX}"

    def ledger(self, account: str) -> list[Row]:
        start = date(2026, 11, 20)
        return _ledger(account, start, self.rows_per_account)

    # --- request handling ------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append((method, target, headers))
            for fault in self.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    if fault.stall:
                        stall = fault.stall
                        break
                    extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return fault.status, extra, _error(fault.code or "INTERNAL_SERVER_ERROR")
            else:
                stall = 0.0
        if stall:
            time.sleep(stall)
        with self.lock:
            return self._route(method, path, query, headers, body)

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if path.startswith("/bank/pay/"):
            page = self.pis_bank_page(path.rsplit("/", 1)[-1], query)
            return page or (404, {}, _error("RESOURCE_UNKNOWN"))
        if path.startswith("/bank/sca/"):
            return self._bank_page(path.rsplit("/", 1)[-1], query)
        if path == WELL_KNOWN:
            return 200, {}, self.oauth_metadata()
        if path == "/oauth/authorize":
            return self._authorize(query)
        if path == "/oauth/token" and method == "POST":
            raw = body if isinstance(body, bytes) else b""
            return self.oauth.token(f"{self.origin}{path}", raw, headers)
        if not path.startswith(PREFIX + "/v1/"):
            return 404, {}, _error("RESOURCE_UNKNOWN")
        try:
            uuid.UUID(headers.get("x-request-id", ""))
        except ValueError:
            return 400, {}, _error("FORMAT_ERROR", "X-Request-ID must be a UUID")
        parts = path[len(PREFIX) + 1 :].split("/")[1:]
        if parts[0] == "consents":
            return self._consents(method, parts[1:], headers, body)
        if parts[0] == "accounts":
            return self._accounts(parts[1:], query, headers)
        if parts[0] in ("payments", "bulk-payments"):
            return self.pis_route(method, parts, headers, body)
        return 404, {}, _error("RESOURCE_UNKNOWN")

    # consents ----------------------------------------------------------------------------

    def _consents(
        self, method: str, parts: list[str], headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if not parts:
            return self._create(headers, body)
        consent = self.consents.get(parts[0])
        if consent is None:
            return 403, {}, _error("CONSENT_UNKNOWN")
        self._expire(consent)
        here = f"{PREFIX}/v1/consents/{consent.id}"
        if len(parts) == 1 and method == "DELETE":
            consent.status = "terminatedByTpp"
            return 204, {}, None
        refused = self._token_refused(consent, headers)
        if refused is not None and method == "GET" and len(parts) == 1:
            return refused
        if len(parts) == 1:
            return (
                200,
                {},
                {
                    "access": {"accounts": [], "balances": [], "transactions": []},
                    "recurringIndicator": True,
                    "validUntil": consent.valid_until.isoformat(),
                    "frequencyPerDay": consent.frequency,
                    "lastActionDate": self.today.isoformat(),
                    "consentStatus": consent.status,
                },
            )
        if parts[1] == "status":
            if consent.approach == "DECOUPLED" and consent.status == "received":
                consent.polls += 1
                if consent.polls >= self.decoupled_polls and consent.authorisations:
                    approved = self.decoupled_outcome == "approve"
                    consent.status = "valid" if approved else "rejected"
                    for started in consent.authorisations.values():
                        started.sca_status = "finalised" if approved else "failed"
            return 200, {}, {"consentStatus": consent.status}
        if parts[1] == "authorisations" and len(parts) == 2 and method == "POST":
            return self._start_authorisation(consent, headers, body or {}, here)
        if parts[1] == "authorisations" and len(parts) == 3:
            auth = consent.authorisations.get(parts[2])
            if auth is None:
                return 403, {}, _error("RESOURCE_UNKNOWN")
            if method == "GET":
                return 200, {}, {"scaStatus": auth.sca_status}
            return self._update_authorisation(consent, auth, body or {}, here)
        return 405, {}, _error("SERVICE_INVALID")

    def _create(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        if not headers.get("psu-ip-address"):
            return 400, {}, _error("FORMAT_ERROR", "PSU-IP-Address is missing")
        required = {"access", "recurringIndicator", "validUntil", "frequencyPerDay"}
        if not isinstance(body, dict) or not required <= set(body):
            return 400, {}, _error("FORMAT_ERROR", "consent body incomplete")
        if body["recurringIndicator"] is not True or not isinstance(body["frequencyPerDay"], int):
            return 400, {}, _error("FORMAT_ERROR", "recurringIndicator/frequencyPerDay")
        token = self._bearer(headers)
        oauth = "OAUTH" in self.approaches
        if oauth and self.oauth_variant == "pre-step":
            if token is None:
                return 401, {}, _error("TOKEN_INVALID", "authorise at the bank first (pre-step)")
            approach = "OAUTH"
        elif headers.get("tpp-decoupled-preferred") == "true" and "DECOUPLED" in self.approaches:
            approach = "DECOUPLED"
        elif headers.get("tpp-redirect-preferred") == "true" and oauth:
            approach = "OAUTH"
        elif headers.get("tpp-redirect-preferred") == "true" and "REDIRECT" in self.approaches:
            approach = "REDIRECT"
        elif "EMBEDDED" in self.approaches:
            approach = "EMBEDDED"
        else:
            approach = self.approaches[0]
        if approach == "REDIRECT" and not headers.get("tpp-redirect-uri"):
            return 400, {}, _error("FORMAT_ERROR", "TPP-Redirect-URI is missing")
        requested = date.fromisoformat(body["validUntil"])
        consent = Consent(
            id=uuid.uuid4().hex[:12],
            approach=approach,
            valid_until=min(requested, self.today + timedelta(days=self.max_valid_days)),
            frequency=body["frequencyPerDay"],
            redirect_uri=headers.get("tpp-redirect-uri"),
            nok_uri=headers.get("tpp-nok-redirect-uri"),
        )
        self.consents[consent.id] = consent
        here = f"{PREFIX}/v1/consents/{consent.id}"
        links: dict[str, Any] = {"status": {"href": f"{here}/status"}, "self": {"href": here}}
        if approach == "OAUTH" and token is not None:
            # the pre-step's token already carries the PSU's authorisation
            consent.oauth_scope, consent.status = token.scope, "valid"
            answer = {"consentStatus": "valid", "consentId": consent.id, "_links": links}
            return 201, {"ASPSP-SCA-Approach": "REDIRECT"}, answer
        if approach == "OAUTH":
            consent.oauth_scope = f"AIS:{consent.id}"
            links["scaOAuth"] = {"href": f"{self.origin}{WELL_KNOWN}"}
            answer = {"consentStatus": "received", "consentId": consent.id, "_links": links}
            return 201, {"ASPSP-SCA-Approach": "REDIRECT"}, answer
        if approach == "REDIRECT":
            links["scaRedirect"] = {"href": f"{self.origin}/bank/sca/{consent.id}"}
        elif approach == "DECOUPLED":
            links["startAuthorisationWithPsuIdentification"] = {"href": f"{here}/authorisations"}
        else:
            links["startAuthorisationWithPsuAuthentication"] = {"href": f"{here}/authorisations"}
        answer = {"consentStatus": "received", "consentId": consent.id, "_links": links}
        return 201, {"ASPSP-SCA-Approach": approach}, answer

    # the OAuth SCA approach ---------------------------------------------------------------

    def oauth_metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.origin,
            "authorization_endpoint": f"{self.origin}/oauth/authorize",
            "token_endpoint": f"{self.origin}/oauth/token",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "tls_client_auth"],
        }

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """The bank's authorization page: ``decision=approve`` is the PSU approving."""
        if "decision" not in query:
            return 200, {}, _decision_page("/oauth/authorize", query)
        approve = query.pop("decision", "") == "approve"
        uri = f"{self.origin}/oauth/authorize?{urlencode(query)}"
        status, headers, body, scope = self.oauth.authorize(uri, query, self.psu_id, approve)
        for granted in scope.split():
            if status == 302 and granted.startswith("PIS:"):
                self.pis_oauth_decision(granted.removeprefix("PIS:"), approve)
            consent = self.consents.get(granted.removeprefix("AIS:"))
            if status == 302 and consent is not None and consent.oauth_scope == granted:
                consent.status = "valid" if approve else "rejected"
        return status, headers, body

    def _bearer(self, headers: dict[str, str]) -> Any:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return None
        return self.oauth_records.valid(value)

    def _token_refused(
        self, consent: Consent, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any] | None:
        if consent.oauth_scope is None:
            return None
        scheme, _, value = headers.get("authorization", "").partition(" ")
        token = self.oauth_records.tokens.get(value) if scheme.lower() == "bearer" else None
        if token is None or token.is_revoked():
            return 401, {}, _error("TOKEN_INVALID")
        if token.is_expired():
            return 401, {}, _error("TOKEN_EXPIRED")
        if token.scope != consent.oauth_scope:
            return 401, {}, _error("TOKEN_INVALID", "the token is for another consent")
        return None

    def _bank_page(self, consent_id: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        consent = self.consents.get(consent_id)
        if consent is None or consent.approach != "REDIRECT":
            return 404, {}, _error("RESOURCE_UNKNOWN")
        if "decision" not in query:
            return 200, {}, _decision_page(f"/bank/sca/{consent_id}", {})
        approved = query.get("decision") == "approve"
        consent.status = "valid" if approved else "rejected"
        target = consent.redirect_uri if approved else consent.nok_uri or consent.redirect_uri
        return 302, {"Location": target or "/"}, None

    def _start_authorisation(
        self, consent: Consent, headers: dict[str, str], body: dict[str, Any], here: str
    ) -> tuple[int, dict[str, str], Any]:
        if headers.get("psu-id") != self.psu_id:
            return 401, {}, _error("PSU_CREDENTIALS_INVALID", "unknown PSU-ID")
        auth = Authorisation(uuid.uuid4().hex[:8], "received")
        href = f"{here}/authorisations/{auth.id}"
        if consent.approach == "DECOUPLED":
            consent.authorisations[auth.id] = auth
            auth.sca_status = "started"
            return (
                201,
                {"ASPSP-SCA-Approach": "DECOUPLED"},
                {
                    "scaStatus": "started",
                    "authorisationId": auth.id,
                    "psuMessage": "Please approve in your BankApp.",
                    "_links": {"scaStatus": {"href": href}},
                },
            )
        password = (body.get("psuData") or {}).get("password")
        if password != self.password:
            return 401, {}, _error("PSU_CREDENTIALS_INVALID", "wrong password")
        consent.authorisations[auth.id] = auth
        headers_out = {"ASPSP-SCA-Approach": "EMBEDDED"}
        if len(self.methods) > 1:
            auth.sca_status = "psuAuthenticated"
            return (
                201,
                headers_out,
                {
                    "scaStatus": "psuAuthenticated",
                    "authorisationId": auth.id,
                    "scaMethods": [_method(m) for m in self.methods],
                    "_links": {
                        "selectAuthenticationMethod": {"href": href},
                        "scaStatus": {"href": href},
                    },
                },
            )
        auth.method, auth.sca_status = self.methods[0], "scaMethodSelected"
        return 201, headers_out, _challenge(auth, href)

    def _update_authorisation(
        self, consent: Consent, auth: Authorisation, body: dict[str, Any], here: str
    ) -> tuple[int, dict[str, str], Any]:
        href = f"{here}/authorisations/{auth.id}"
        if "authenticationMethodId" in body:
            if body["authenticationMethodId"] not in self.methods:
                return 400, {}, _error("SCA_METHOD_UNKNOWN")
            auth.method, auth.sca_status = body["authenticationMethodId"], "scaMethodSelected"
            return 200, {}, _challenge(auth, href)
        if "scaAuthenticationData" in body:
            if auth.sca_status != "scaMethodSelected":
                return 403, {}, _error("SERVICE_INVALID", "no method selected")
            if body["scaAuthenticationData"] == self.code:
                auth.sca_status, consent.status = "finalised", "valid"
            else:
                auth.sca_status, consent.status = "failed", "rejected"
            return 200, {}, {"scaStatus": auth.sca_status, "_links": {"scaStatus": {"href": href}}}
        return 400, {}, _error("FORMAT_ERROR")

    def _expire(self, consent: Consent) -> None:
        if consent.status == "valid" and self.today > consent.valid_until:
            consent.status = "expired"

    # accounts ----------------------------------------------------------------------------

    def _accounts(
        self, parts: list[str], query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        consent = self.consents.get(headers.get("consent-id", ""))
        if consent is None:
            return 403, {}, _error("CONSENT_UNKNOWN")
        self._expire(consent)
        if consent.status == "expired":
            return 401, {}, _error("CONSENT_EXPIRED")
        if consent.status != "valid":
            return 401, {}, _error("CONSENT_INVALID")
        refused = self._token_refused(consent, headers)
        if refused is not None:
            return refused
        unattended = not headers.get("psu-ip-address")
        if unattended and "pageIndex" not in query:
            key = (self.today.isoformat(), "/".join(parts))
            consent.reads[key] = consent.reads.get(key, 0) + 1
            if consent.reads[key] > consent.frequency:
                return 429, {"Retry-After": "3600"}, _error("ACCESS_EXCEEDED")
        if not parts:
            wanted = query.get("withBalance") == "true"
            return (
                200,
                {},
                {
                    "accounts": [
                        {k: v for k, v in a.items() if k != "balances" or wanted} for a in ACCOUNTS
                    ]
                },
            )
        account = next((a for a in ACCOUNTS if a["resourceId"] == parts[0]), None)
        if account is None:
            return 404, {}, _error("RESOURCE_UNKNOWN")
        if parts[1:] == ["balances"]:
            return 200, {}, {"balances": account["balances"]}
        if parts[1:] == ["transactions"]:
            return self._transactions(parts[0], query)
        return 404, {}, _error("RESOURCE_UNKNOWN")

    def _transactions(self, account: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if query.get("bookingStatus") not in ("booked", "both"):
            return 400, {}, _error("PARAMETER_NOT_SUPPORTED", "bookingStatus")
        if "dateFrom" not in query:
            return 400, {}, _error("FORMAT_ERROR", "dateFrom is required")
        since = date.fromisoformat(query["dateFrom"])
        until = date.fromisoformat(query["dateTo"]) if "dateTo" in query else self.today
        rows = [
            r
            for r in self.ledger(account)
            if since <= r.day <= until and (query["bookingStatus"] == "both" or not r.pending)
        ]
        page = int(query.get("pageIndex", "0"))
        chunk = rows[page * self.page_size : (page + 1) * self.page_size]
        links: dict[str, Any] = {"account": {"href": f"{PREFIX}/v1/accounts/{account}"}}
        if (page + 1) * self.page_size < len(rows):
            next_query = urlencode({**query, "pageIndex": str(page + 1)})
            href = f"{PREFIX}/v1/accounts/{account}/transactions?{next_query}"
            links["next"] = {"href": f"{self.origin}{href}" if self.absolute_next else href}
        return (
            200,
            {},
            {
                "account": {"iban": "DE89370400440532013000"},
                "transactions": {
                    "booked": [_row(r) for r in chunk if not r.pending],
                    "pending": [_row(r) for r in chunk if r.pending],
                    "_links": links,
                },
            },
        )


def _row(row: Row) -> dict[str, Any]:
    out: dict[str, Any] = {
        "transactionAmount": {"currency": "EUR", "amount": row.amount},
        "remittanceInformationUnstructured": row.text,
    }
    if row.id:
        out["transactionId"] = row.id
    if row.entry:
        out["entryReference"] = row.entry
    out["creditorName" if row.amount.startswith("-") else "debtorName"] = row.counterparty
    if row.pending:
        out["valueDate"] = row.day.isoformat()
    else:
        out["bookingDate"] = row.day.isoformat()
        out["valueDate"] = (row.day + timedelta(days=1)).isoformat()
    if not row.text:
        del out["remittanceInformationUnstructured"]
    return out


def _method(name: str) -> dict[str, str]:
    kind = "SMS_OTP" if name == "sms" else "PUSH_OTP"
    return {"authenticationType": kind, "authenticationMethodId": name, "name": f"{kind} ({name})"}


def _challenge(auth: Authorisation, href: str) -> dict[str, Any]:
    return {
        "scaStatus": "scaMethodSelected",
        "authorisationId": auth.id,
        "chosenScaMethod": _method(auth.method or "sms"),
        "challengeData": {"otpMaxLength": 6, "otpFormat": "integer"},
        "_links": {"authoriseTransaction": {"href": href}, "scaStatus": {"href": href}},
    }


def _decision_page(action: str, keep: dict[str, str]) -> str:
    """The bank's own page where the PSU approves or denies (a browser's way in)."""
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in keep.items()
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href='data:,'>"
        "<title>Peer Bank</title></head>"
        "<body><h1>Peer Bank</h1><h2>Share your account data?</h2>"
        f'<form method="get" action="{html.escape(action)}">{hidden}'
        '<button name="decision" value="approve">Approve</button>'
        '<button name="decision" value="deny">Deny</button></form></body></html>'
    )


def _error(code: str, text: str = "") -> dict[str, Any]:
    message = {"category": "ERROR", "code": code}
    if text:
        message["text"] = text
    return {"tppMessages": [message]}


class _Handler(BaseHTTPRequestHandler):
    bank: PeerBank

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            body = raw
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, answer = self.bank.handle(self.command, self.path, headers, body)
        self.bank.answered.append(status)
        if isinstance(answer, str):
            payload = answer.encode()
            extra = {**extra, "Content-Type": "text/html; charset=utf-8"}
        else:
            payload = json.dumps(answer).encode() if answer is not None else b""
        try:
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("X-Request-ID", headers.get("x-request-id", ""))
            if payload and "Content-Type" not in extra:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running(bank: PeerBank, lifetime: float = 120.0) -> Iterator[PeerBank]:
    """Serve ``bank`` on a free 127.0.0.1 port until the block ends (or ``lifetime`` passes)."""
    handler = type("Handler", (_Handler,), {"bank": bank})
    with serving(handler, lifetime) as origin:
        bank.origin = origin
        yield bank
