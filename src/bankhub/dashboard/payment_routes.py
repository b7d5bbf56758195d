"""An app's Payments page: its payments and batches (filtered by status, kind, currency, dates
and amounts, page by page), a payment's detail with its status history and the bank's answers,
a batch's transfers; a test payment on sandbox apps; the payment switch and daily limits.

What is paid and to whom is sealed at rest (``bankhub.payments.models``), so the amount filter
opens each candidate row: the clear columns (app, status, kind, currency, creation time) narrow
the rows first, then at most :data:`SCAN_LIMIT` of them are opened for one page, and the page
says how far it looked. Viewers see amounts and creditor names, but creditor accounts only
masked and no remittance text (``roles.Action.PAYMENTS_DETAILS``). A page of the list and a
payment's detail are audited as reads of account data, by the member.

A test payment goes through the very service the API uses (``payments.initiate``: the same
checks, switch and daily limits) and the same ``Idempotency-Key`` store: the form carries a key
made when the page was drawn, so a double submit gets the first payment, never a second one.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, URLEncodedBody
from litestar.response import Redirect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.principal import HubDep, hub_of, public_url
from bankhub.audit import services as audit
from bankhub.catalogue import Catalogue
from bankhub.connectors.base import PaymentStatus
from bankhub.customers import services as customers
from bankhub.dashboard import paging, roles, services
from bankhub.dashboard.app_routes import APPS, _app_page, app_of
from bankhub.dashboard.models import Member
from bankhub.dashboard.pages import (
    HEADERS,
    PREFIX,
    Refused,
    field_of,
    go,
    member_of,
    page,
    visit_of,
)
from bankhub.dashboard.roles import Action
from bankhub.errors import DomainError, ErrorCode
from bankhub.partners import modes
from bankhub.partners.models import App
from bankhub.payments import services as payments
from bankhub.payments import validation
from bankhub.payments.models import BATCH, SINGLE, Payment
from bankhub.security import idempotency
from bankhub.security.crypto import Cipher
from bankhub.security.secrets import SecretHasher

AnyRequest = Request[Any, Any, Any]
Form = URLEncodedBody[dict[str, str]]

#: where the connect page sends a member back after a test payment (the seed's callback form)
RETURNED = f"{PREFIX}/payments/returned"
PAGE_SIZE = 50
#: rows opened at most to fill one page of an amount filter (each is decrypted)
SCAN_LIMIT = 2000
#: the customer every test payment of an app belongs to (made on first use)
TEST_CUSTOMER = "dashboard-test-payments"
#: the idempotency key a test payment form carries (``secrets.token_urlsafe``)
_FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: the API's bound on the daily count (``PaymentSettingsIn``)
MAX_DAILY_COUNT = 1_000_000
#: a test batch holds this many transfers at most
MAX_TEST_BATCH = 10
DONE = {
    "settings": "The payment settings were saved.",
    "success": "The bank took the test payment.",
    "cancelled": "The test payment was cancelled on the connect page.",
    "error": "The test payment did not go through; its status says why.",
}


# --- the list ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    status: str
    kind: str
    currency: str
    since: date | None
    until: date | None
    min_amount: Decimal | None
    max_amount: Decimal | None

    def params(self) -> dict[str, str]:
        """The filters as a link's query carries them (empty ones too)."""
        return {
            "status": self.status,
            "kind": self.kind,
            "currency": self.currency,
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
            "min": _plain(self.min_amount) if self.min_amount is not None else "",
            "max": _plain(self.max_amount) if self.max_amount is not None else "",
        }

    def query(self) -> str:
        return urlencode({k: v for k, v in self.params().items() if v})


def _plain(amount: Decimal) -> str:
    return format(amount, "f")


