"""Payments' routes: ``/v2/payment`` (a single credit transfer), ``/v2/payment/batch``, the
list, cancellation, and the app's switch and limits (``/v2/payment/settings``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from litestar.types import ControllerRouterHandler
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.api.audit import account_data_read
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, errors, query, whole_number
from bankhub.api.principal import AuthDep, HubDep, public_url
from bankhub.api.schemas import wire_time
from bankhub.audit import services as audit
from bankhub.clock import as_utc
from bankhub.connectors.base import ConnectorFailure, PaymentStatus
from bankhub.db import tenancy
from bankhub.errors import DomainError, ErrorCode
from bankhub.payments import export, pain001, validation
from bankhub.payments import services as payments
from bankhub.payments.models import BATCH, SINGLE, Payment
from bankhub.payments.schemas import (
    BatchEnvelope,
    BatchIn,
    PaymentEnvelope,
    PaymentIn,
    PaymentListEnvelope,
    PaymentSettingsEnvelope,
    PaymentSettingsIn,
    PaymentSettingsOut,
    PaymentSummaryOut,
    TransferIn,
    batch_out,
    payment_out,
)
from bankhub.payments.sending import payments_of
from bankhub.security import scopes
from bankhub.security.idempotency import KEY_HEADER

AnyRequest = Request[Any, Any, Any]
CREATE_ERRORS = (
    *APP_AUTH,
    E.CUSTOMER_NOT_FOUND,
    E.SERVICE_NOT_FOUND,
    E.ACCOUNT_NOT_FOUND,
    E.PAYMENTS_NOT_ENABLED,
    E.PAYMENT_LIMIT_REACHED,
    E.TOKEN_CREATE_ERROR,
)
AUTHORISED_CANCEL_NOTE = (
    " A bank that cancels only once the account holder authorises it: `202` with the "
    "payment, its status unchanged, and `connect_url`, where the user authorises the "
    "cancellation at the bank; the partner's callback then gets "
    '`{"status":"success","payment_id":...}`, and the status becomes `cancelled` (with a '
    "`payment.status` event) when the bank says so."
)
ACCEPTED_DESCRIPTION = (
    "The bank waits for the account holder to authorise the cancellation: the status is "
    "unchanged, and `connect_url` opens the connect page where they do."
)
IDEMPOTENCY_NOTE = (
    " Requires an `Idempotency-Key` header: a retry with the same key gets the first answer "
    "and never a second payment."
)


def _require_key(request: AnyRequest) -> None:
    if not request.headers.get(KEY_HEADER):
        problem = f"the {KEY_HEADER} header is required to initiate a payment"
        raise DomainError(
            ErrorCode.DATA_INVALID,
            f"{KEY_HEADER} is required",
            {"problems": [problem], "header": KEY_HEADER},
        )


def _transfer(t: TransferIn | PaymentIn) -> validation.TransferInput:
    return validation.TransferInput(
        creditor_name=t.creditor_name,
        amount=t.amount,
        currency=t.currency,
        creditor_iban=t.creditor_iban,
        creditor_account=t.creditor_account,
        creditor_bic=t.creditor_bic,
        remittance=t.remittance_information,
    )


def _connect_url(hub: HubDep, request: AnyRequest, payment: Payment) -> str | None:
    if payment.status != PaymentStatus.PENDING_AUTHORISATION or payment.sent_at is not None:
        return None
    return f"{public_url(hub, request)}/v2/connect/term/{payment.token_id}"


async def _read_connect_url(
    hub: HubDep, request: AnyRequest, session: AsyncSession, payment: Payment
) -> str | None:
    """The link the user still has to open: the payment's own while it waits for them, else
    that of a cancellation the bank wants them to authorise."""
    own = _connect_url(hub, request, payment)
    if own is not None:
        return own
    token_id = await payments.open_cancellation_link(session, payment, hub.clock())
    return None if token_id is None else f"{public_url(hub, request)}/v2/connect/term/{token_id}"


async def _create(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    *,
    kind: str,
    customer_id: str,
    service_id: int,
    callback_url: str,
    account_id: int | None,
    execution_date: str | None,
    transfers: list[validation.Transfer],
    problems: validation.Problems,
) -> tuple[Payment, payments.PaymentView]:
    # a writer's unit of work: on SQLite the process's writers take turns, so two payments of
    # one app never both pass the daily limits (PostgreSQL: the settings row's lock)
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        payment = await payments.initiate(
            session,
            hub.payment_initiation(),
            app=app,
            order=payments.Order(
                kind=kind,
                customer_id=customer_id,
                service_id=service_id,
                callback_url=callback_url,
                account_id=account_id,
                execution_date=execution_date,
                transfers=transfers,
            ),
            problems=problems,
        )
        await session.flush()
        return payment, await payments.view(session, hub.keyring, payment)


@post(
    "/v2/payment",
    opt=scopes.write(),
    status_code=200,
    tags=["payment"],
    summary="Initiate a payment (one credit transfer)",
    description=(
        "Checks the transfer as a bank would first (IBAN and BIC, the currency's minor units, "
        "SEPA characters, a TARGET2 business day for euro transfers) and answers every problem "
        "at once in `DataInvalid`'s `extra.problems`; nothing is stored then. Else the payment "
        "waits in `pending_authorisation` for the user, who authorises it at `connect_url`; the "
        'partner\'s callback then gets `{"status":"success","payment_id":...}`. Needs '
        "payments switched on for the app (`PUT /v2/payment/settings`) and counts against its "
        "daily limits." + IDEMPOTENCY_NOTE
    ),
    security=APP_SECURITY,
    responses=errors(*CREATE_ERRORS, body=True),
)
async def create_payment(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[PaymentIn]
) -> PaymentEnvelope:
    _require_key(request)
    problems = validation.Problems()
    transfer = validation.check_transfer(problems, "$", _transfer(data))
    payment, seen = await _create(
        hub,
        auth,
        request,
        kind=SINGLE,
        customer_id=data.customer_id,
        service_id=data.service_id,
        callback_url=data.callback_url,
        account_id=data.account_id,
        execution_date=data.execution_date,
        transfers=[transfer] if transfer else [],
        problems=problems,
    )
    return PaymentEnvelope(payment_out(seen, _connect_url(hub, request, payment)))


@post(
    "/v2/payment/batch",
    opt=scopes.write(),
    status_code=200,
    tags=["payment"],
    summary="Initiate a batch of payments, authorised once",
    description=(
        "Up to 1,000 credit transfers in one currency from one debtor account, authorised by "
        "the user once at `connect_url`; each transfer has its own status. `total`, when sent, "
        "must equal the transfers' sum. Checked, switched on and limited as `POST /v2/payment` "
        "(a batch counts its transfers against the daily count)." + IDEMPOTENCY_NOTE
    ),
    security=APP_SECURITY,
    responses=errors(*CREATE_ERRORS, body=True),
)
async def create_batch(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[BatchIn]
) -> BatchEnvelope:
    _require_key(request)
    problems = validation.Problems()
    transfers = validation.check_batch(
        problems, [_transfer(t) for t in data.payments], total=data.total
    )
    payment, seen = await _create(
        hub,
        auth,
        request,
        kind=BATCH,
        customer_id=data.customer_id,
        service_id=data.service_id,
        callback_url=data.callback_url,
        account_id=data.account_id,
        execution_date=data.execution_date,
        transfers=transfers,
        problems=problems,
    )
    return BatchEnvelope(batch_out(seen, _connect_url(hub, request, payment)))


def _read_audit(request: AnyRequest, payment: Payment, resource: str) -> None:
    account_data_read(
        request,
        resource=resource,
        login_ids=[],
        customer_id=payment.customer_id,
        account_ids=[payment.account_id] if payment.account_id else [],
        rows=payment.item_count,
        target=("payment", payment.id),
    )


@get(
    "/v2/payment/{payment_id:str}",
    opt=audit.account_data(scopes.read()),
    tags=["payment"],
    summary="A payment: its status (with the bank's reason) and history",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.PAYMENT_NOT_FOUND),
)
async def read_payment(
    hub: HubDep, auth: AuthDep, request: AnyRequest, payment_id: FromPath[str]
) -> PaymentEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        payment = await payments.get(session, app.id, payment_id, kind=SINGLE)
        seen = await payments.view(session, hub.keyring, payment)
        _read_audit(request, payment, "payment")
        link = await _read_connect_url(hub, request, session, payment)
        return PaymentEnvelope(payment_out(seen, link))


@get(
    "/v2/payment/batch/{batch_id:str}",
    opt=audit.account_data(scopes.read()),
    tags=["payment"],
    summary="A batch: its status, history and each transfer's status",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.PAYMENT_NOT_FOUND),
)
async def read_batch(
    hub: HubDep, auth: AuthDep, request: AnyRequest, batch_id: FromPath[str]
) -> BatchEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        payment = await payments.get(session, app.id, batch_id, kind=BATCH)
        seen = await payments.view(session, hub.keyring, payment)
        _read_audit(request, payment, "payment_batch")
        link = await _read_connect_url(hub, request, session, payment)
        return BatchEnvelope(batch_out(seen, link))


@get(
    "/v2/payment",
    opt=audit.account_data(scopes.read()),
    tags=["payment"],
    summary="The app's payments and batches, newest first",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.BAD_REQUEST),
)
async def list_payments(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    # an empty value is read as left out (a form's "any"), so the description allows it
    status: Annotated[str | None, query("Only payments in this status", length=(0, 30))] = None,
    customer_id: Annotated[str | None, query("Only this customer's", length=(0, 64))] = None,
    limit: Annotated[str | None, query("At most this many (1 to 200)", integer=(1, 200))] = None,
) -> PaymentListEnvelope:
    size = 50 if not limit else whole_number(limit, 200)
    if not size:
        raise DomainError(ErrorCode.BAD_REQUEST, "limit must be a whole number from 1 to 200")
    status = status or None
    customer_id = customer_id or None
    if status is not None and status not in set(PaymentStatus):
        raise DomainError(
            ErrorCode.BAD_REQUEST,
            f"Unknown status {status!r}",
            {"status": status, "known": [str(s) for s in PaymentStatus]},
        )
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        found = await payments.listed(
            session, app.id, status=status, customer_id=customer_id, limit=size, before=None
        )
        listed = [
            PaymentSummaryOut(
                id=p.id,
                kind=p.kind,
                status=p.status,
                reason=p.status_reason,
                customer_id=p.customer_id,
                service_id=p.service_id,
                count=p.item_count,
                total=payments.open_payment(hub.keyring, p)["total"],
                currency=p.currency,
                created_at=wire_time(as_utc(p.created_at)) or "",
                updated_at=wire_time(as_utc(p.updated_at)) or "",
            )
            for p in found
        ]
        account_data_read(
            request,
            resource="payment_list",
            login_ids=[],
            customer_id=customer_id,
            rows=len(listed),
        )
        return PaymentListEnvelope(listed)


CANCEL_ERRORS = (
    *APP_AUTH,
    E.PAYMENT_NOT_FOUND,
    E.PAYMENT_NOT_CANCELLABLE,
    E.CONNECT_ERROR,
)


@delete(
    "/v2/payment/{payment_id:str}",
    opt=scopes.write(),
    status_code=200,
    tags=["payment"],
    summary="Cancel a payment, where the bank allows",
    description=(
        "A payment not sent to the bank yet is cancelled at once; one the bank holds is "
        "cancelled there when the bank still allows it, else `PaymentNotCancellable` names the "
        "payment's status." + AUTHORISED_CANCEL_NOTE
    ),
    security=APP_SECURITY,
    responses={
        **errors(*CANCEL_ERRORS, write=True),
        202: ResponseSpec(
            data_container=PaymentEnvelope,
            description=ACCEPTED_DESCRIPTION,
            generate_examples=False,
        ),
    },
)
async def cancel_payment(
    hub: HubDep, auth: AuthDep, request: AnyRequest, payment_id: FromPath[str]
) -> Response[PaymentEnvelope]:
    seen, link = await _cancel(hub, auth, request, payment_id, SINGLE)
    return Response(PaymentEnvelope(payment_out(seen, link)), status_code=_cancel_status(link))


@delete(
    "/v2/payment/batch/{batch_id:str}",
    opt=scopes.write(),
    status_code=200,
    tags=["payment"],
    summary="Cancel a batch, where the bank allows",
    description=(
        "The whole batch: cancelled at once when not sent to the bank yet; else at the bank "
        "when it still allows cancelling the batch (each transfer's status follows the "
        "bank's answer), else `PaymentNotCancellable` names the batch's status."
        + AUTHORISED_CANCEL_NOTE
    ),
    security=APP_SECURITY,
    responses={
        **errors(*CANCEL_ERRORS, write=True),
        202: ResponseSpec(
            data_container=BatchEnvelope,
            description=ACCEPTED_DESCRIPTION,
            generate_examples=False,
        ),
    },
)
async def cancel_batch(
    hub: HubDep, auth: AuthDep, request: AnyRequest, batch_id: FromPath[str]
) -> Response[BatchEnvelope]:
    seen, link = await _cancel(hub, auth, request, batch_id, BATCH)
    return Response(BatchEnvelope(batch_out(seen, link)), status_code=_cancel_status(link))


def _cancel_status(link: str | None) -> int:
    """202 while the bank waits for the account holder to authorise the cancellation at
    ``connect_url``; 200 when it is done."""
    return HTTP_202_ACCEPTED if link else HTTP_200_OK


async def _cancel(
    hub: HubDep, auth: AuthDep, request: AnyRequest, payment_id: str, kind: str
) -> tuple[payments.PaymentView, str | None]:
    """Cancel a payment or a batch: here when the bank has not seen it, else at the bank.
    Either way audited; a refusal (final, or the bank no longer allows it) is
    ``PaymentNotCancellable``."""
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        app_id, actor = app.id, audit.app_actor(app)
        payment = await payments.get(session, app_id, payment_id, kind=kind, lock=True)
        if PaymentStatus(payment.status).final:
            raise _not_cancellable(payment)
        if payment.sent_at is None:
            await payments.set_status(
                session,
                payment,
                PaymentStatus.CANCELLED,
                "Cancelled by the partner before it was authorised",
                hub.clock(),
            )
            payments.audit_action(
                session, payment, "payment.cancelled", actor=actor, now=hub.clock()
            )
            return await payments.view(session, hub.keyring, payment), None
        if payment.bank_payment_id is None:
            raise DomainError(
                ErrorCode.PAYMENT_NOT_CANCELLABLE,
                "The payment is on its way to the bank; try again in a minute.",
                {"id": payment.id, "status": payment.status},
                retry_after=60,
            )
        service = hub.catalogue.get(payment.service_id)
        state = payments.open_state(hub.keyring, payment)
        bank_payment_id = payment.bank_payment_id
    if service is None:
        raise DomainError(ErrorCode.CONNECT_ERROR, "The payment's bank is no longer available")
    run = hub.engine.build(service, state)
    try:
        bank = payments_of(run.connector, batch=kind == BATCH)
        answer = await hub.engine.guarded(bank.cancel_payment(bank_payment_id))
    except ConnectorFailure as failure:
        raise DomainError(ErrorCode.CONNECT_ERROR, failure.message, {"id": payment_id}) from None
    async with hub.db.transaction() as session:
        await tenancy.enter(session, app_id)
        payment = await payments.get(session, app_id, payment_id, kind=kind)
        # the bank's side of a cancellation it wants authorised stays with the payment
        payments.seal_state(hub.keyring, payment, run.state.load())
        await payments.apply_answer(session, payment, answer, hub.clock())
        done = payment.status == PaymentStatus.CANCELLED
        asked = not done and answer.needs_authorisation and not PaymentStatus(payment.status).final
        detail = {"bank_needs_authorisation": True} if answer.needs_authorisation else None
        action = "payment.cancelled" if done else "payment.cancel_refused"
        link = None
        if asked:
            # the account holder authorises it on the connect page, at a link of its own
            action = "payment.cancel_requested"
            token_id = await payments.cancellation_link(
                session, hub.clock, hub.settings.token_ttl_seconds, payment
            )
            link = f"{public_url(hub, request)}/v2/connect/term/{token_id}"
        payments.audit_action(session, payment, action, actor=actor, now=hub.clock(), detail=detail)
        seen = await payments.view(session, hub.keyring, payment)
    if not done and not asked:
        raise _not_cancellable(payment)
    return seen, link


EXPORT_DESCRIPTION = (
    "For banks without a payments API: the user uploads the file to their online banking. "
    "Allowed while the payment waits for the user and was never sent to the bank; the first "
    "export moves it to `exported` (final: bankhub no longer sends it, and cannot cancel "
    "it), hence a `POST`; repeating it gives the same file (no `Idempotency-Key` needed). "
    "The transfers carry the `EndToEndId`s the API shows, by which they are linked when "
    "they appear in the debtor account's transactions. "
    "`version`: `pain.001.001.03` (the default, taken by every SEPA bank) or "
    "`pain.001.001.09` (the current EPC rulebook's). `debtor_name` replaces the account "
    "holder name the bank gave (needed where it gave none). Euros to IBANs only, from the "
    "debtor account named with `account_id`; else `PaymentNotExportable` lists every "
    "problem."
)


def _version(value: str | None) -> str:
    if not value:
        return pain001.DEFAULT_VERSION
    if value not in pain001.VERSIONS:
        raise DomainError(
            ErrorCode.BAD_REQUEST,
            f"Unknown pain.001 version {value!r}",
            {"version": value, "known": list(pain001.VERSIONS)},
        )
    return value


async def _export(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    payment_id: str,
    kind: str,
    version: str | None,
    debtor_name: str | None,
) -> Response[bytes]:
    chosen = _version(version)
    # a writer's unit of work: the payment's row is locked while it is decided where it goes
    async with hub.db.transaction(write=True) as session:
        app = await auth.app(session)
        payment = await payments.get(session, app.id, payment_id, kind=kind)
        exported = await export.export(
            session,
            cipher=hub.keyring,
            clock=hub.clock,
            account_details=hub.engine.account_details,
            service=hub.catalogue.get(payment.service_id),
            app_id=app.id,
            payment_id=payment.id,
            kind=kind,
            version=chosen,
            debtor_name=debtor_name or None,
        )
        paid = exported.payment
        account_data_read(
            request,
            resource=f"{'payment_batch' if kind == BATCH else 'payment'}_file",
            login_ids=[],
            customer_id=paid.customer_id,
            account_ids=[paid.account_id] if paid.account_id else [],
            rows=paid.item_count,
            counts={"first_export": int(exported.first)},
            action="payment.exported",
            target=("payment", paid.id),
            session=session,
        )
    return Response(
        exported.content,
        media_type=exported.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{exported.name}"',
            "Cache-Control": "no-store",
        },
    )


EXPORT_QUERY_VERSION = query(
    "`pain.001.001.03` (default) or `pain.001.001.09`", pattern=r"pain\.001\.001\.0[39]"
)
EXPORT_QUERY_NAME = query(
    "The debtor's name in the file, instead of the account holder name the bank gave",
    length=(1, 200),
)
EXPORT_ERRORS = (*APP_AUTH, E.BAD_REQUEST, E.PAYMENT_NOT_FOUND, E.PAYMENT_NOT_EXPORTABLE)


@post(
    "/v2/payment/{payment_id:str}/pain.001",
    opt=audit.account_data(scopes.write()),
    status_code=200,
    tags=["payment"],
    summary="A payment as an ISO 20022 pain.001 file, for upload at the bank",
    description=EXPORT_DESCRIPTION,
    media_type=pain001.MEDIA_TYPE,
    response_description="The pain.001 file (UTF-8 XML), as an attachment",
    security=APP_SECURITY,
    responses=errors(*EXPORT_ERRORS),
)
async def export_payment(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    payment_id: FromPath[str],
    version: Annotated[str | None, EXPORT_QUERY_VERSION] = None,
    debtor_name: Annotated[str | None, EXPORT_QUERY_NAME] = None,
) -> Response[bytes]:
    return await _export(hub, auth, request, payment_id, SINGLE, version, debtor_name)


@post(
    "/v2/payment/batch/{batch_id:str}/pain.001",
    opt=audit.account_data(scopes.write()),
    status_code=200,
    tags=["payment"],
    summary="A batch as an ISO 20022 pain.001 file, for upload at the bank",
    description=EXPORT_DESCRIPTION
    + " The transfers are grouped into one payment information block per execution date.",
    media_type=pain001.MEDIA_TYPE,
    response_description="The pain.001 file (UTF-8 XML), as an attachment",
    security=APP_SECURITY,
    responses=errors(*EXPORT_ERRORS),
)
async def export_batch(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    batch_id: FromPath[str],
    version: Annotated[str | None, EXPORT_QUERY_VERSION] = None,
    debtor_name: Annotated[str | None, EXPORT_QUERY_NAME] = None,
) -> Response[bytes]:
    return await _export(hub, auth, request, batch_id, BATCH, version, debtor_name)


def _not_cancellable(payment: Payment) -> DomainError:
    return DomainError(
        ErrorCode.PAYMENT_NOT_CANCELLABLE,
        f"The payment is {payment.status}; the bank no longer allows cancelling it.",
        {"id": payment.id, "status": payment.status},
    )


def _settings_out(settings: Any) -> PaymentSettingsEnvelope:
    if settings is None:
        return PaymentSettingsEnvelope(
            PaymentSettingsOut(
                False,
                payments.DEFAULT_DAILY_COUNT,
                str(payments.DEFAULT_DAILY_AMOUNT),
                None,
                None,
            )
        )
    return PaymentSettingsEnvelope(
        PaymentSettingsOut(
            settings.enabled,
            settings.daily_count,
            format(settings.daily_amount.normalize(), "f"),
            settings.set_by,
            wire_time(as_utc(settings.set_at)),
        )
    )


@get(
    "/v2/payment/settings",
    opt=scopes.read(),
    tags=["payment"],
    summary="Whether payment initiation is on for the app, and its daily limits",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH),
)
async def read_payment_settings(hub: HubDep, auth: AuthDep) -> PaymentSettingsEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        return _settings_out(await payments.settings_of(session, app.id))


@put(
    "/v2/payment/settings",
    opt=scopes.master(),
    tags=["payment"],
    summary="Switch payment initiation on or off for the app, and set its daily limits",
    description=(
        "Off by default. Only a `master` credential (the app's owner) may switch it; "
        "`daily_count` caps the transfers initiated per UTC day (a batch counts each), "
        "`daily_amount` their sum per currency. `chosen_by` names who chose; audited."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, body=True),
)
async def set_payment_settings(
    hub: HubDep, auth: AuthDep, request: AnyRequest, data: JSONBody[PaymentSettingsIn]
) -> PaymentSettingsEnvelope:
    try:
        amount = Decimal(data.daily_amount)
    except InvalidOperation:
        amount = Decimal(-1)
    if not amount.is_finite() or amount <= 0:
        problem = "must be a positive decimal amount - at `$.daily_amount`"
        raise DomainError(ErrorCode.DATA_INVALID, problem, {"problems": [problem]})
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        settings = await payments.set_settings(
            session,
            app,
            enabled=data.enabled,
            daily_count=data.daily_count,
            daily_amount=amount,
            chosen_by=data.chosen_by,
            now=hub.clock(),
            actor=audit.app_actor(app),
            request_id=audit.request_id(),
        )
        return _settings_out(settings)


PAYMENT_ROUTES: list[ControllerRouterHandler] = [
    create_payment,
    create_batch,
    read_payment,
    read_batch,
    list_payments,
    cancel_payment,
    cancel_batch,
    export_payment,
    export_batch,
    read_payment_settings,
    set_payment_settings,
]
