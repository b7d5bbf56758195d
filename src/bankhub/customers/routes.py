"""Customers' routes: ``POST /v2/customer`` (create), ``DELETE /v2/customer`` (erase) and
``GET /v2/customer/export``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import JSONBody
from litestar.types import ControllerRouterHandler

from bankhub.accounts.schemas import AccountOut, TransactionOut, account_out, transaction_out
from bankhub.api import schemas as s
from bankhub.api.audit import account_data_read
from bankhub.api.openapi import APP_AUTH, APP_SECURITY, E, errors, query
from bankhub.api.principal import AuthDep, HubDep
from bankhub.audit import services as audit
from bankhub.clock import as_utc
from bankhub.customers import services as customers
from bankhub.customers.schemas import CustomerEnvelope, CustomerIn, CustomerOut
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.events.schemas import EventOut
from bankhub.lifecycle import erasure
from bankhub.logins.schemas import LoginOut, login_out
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]

CustomerId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
JSON_CONTENT_TYPES = ("application/json",)
CUSTOMER_QUERY = query("The customer's id", length=(1, 64))


class CustomerRefIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: CustomerId | msgspec.UnsetType = msgspec.UNSET


class ErasedOut(msgspec.Struct):
    customer_id: str
    deleted: bool
    logins: int


class ErasedEnvelope(msgspec.Struct):
    data: ErasedOut
    version: str = s.VERSION


class ExportedCustomer(msgspec.Struct):
    customer_id: str
    identifier: str
    created_at: str


class ExportedLogin(LoginOut):
    """The ``GET /v2/login`` object with the login's accounts, transactions and events."""

    accounts: list[AccountOut]
    transactions: list[TransactionOut]
    events: list[EventOut]


class ExportOut(msgspec.Struct):
    customer: ExportedCustomer
    logins: list[ExportedLogin]


class ExportEnvelope(msgspec.Struct):
    data: ExportOut
    exported_at: str
    version: str = s.VERSION


_ref_decoder = msgspec.json.Decoder(CustomerRefIn)


async def _customer_ref(request: AnyRequest, query: str | None) -> str:
    """``customer_id`` from the JSON body, else from the query. The app's request check has
    already refused a body that is not JSON (``ContentInputInvalid``)."""
    body = await request.body()
    from_body: str | msgspec.UnsetType = msgspec.UNSET
    if body.strip():
        try:
            from_body = _ref_decoder.decode(body).customer_id
        except msgspec.ValidationError as exc:
            raise DomainError(ErrorCode.DATA_INVALID, str(exc), {"problems": [str(exc)]}) from None
    if isinstance(from_body, str):
        return from_body
    return _query_ref(query, ErrorCode.DATA_INVALID)