def _filters(params: Any, problems: list[str]) -> Filters:
    def text(name: str, limit: int = 40) -> str:
        value = params.get(name) or ""
        return value.strip()[:limit] if isinstance(value, str) else ""

    status = text("status")
    if status and status not in set(PaymentStatus):
        problems.append(f"Unknown status {status!r}.")
        status = ""
    kind = text("kind")
    if kind not in ("", SINGLE, BATCH):
        problems.append("Kind is single or batch.")
        kind = ""
    currency = text("currency").upper()
    if currency and validation.currency_scale(currency) is None:
        problems.append(f"{currency!r} is not an ISO 4217 currency code.")
        currency = ""

    def day(name: str, label: str) -> date | None:
        value = text(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            problems.append(f"{label} must be a date (YYYY-MM-DD).")
            return None

    def amount(name: str, label: str) -> Decimal | None:
        value = text(name)
        if not value:
            return None
        try:
            found = Decimal(value)
        except InvalidOperation:
            found = Decimal(-1)
        if not found.is_finite() or found < 0:
            problems.append(f"{label} must be an amount such as 25 or 12.50.")
            return None
        return found

    since, until = day("from", "From"), day("to", "To")
    low, high = amount("min", "Minimum amount"), amount("max", "Maximum amount")
    return Filters(status, kind, currency, since, until, low, high)


@dataclass(frozen=True, slots=True)
class Row:
    payment: Payment
    total: str


#: newest first; the id orders payments made in the same instant
PAYMENTS = paging.Keyset((paging.Key(Payment.created_at, "time"), paging.Key(Payment.id, "str")))


async def _listing(
    db: AsyncSession, cipher: Cipher, app: App, wanted: Filters, window: paging.Window
) -> paging.Page[Row]:
    """A page of the app's payments; with an amount filter, a page opens at most
    ``SCAN_LIMIT`` payments (each is decrypted) and its next link goes on from there."""
    query = select(Payment).where(Payment.app_id == app.id)
    if wanted.status:
        query = query.where(Payment.status == wanted.status)
    if wanted.kind:
        query = query.where(Payment.kind == wanted.kind)
    if wanted.currency:
        query = query.where(Payment.currency == wanted.currency)
    if wanted.since:
        start = datetime.combine(wanted.since, time.min, tzinfo=UTC)
        query = query.where(Payment.created_at >= start)
    if wanted.until:
        end = datetime.combine(wanted.until + timedelta(days=1), time.min, tzinfo=UTC)
        query = query.where(Payment.created_at < end)

    def keep(payment: Payment) -> Row | None:
        total = Decimal(payments.open_payment(cipher, payment)["total"])
        return Row(payment, _plain(total)) if _within(total, wanted) else None

    return await paging.fetch(db, query, PAYMENTS, window, keep=keep, scan_limit=SCAN_LIMIT)


def _within(total: Decimal, wanted: Filters) -> bool:
    if wanted.min_amount is not None and total < wanted.min_amount:
        return False
    return wanted.max_amount is None or total <= wanted.max_amount


def _sandbox_banks(catalogue: Catalogue, app: App) -> list[tuple[int, str]]:
    """The sandbox banks a test payment can go to, when the app is a sandbox app."""
    if modes.mode_of(app) is not modes.Mode.SANDBOX:
        return []
    return [
        (s.id, s.name)
        for s in modes.visible(app, catalogue.services)
        if modes.is_sandbox(s) and s.listed
    ]


async def _payments_page(
    request: AnyRequest,
    client_id: str,
    *,
    notice: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
) -> Response[Any]:
    hub = hub_of(request)
    problems: list[str] = []
    wanted = _filters(request.query_params, problems)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        window = paging.window_of(request.query_params, default=PAGE_SIZE)
        listing = await _listing(db, hub.keyring, app, wanted, window)
        if listing.problem:
            problems.append(listing.problem)
        settings = await payments.settings_of(db, app.id)
        # amounts were opened for the page: a read of account data, as GET /v2/payment is
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action=audit.READ,
            target_type="app",
            target_id=app.id,
            app_id=app.id,
            detail={
                "resource": "dashboard_payment_list",
                "route": f"{request.method} {request.url.path}"[:200],
                "rows": len(listing.rows),
                "opened": listing.scanned,
            },
            request_id=audit.request_id(),
        )
    return page(
        request,
        "payments.html",
        app=app,
        listing=listing,
        wanted=wanted,
        statuses=[s.value for s in PaymentStatus],
        settings=settings,
        banks=_sandbox_banks(hub.catalogue, app),
        sandbox=modes.mode_of(app) is modes.Mode.SANDBOX,
        form=form or {},
        form_key=secrets.token_urlsafe(24),
        notice=notice or (" ".join(problems) if problems else None),
        done=DONE.get(request.query_params.get("done", "")),
        status=status,
    )


