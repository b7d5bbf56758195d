"""A stateful GoCardless Bank Account Data (API v2) on 127.0.0.1: what the connector uses.

Tokens: ``token/new`` checks the secret pair, ``token/refresh`` the refresh token; access tokens
expire by the peer's clock (the test's), and a call with an unknown or expired one gets the
provider's 401. Agreements are checked against the institution's ``transaction_total_days`` and
``max_access_valid_for_days``. A requisition starts at ``CR``; its link is the peer's own start
page, where the "user" approves (→ ``LN``, accounts created, redirect with ``?ref=``), declines
(→ ``RJ``, redirect with ``error=``) or stops at any status (``?stop=GA``). Account reads count
against the per-account daily limit (``per_account_limit`` successes per endpoint per day) and
carry the ``HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_*`` headers; past it the peer answers 429. An
expired requisition's accounts answer the provider's ``AccessExpiredError``. A reconnect (a new
requisition for an institution the same ``end_user`` linked before) gets new account ids for
the same IBANs, as the provider does. The server stops by itself after ``lifetime`` seconds.
"""

from __future__ import annotations

import html
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from tests.support.loopback import serving

SECRET_ID = "4f1c6a2e-0d8b-4c51-9e57-1b2f3a4c5d6e"
SECRET_KEY = "peer-secret-key-" + "k" * 48
INSTITUTION = "PEERBANK_PEERDEBB"
IBANS = ("DE89370400440532013000", "DE02120300000000202051")


def _institutions() -> dict[str, dict[str, Any]]:
    return {
        INSTITUTION: {
            "id": INSTITUTION,
            "name": "Peer Bank",
            "bic": "PEERDEBB",
            "transaction_total_days": "540",
            "max_access_valid_for_days": "90",
            "countries": ["DE"],
            "logo": "https://cdn.example/peer.png",
        },
        "SHORTBANK_SHRTGB2L": {
            "id": "SHORTBANK_SHRTGB2L",
            "name": "Short Bank",
            "bic": "SHRTGB2L",
            "transaction_total_days": "90",
            "max_access_valid_for_days": "30",
            "countries": ["GB", "IE"],
            "logo": "https://cdn.example/short.png",
        },
    }


@dataclass
class Requisition:
    id: str
    institution_id: str
    agreement: str
    redirect: str
    reference: str
    user_language: str | None = None
    status: str = "CR"
    accounts: list[str] = field(default_factory=list)


@dataclass
class Account:
    id: str
    iban: str
    name: str
    requisition: str


@dataclass
class Fault:
    path: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