@dataclass
class EraseOperation(Operation):
    """``DELETE /v2/customer`` reads its optional body itself; this describes it."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "customer_id": Schema(
                                type=OpenAPIType.STRING, min_length=1, max_length=64
                            )
                        },
                        additional_properties=False,
                    )
                )
            },
            required=False,
            description="Names the customer; wins over the `customer_id` query parameter",
        )


def _query_ref(value: str | None, code: ErrorCode) -> str:
    if not value:
        problem = "Object missing required field `customer_id`"
        raise DomainError(code, problem, {"problems": [problem]})
    if len(value) > 64:
        problem = "Expected `str` of length <= 64 - at `$.customer_id`"
        raise DomainError(code, problem, {"problems": [problem]})
    return value


@post(
    "/v2/customer",
    opt=scopes.write(),
    status_code=200,
    tags=["customer"],
    summary="Create a customer",
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.CUSTOMER_EXISTS, E.CUSTOMER_CREATE_ERROR, body=True),
)
async def create_customer(
    hub: HubDep, auth: AuthDep, data: JSONBody[CustomerIn]
) -> CustomerEnvelope:
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        customer = await customers.create_customer(session, hub.clock, app, data.identifier)
    return CustomerEnvelope(CustomerOut(customer.id, customer.identifier))


@delete(
    "/v2/customer",
    opt=scopes.write(),
    status_code=200,
    tags=["customer"],
    summary="Erase a customer and everything held about them",
    description=(
        'The customer is named by a JSON body `{"customer_id": "..."}` or by the `customer_id` '
        "query parameter (the body wins). Withdraws each login's consent at the bank where the "
        "connector can, then removes the customer, their logins, accounts, transactions, events "
        "and webhook deliveries. A `login.deleted` event is sent for each login."
    ),
    security=APP_SECURITY,
    operation_class=EraseOperation,
    responses=errors(*APP_AUTH, E.CUSTOMER_NOT_FOUND, body=True),
)
async def erase_customer(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    customer_id: Annotated[str | None, CUSTOMER_QUERY] = None,
) -> ErasedEnvelope:
    wanted = await _customer_ref(request, customer_id)
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        customer = await customers.get_customer(session, app, wanted)
        app_id, actor, customer_uuid = app.id, audit.app_actor(app), customer.id
        upstreams = [
            erasure.upstream_of(login)
            for login in await erasure.customer_logins(session, app_id, customer_uuid)
        ]
    withdrawn = await erasure.withdraw_consents(hub.engine, hub.catalogue, upstreams)
    async with hub.db.transaction() as session:
        erased = await erasure.erase_customer(
            session,
            app_id=app_id,
            customer_id=customer_uuid,
            now=hub.clock(),
            withdrawn=[u.login_id for u in upstreams],
        )
        if erased is None:  # erased meanwhile by another request
            raise NotFound(
                ErrorCode.CUSTOMER_NOT_FOUND,
                f"Cannot find customer with id: '{customer_uuid}'.",
                {"customer_id": customer_uuid},
            )
        audit.record(
            session,
            now=hub.clock(),
            actor=actor,
            action="customer.erased",
            target_type="customer",
            target_id=customer_uuid,
            app_id=app_id,
            detail=erased.detail(consents_withdrawn=withdrawn),
            request_id=audit.request_id(),
        )
    await erasure.scrub(hub.db)  # nothing of theirs readable in the files once we answer
    if erased.late:  # logins connected while the others' consents were being withdrawn
        await erasure.withdraw_consents(hub.engine, hub.catalogue, erased.late)
    return ErasedEnvelope(ErasedOut(customer_uuid, True, erased.logins))


@get(
    "/v2/customer/export",
    opt=audit.account_data(scopes.read()),
    tags=["customer"],
    summary="Everything held about a customer, as one JSON document",
    description=(
        "Each login is the `GET /v2/login` object with its `accounts` (as `GET /v2/account`), "
        "all its `transactions` (as `GET /v2/transaction`, every account, newest first) and its "
        "`events` (as `GET /v2/event`, oldest first), whether the login is active or not."
    ),
    security=APP_SECURITY,
    responses=errors(*APP_AUTH, E.BAD_REQUEST, E.CUSTOMER_NOT_FOUND),
)
async def export_customer(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    customer_id: Annotated[str | None, CUSTOMER_QUERY] = None,
) -> Response[ExportEnvelope]:
    wanted = _query_ref(customer_id, ErrorCode.BAD_REQUEST)
    async with hub.db.transaction() as session:
        app = await auth.app(session)
        customer = await customers.get_customer(session, app, wanted)
        held = await customers.holdings_of(session, hub.keyring, customer)
        now = hub.clock()
        exported = [
            ExportedLogin(
                **msgspec.structs.asdict(login_out(h.login, hub.settings.refresh_cooldown)),
                accounts=[account_out(a, hub.keyring) for a in h.accounts],
                transactions=[transaction_out(t) for t in h.transactions],
                events=[
                    EventOut(
                        e.id, e.type, e.login_id, s.wire_time(as_utc(e.created_at)) or "", e.payload
                    )
                    for e in h.events
                ],
            )
            for h in held
        ]
        account_data_read(
            request,
            resource="customer_export",
            action=audit.EXPORTED,
            target=("customer", customer.id),
            login_ids=[h.login.id for h in held],
            customer_id=customer.id,
            account_ids=[a.id for h in held for a in h.accounts],
            counts={
                "logins": len(held),
                "accounts": sum(len(h.accounts) for h in held),
                "transactions": sum(len(h.transactions) for h in held),
                "events": sum(len(h.events) for h in held),
            },
        )
        body = ExportEnvelope(
            ExportOut(
                ExportedCustomer(
                    customer.id, customer.identifier, s.wire_time(as_utc(customer.created_at)) or ""
                ),
                exported,
            ),
            exported_at=s.wire_time(now) or "",
        )
    return Response(body, headers={"Cache-Control": "no-store"})


CUSTOMER_ROUTES: list[ControllerRouterHandler] = [create_customer, erase_customer, export_customer]