@get(f"{APPS}/{{client_id:str}}/payments", opt=roles.route(Action.VIEW), include_in_schema=False)
async def payments_page(request: AnyRequest, client_id: FromPath[str]) -> Response[Any]:
    return await _payments_page(request, client_id)


# --- a payment ---------------------------------------------------------------------------


def masked_account(value: str | None) -> str | None:
    """An IBAN or account number as a viewer sees it: its country (an IBAN's) and last four."""
    if not value:
        return None
    compact = "".join(value.split())
    head = compact[:2] if compact[:2].isalpha() else ""
    return f"{head}•••• {compact[-4:]}" if len(compact) > 4 else "••••"


@get(
    f"{APPS}/{{client_id:str}}/payments/{{payment_id:str}}",
    opt=roles.route(Action.VIEW),
    include_in_schema=False,
)
async def payment_page(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], payment_id: FromPath[str]
) -> Response[Any]:
    """Status, the bank's reason and the whole history; each transfer with its own status."""
    visit = visit_of(request)
    full = visit.can(Action.PAYMENTS_DETAILS.value)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        payment = await payments.find(db, app.id, payment_id[:36])
        if payment is None:
            raise Refused(404, "No such payment.")
        seen = await payments.view(db, hub.keyring, payment)
        audit.record(
            db,
            now=hub.clock(),
            actor=services.member_actor(member_of(request)),
            action=audit.READ,
            target_type="payment",
            target_id=payment.id,
            app_id=app.id,
            detail={
                "resource": "dashboard_payment",
                "route": f"GET {request.url.path}"[:200],
                "customer_id": payment.customer_id,
                "rows": payment.item_count,
                "details": "full" if full else "masked",
            },
            request_id=audit.request_id(),
        )
    items = []
    for item, details in seen.items:
        account = details["creditor_iban"] or details["creditor_account"]
        items.append(
            {
                "position": item.position + 1,
                "status": item.status,
                "reason": item.status_reason,
                "creditor": details["creditor_name"],
                "account": account if full else masked_account(account),
                "bic": details["creditor_bic"],
                "amount": details["amount"],
                "currency": details["currency"],
                "remittance": details["remittance"] if full else None,
            }
        )
    service = hub.catalogue.get(payment.service_id)
    return page(
        request,
        "payment.html",
        app=app,
        payment=payment,
        total=seen.details["total"],
        history=seen.history,
        items=items,
        full=full,
        bank=service.name if service else str(payment.service_id),
        done=DONE.get(request.query_params.get("done", "")),
    )


@get(f"{RETURNED}/{{outcome:path}}", opt=roles.route(Action.VIEW), include_in_schema=False)
async def payment_returned(
    hub: HubDep, request: AnyRequest, outcome: FromPath[str]
) -> Response[Any]:
    """The test payment's callback: the connect page sends the member back here with the
    seed's callback form, and they land on the payment's page in its app."""
    try:
        said = json.loads(outcome.lstrip("/"))
    except ValueError:
        said = None
    if not isinstance(said, dict) or not isinstance(said.get("payment_id"), str):
        raise Refused(400, "This is not a payment's callback.")
    payment_id = said["payment_id"][:36]
    async with hub.db.transaction() as db:
        found = (
            await db.execute(
                select(App.client_id)
                .join(Payment, Payment.app_id == App.id)
                .where(Payment.id == payment_id)
            )
        ).scalar_one_or_none()
    if found is None:
        raise Refused(404, "No such payment.")
    done = str(said.get("status", ""))
    path = f"{APPS}/{found}/payments/{payment_id}"
    return go(request, f"{path}?done={done}" if done in DONE else path)