class PeerProvider:
    """The provider's state; every handler runs under ``lock``."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        access_seconds: int = 86_400,
        refresh_seconds: int = 2_592_000,
        per_account_limit: int = 4,
        languages: frozenset[str] | None = None,
    ) -> None:
        self.clock = clock
        #: the ``user_language`` values it takes (None: any); others are refused as the
        #: provider refuses them, with a 400 naming the field
        self.languages = languages
        self.access_seconds = access_seconds
        self.refresh_seconds = refresh_seconds
        self.per_account_limit = per_account_limit
        self.lock = threading.RLock()
        self.origin = ""
        self.institutions = _institutions()
        self.access: dict[str, datetime] = {}
        self.refresh: dict[str, datetime] = {}
        self.agreements: dict[str, dict[str, Any]] = {}
        self.requisitions: dict[str, Requisition] = {}
        self.accounts: dict[str, Account] = {}
        #: the account ids a (institution, IBAN) got first: a reconnect's new ids are new
        self.linked_before: dict[tuple[str, str], int] = {}
        #: successful reads per (account, endpoint, day)
        self.reads: dict[tuple[str, str, date], int] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.tokens_issued = 0
        self.tokens_refreshed = 0

    # --- test controls ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.origin

    def fail(self, path: str, status: int, body: dict[str, Any], **kwargs: Any) -> None:
        self.faults.append(Fault(path, status, body, **kwargs))

    def set_status(self, requisition_id: str, status: str) -> None:
        with self.lock:
            requisition = self.requisitions[requisition_id]
            if status == "LN" and not requisition.accounts:
                self._link(requisition)
            requisition.status = status

    def only_requisition(self) -> Requisition:
        live = list(self.requisitions.values())
        assert len(live) == 1, live
        return live[0]

    def calls(self, method: str, fragment: str) -> list[tuple[str, str, dict[str, str], Any]]:
        return [r for r in self.requests if r[0] == method and fragment in r[1]]

    # --- request handling ------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append((method, target, headers, body))
            for fault in self.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    return fault.status, dict(fault.headers), fault.body
            if path.startswith("/start/"):
                return self._start_page(path.split("/")[2], query)
            if not path.startswith("/api/v2/") or not path.endswith("/"):
                return 404, {}, {"detail": "Not found.", "status_code": 404}
            segments = path[len("/api/v2/") : -1].split("/")
            if segments[0] == "token":
                return self._token(segments[1:], body)
            if not self._authorised(headers):
                return (
                    401,
                    {},
                    {
                        "summary": "Authentication failed",
                        "detail": "Token is invalid or expired",
                        "status_code": 401,
                    },
                )
            if segments == ["institutions"]:
                country = query.get("country", "").upper()
                found = [i for i in self.institutions.values() if country in i["countries"]]
                return 200, {}, found
            if segments[0] == "agreements":
                return self._agreements(method, segments[2:], body)
            if segments[0] == "requisitions":
                return self._requisitions(method, segments[1:], body)
            if segments[0] == "accounts":
                return self._accounts(segments[1:], query)
            return 404, {}, {"detail": "Not found.", "status_code": 404}

    def _token(self, segments: list[str], body: Any) -> tuple[int, dict[str, str], Any]:
        now = self.clock()
        body = body if isinstance(body, dict) else {}
        if segments == ["new"]:
            if body.get("secret_id") != SECRET_ID or body.get("secret_key") != SECRET_KEY:
                return (
                    401,
                    {},
                    {
                        "summary": "Authentication failed",
                        "detail": "No active account found with the given credentials",
                        "status_code": 401,
                    },
                )
            refresh = f"refresh-{uuid.uuid4()}"
            self.refresh[refresh] = now + timedelta(seconds=self.refresh_seconds)
            self.tokens_issued += 1
        elif segments == ["refresh"]:
            refresh = str(body.get("refresh") or "")
            if self.refresh.get(refresh, now) <= now:
                return (
                    401,
                    {},
                    {
                        "summary": "Invalid token",
                        "detail": "Token is invalid or expired",
                        "status_code": 401,
                    },
                )
            self.tokens_refreshed += 1
        else:
            return 404, {}, {"detail": "Not found.", "status_code": 404}
        access = f"access-{uuid.uuid4()}"
        self.access[access] = now + timedelta(seconds=self.access_seconds)
        answer: dict[str, Any] = {"access": access, "access_expires": self.access_seconds}
        if segments == ["new"]:
            answer |= {"refresh": refresh, "refresh_expires": self.refresh_seconds}
        return 200, {}, answer

    def _authorised(self, headers: dict[str, str]) -> bool:
        token = headers.get("authorization", "").removeprefix("Bearer ")
        expires = self.access.get(token)
        return expires is not None and expires > self.clock()

    def _agreements(
        self, method: str, segments: list[str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and not segments:
            body = body if isinstance(body, dict) else {}
            institution = self.institutions.get(str(body.get("institution_id")))
            if institution is None:
                return (
                    400,
                    {},
                    {
                        "institution_id": {
                            "summary": f"Unknown Institution ID {body.get('institution_id')}",
                            "detail": "Get Institution IDs from /institutions/?country=",
                        },
                        "status_code": 400,
                    },
                )
            history = body.get("max_historical_days", 90)
            access = body.get("access_valid_for_days", 90)
            if not 0 < history <= int(institution["transaction_total_days"]):
                return (
                    400,
                    {},
                    {
                        "max_historical_days": [
                            {
                                "summary": "Incorrect max_historical_days",
                                "detail": "max_historical_days must be > 0 and <= "
                                f"{institution['id']} transaction_total_days",
                            }
                        ],
                        "status_code": 400,
                    },
                )
            if not 0 < access <= int(institution["max_access_valid_for_days"]):
                return (
                    400,
                    {},
                    {
                        "access_valid_for_days": [
                            {
                                "summary": "Incorrect access_valid_for_days",
                                "detail": "access_valid_for_days must be > 0 and <= "
                                f"{institution['max_access_valid_for_days']}",
                            }
                        ],
                        "status_code": 400,
                    },
                )
            agreement = {
                "id": str(uuid.uuid4()),
                "created": _wire(self.clock()),
                "institution_id": institution["id"],
                "max_historical_days": history,
                "access_valid_for_days": access,
                "access_scope": body.get("access_scope") or ["balances", "details", "transactions"],
                "accepted": None,
            }
            self.agreements[agreement["id"]] = agreement
            return 201, {}, agreement
        if len(segments) == 1 and segments[0] in self.agreements:
            if method == "GET":
                return 200, {}, self.agreements[segments[0]]
            if method == "DELETE":
                del self.agreements[segments[0]]
                return 200, {}, {"summary": "End User Agreement deleted", "status_code": 200}
        return 404, {}, {"detail": "Not found.", "status_code": 404}

    def _requisitions(
        self, method: str, segments: list[str], body: Any
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and not segments:
            body = body if isinstance(body, dict) else {}
            agreement = self.agreements.get(str(body.get("agreement")))
            if agreement is None or agreement["institution_id"] != body.get("institution_id"):
                return (
                    400,
                    {},
                    {
                        "agreement": {"summary": "Incorrect agreement", "detail": "unknown"},
                        "status_code": 400,
                    },
                )
            language = body.get("user_language")
            refused = self.languages is not None and language not in self.languages
            if language is not None and refused:
                said = f"'{language}' is invalid or not supported language"
                return (
                    400,
                    {},
                    {
                        "user_language": {
                            "summary": "Provided user_language is invalid or not supported",
                            "detail": said,
                        },
                        "status_code": 400,
                    },
                )
            requisition = Requisition(
                str(uuid.uuid4()),
                str(body["institution_id"]),
                agreement["id"],
                str(body.get("redirect") or ""),
                str(body.get("reference") or ""),
                str(language) if language is not None else None,
            )
            self.requisitions[requisition.id] = requisition
            return 201, {}, self._requisition(requisition)
        if len(segments) == 1 and segments[0] in self.requisitions:
            requisition = self.requisitions[segments[0]]
            if method == "GET":
                return 200, {}, self._requisition(requisition)
            if method == "DELETE":
                del self.requisitions[requisition.id]
                for account_id in requisition.accounts:
                    self.accounts.pop(account_id, None)
                return 200, {}, {"summary": "Requisition deleted", "status_code": 200}
        return 404, {}, {"detail": "Not found.", "status_code": 404}

    def _requisition(self, requisition: Requisition) -> dict[str, Any]:
        return {
            "id": requisition.id,
            "created": _wire(self.clock()),
            "redirect": requisition.redirect,
            "status": requisition.status,
            "institution_id": requisition.institution_id,
            "agreement": requisition.agreement,
            "reference": requisition.reference,
            "accounts": list(requisition.accounts),
            "link": f"{self.origin}/start/{requisition.id}",
            "account_selection": False,
        }

    def _link(self, requisition: Requisition) -> None:
        agreement = self.agreements[requisition.agreement]
        agreement["accepted"] = _wire(self.clock())
        for index, iban in enumerate(IBANS):
            account = Account(str(uuid.uuid4()), iban, f"Peer account {index + 1}", requisition.id)
            self.accounts[account.id] = account
            requisition.accounts.append(account.id)
            key = (requisition.institution_id, iban)
            self.linked_before[key] = self.linked_before.get(key, 0) + 1

    def _start_page(
        self, requisition_id: str, query: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        """The provider's and the bank's pages in one: approve, decline or stop midway."""
        requisition = self.requisitions.get(requisition_id)
        if requisition is None:
            return 404, {}, {"detail": "Not found.", "status_code": 404}
        choice = query.get("choice")
        if choice is None:
            page = (
                '<!doctype html><link rel="icon" href="data:,"><title>Peer Bank</title>'
                "<h1>Peer Bank</h1>"
                f'<a id="approve" href="/start/{html.escape(requisition_id)}?choice=approve">'
                "Approve</a> "
                f'<a id="decline" href="/start/{html.escape(requisition_id)}?choice=decline">'
                "Decline</a>"
            )
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        extra = {"ref": requisition.reference}
        if choice == "approve":
            stop = query.get("stop")
            if stop:
                requisition.status = stop
            else:
                self.set_status(requisition.id, "LN")
        else:
            requisition.status = "RJ"
            extra["error"] = "UserCancelledSession"
            extra["details"] = "User cancelled the session."
        return 302, {"Location": _with_query(requisition.redirect, extra)}, None

    def _accounts(
        self, segments: list[str], query: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        account = self.accounts.get(segments[0])
        if account is None:
            return (
                404,
                {},
                {"summary": f"Account: {segments[0]} not found", "detail": "", "status_code": 404},
            )
        requisition = self.requisitions[account.requisition]
        if len(segments) == 1:
            status = "EXPIRED" if requisition.status == "EX" else "READY"
            return (
                200,
                {},
                {
                    "id": account.id,
                    "created": _wire(self.clock()),
                    "last_accessed": None,
                    "iban": account.iban,
                    "institution_id": requisition.institution_id,
                    "status": status,
                },
            )
        what = segments[1]
        if requisition.status == "EX":
            return (
                401,
                {},
                {
                    "summary": "Couldn't update account transactions",
                    "detail": "Access has expired or it has been revoked. To restore access "
                    "reconnect the account.",
                    "type": "AccessExpiredError",
                    "status_code": 401,
                },
            )
        now = self.clock()
        key = (account.id, what, now.date())
        used = self.reads.get(key, 0)
        reset = int(
            (
                datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC) - now
            ).total_seconds()
        )
        if used >= self.per_account_limit:
            return (
                429,
                self._limit_headers(0, reset),
                {
                    "summary": "Rate limit exceeded",
                    "detail": f"The rate limit for this resource is {self.per_account_limit}/day. "
                    f"Please try again in {reset} seconds",
                    "status_code": 429,
                },
            )
        self.reads[key] = used + 1
        headers = self._limit_headers(self.per_account_limit - used - 1, reset)
        if what == "details":
            return (
                200,
                headers,
                {
                    "account": {
                        "resourceId": account.id,
                        "iban": account.iban,
                        "currency": "EUR",
                        "ownerName": "Erika Mustermann",
                        "name": account.name,
                        "cashAccountType": "CACC",
                    }
                },
            )
        if what == "balances":
            return (
                200,
                headers,
                {
                    "balances": [
                        {
                            "balanceAmount": {"amount": "1234.56", "currency": "EUR"},
                            "balanceType": "closingBooked",
                            "referenceDate": (now.date() - timedelta(days=1)).isoformat(),
                        },
                        {
                            "balanceAmount": {"amount": "1200.06", "currency": "EUR"},
                            "balanceType": "interimAvailable",
                        },
                    ]
                },
            )
        if what == "transactions":
            return 200, headers, {"transactions": self._ledger(account, query)}
        return 404, {}, {"detail": "Not found.", "status_code": 404}

    def _limit_headers(self, remaining: int, reset: int) -> dict[str, str]:
        return {
            "HTTP_X_RATELIMIT_LIMIT": "100",
            "HTTP_X_RATELIMIT_REMAINING": "99",
            "HTTP_X_RATELIMIT_RESET": "60",
            "HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_LIMIT": str(self.per_account_limit),
            "HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_REMAINING": str(remaining),
            "HTTP_X_RATELIMIT_ACCOUNT_SUCCESS_RESET": str(reset),
        }

    def _ledger(self, account: Account, query: dict[str, str]) -> dict[str, Any]:
        today = self.clock().date()
        agreement = self.agreements.get(self.requisitions[account.requisition].agreement, {})
        earliest = today - timedelta(days=int(agreement.get("max_historical_days", 90)) - 1)
        start = date.fromisoformat(query["date_from"]) if "date_from" in query else earliest
        end = date.fromisoformat(query["date_to"]) if "date_to" in query else today
        booked = []
        for offset in range(1, 6):
            day = today - timedelta(days=offset * 3)
            if not start <= day <= end or day < earliest:
                continue
            credit = offset % 2 == 0
            booked.append(
                {
                    "transactionId": f"{account.iban[-4:]}-{day.isoformat()}",
                    "bookingDate": day.isoformat(),
                    "valueDate": day.isoformat(),
                    "transactionAmount": {
                        "amount": f"{'' if credit else '-'}{offset * 10}.25",
                        "currency": "EUR",
                    },
                    "creditorName" if not credit else "debtorName": f"Party {offset}",
                    "remittanceInformationUnstructured": f"Payment {offset}",
                    "bankTransactionCode": "PMNT-RCDT-ESCT" if credit else "PMNT-ICDT-ESCT",
                }
            )
        pending = [
            {
                "internalTransactionId": f"pending-{account.iban[-4:]}",
                "valueDate": today.isoformat(),
                "transactionAmount": {"amount": "-4.50", "currency": "EUR"},
                "creditorName": "Coffee Bar",
                "remittanceInformationUnstructured": "Card payment Coffee Bar",
            }
        ]
        return {"booked": booked, "pending": pending}


def _wire(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{urlencode(extra)}" if parts.query else urlencode(extra)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class _Handler(BaseHTTPRequestHandler):
    peer: PeerProvider

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, extra, answer = self.peer.handle(self.command, self.path, headers, body)
        if isinstance(answer, str):
            payload = answer.encode()
        else:
            payload = json.dumps(answer).encode() if answer is not None else b""
        try:
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if payload and "Content-Type" not in extra:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def running(peer: PeerProvider, lifetime: float = 300.0) -> Iterator[PeerProvider]:
    """Serve ``peer`` on a free 127.0.0.1 port until the block ends (or ``lifetime`` passes)."""
    handler = type("Handler", (_Handler,), {"peer": peer})
    with serving(handler, lifetime) as origin:
        peer.origin = origin
        yield peer