# --- a test payment ----------------------------------------------------------------------


def _fingerprint(hasher: SecretHasher, client_id: str, data: dict[str, str]) -> str:
    """What "the same form" means: every field but the CSRF token, keyed like the API's."""
    fields = sorted((k, v) for k, v in data.items() if k != "csrf")
    body = json.dumps([client_id, fields], separators=(",", ":")).encode()
    return hasher.hash(hashlib.sha256(body).hexdigest(), purpose="dashboard-idempotency")[:64]


def _test_transfers(data: dict[str, str], problems: validation.Problems) -> tuple[str, list[Any]]:
    kind = BATCH if field_of(data, "kind") == BATCH else SINGLE
    given = validation.TransferInput(
        creditor_name=field_of(data, "creditor_name"),
        amount=field_of(data, "amount").strip(),
        currency=field_of(data, "currency").strip().upper() or "EUR",
        creditor_iban=field_of(data, "creditor_iban").strip() or None,
        remittance=field_of(data, "remittance").strip() or None,
    )
    if kind == SINGLE:
        checked = validation.check_transfer(problems, "$", given)
        return kind, [checked] if checked else []
    text = field_of(data, "count").strip()
    count = int(text) if text.isascii() and text.isdigit() and len(text) < 3 else 0
    if not 2 <= count <= MAX_TEST_BATCH:
        problems.add("$.count", f"a test batch holds 2 to {MAX_TEST_BATCH} transfers")
        return kind, []
    remittance = given.remittance or "Test"
    batch = [
        validation.TransferInput(
            creditor_name=given.creditor_name,
            amount=given.amount,
            currency=given.currency,
            creditor_iban=given.creditor_iban,
            remittance=f"{remittance} {n}/{count}"[: validation.MAX_REMITTANCE],
        )
        for n in range(1, count + 1)
    ]
    return kind, validation.check_batch(problems, batch, total=None)


@post(
    f"{APPS}/{{client_id:str}}/payments/test",
    opt=roles.route(Action.PAYMENTS_TEST),
    include_in_schema=False,
)
async def test_payment(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """Create a test payment (or a small batch) to a sandbox bank and open its connect page."""
    key = field_of(data, "idempotency_key")
    if not _FORM_KEY.fullmatch(key):
        raise Refused(400, "This form has expired. Go back, reload the page and try again.")
    me = member_of(request)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        app_id, sandbox = app.id, modes.mode_of(app) is modes.Mode.SANDBOX
    if not sandbox:
        raise Refused(403, "Test payments are made on sandbox apps only.")
    keyed = idempotency.KeyedRequest(
        app_id=app_id,
        key=f"dashboard:{key}",
        method="POST",
        path=request.url.path,
        fingerprint=_fingerprint(hub.hasher, client_id, data),
    )
    lease = timedelta(seconds=hub.settings.idempotency_lease_seconds)
    try:
        claimed = await idempotency.claim(hub.db, hub.keyring, keyed, hub.clock(), lease)
    except DomainError as exc:
        if exc.code is ErrorCode.IDEMPOTENCY_IN_PROGRESS:
            raise Refused(409, "This test payment is being made; wait a moment.") from None
        raise Refused(
            409, "This form made a test payment already; reload the page to make another."
        ) from None
    if isinstance(claimed, idempotency.StoredResponse):
        # the same form again: the first answer, never a second payment
        location = dict(claimed.headers).get("location", f"{APPS}/{client_id}/payments")
        return Redirect(location, status_code=303, headers=HEADERS)
    try:
        location = await _create_test_payment(hub, request, client_id, data, me)
    except DomainError as exc:
        await idempotency.release(hub.db, claimed)
        return await _payments_page(request, client_id, notice=_said(exc), status=400, form=data)
    except BaseException:
        await idempotency.release(hub.db, claimed)
        raise
    stored = idempotency.StoredResponse(303, [("location", location)], b"")
    await idempotency.complete(hub.db, hub.keyring, app_id, claimed, stored)
    return Redirect(location, status_code=303, headers=HEADERS)


def _said(exc: DomainError) -> str:
    listed = exc.extra.get("problems")
    if isinstance(listed, list) and listed:
        return "The test payment was not made: " + "; ".join(str(p) for p in listed)
    return f"The test payment was not made: {exc.message}"


async def _create_test_payment(
    hub: HubDep, request: AnyRequest, client_id: str, data: dict[str, str], me: Member
) -> str:
    problems = validation.Problems()
    kind, transfers = _test_transfers(data, problems)
    text = field_of(data, "service_id").strip()
    service_id = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else 0
    base = public_url(hub, request)
    async with hub.db.transaction(write=True) as db:
        app = await app_of(db, client_id)
        if service_id not in {bank for bank, _ in _sandbox_banks(hub.catalogue, app)}:
            problems.add("$.service_id", "choose one of the sandbox banks")
            problems.raise_any()
        customer = await customers.find_by_identifier(db, app.id, TEST_CUSTOMER)
        if customer is None:
            customer = await customers.create_customer(db, hub.clock, app, TEST_CUSTOMER)
        payment = await payments.initiate(
            db,
            hub.payment_initiation(),
            app=app,
            order=payments.Order(
                kind=kind,
                customer_id=customer.id,
                service_id=service_id,
                callback_url=f"{base}{RETURNED}",
                account_id=None,
                execution_date=None,
                transfers=transfers,
            ),
            problems=problems,
            actor=services.member_actor(me),
        )
        return f"{base}/v2/connect/term/{payment.token_id}"


# --- the switch and the limits -----------------------------------------------------------


@post(
    f"{APPS}/{{client_id:str}}/payments/settings",
    opt=roles.route(Action.PAYMENTS_SWITCH),
    include_in_schema=False,
)
async def payment_settings(
    hub: HubDep, request: AnyRequest, client_id: FromPath[str], data: Form
) -> Response[Any]:
    """The same setting as ``PUT /v2/payment/settings``: owner only, re-authenticated (the
    guard), audited as ``payments.settings`` with the member as actor."""
    me = member_of(request)
    enabled = field_of(data, "enabled") == "on"
    count_text = field_of(data, "daily_count").strip()
    digits = count_text.isascii() and count_text.isdigit() and len(count_text) < 8
    daily_count = int(count_text) if digits else 0
    try:
        amount = Decimal(field_of(data, "daily_amount").strip())
    except InvalidOperation:
        amount = Decimal(-1)
    if not 1 <= daily_count <= MAX_DAILY_COUNT:
        notice = f"The daily count is a whole number from 1 to {MAX_DAILY_COUNT:,}."
        return await _app_page(request, client_id, notice=notice, status=400)
    if not amount.is_finite() or amount <= 0:
        notice = "The daily amount is a positive amount such as 10000."
        return await _app_page(request, client_id, notice=notice, status=400)
    async with hub.db.transaction() as db:
        app = await app_of(db, client_id)
        await payments.set_settings(
            db,
            app,
            enabled=enabled,
            daily_count=daily_count,
            daily_amount=amount,
            chosen_by=me.email,
            now=hub.clock(),
            actor=services.member_actor(me),
            request_id=audit.request_id(),
        )
    return go(request, f"{APPS}/{client_id}?done=payments")


PAYMENT_ROUTES = [payments_page, payment_returned, payment_page, test_payment, payment_settings]
