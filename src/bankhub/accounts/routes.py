"""Incremental sync: what changed in an account's transactions since a cursor."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, get
from sqlalchemy import select

from bankhub.accounts import changes as kinds
from bankhub.accounts import services as accounts
from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Transaction
from bankhub.api.errors import ApiError, ErrorCode
from bankhub.api.openapi import LOGIN_AUTH, LOGIN_SECURITY, MAX_ID, E, errors, query, whole_number
from bankhub.api.routes import transaction_out
from bankhub.api.schemas import VERSION
from bankhub.audit import services as audit
from bankhub.hub import hub_of
from bankhub.logins import services as logins
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]
MAX_COUNT = 500


class SyncedTransaction(msgspec.Struct):
    """The ``/v2/transaction`` object, plus its status and the pending item it replaced."""

    id: int
    original_id: str
    date: str
    amount: str
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None
    status: str
    pending_transaction_id: int | None


class RemovedTransaction(msgspec.Struct):
    id: int


class SyncOut(msgspec.Struct):
    added: list[SyncedTransaction]
    modified: list[SyncedTransaction]
    removed: list[RemovedTransaction]
    next_cursor: str
    has_more: bool


class SyncEnvelope(msgspec.Struct):
    data: SyncOut
    version: str = VERSION


def _synced(row: accounts.TransactionView) -> SyncedTransaction:
    out = transaction_out(row)
    return SyncedTransaction(
        id=out.id,
        original_id=out.original_id,
        date=out.date,
        amount=out.amount,
        currency=out.currency,
        description=out.description,
        category=out.category,
        meta=out.meta,
        status=row.status,
        pending_transaction_id=row.pending_transaction_id,
    )


def net_effect(changes: list[tuple[int, str]]) -> tuple[list[int], list[int], list[int]]:
    """Fold a page of changes into what a partner must do: add, update or drop each id.

    Added then changed is still added; added then removed never happened for the partner;
    anything else removed is removed; the rest is modified.
    """
    first: dict[int, str] = {}
    last: dict[int, str] = {}
    for transaction_id, kind in changes:
        first.setdefault(transaction_id, kind)
        last[transaction_id] = kind
    added, modified, removed = [], [], []
    for transaction_id, kind in last.items():
        if kind == kinds.REMOVED:
            if first[transaction_id] != kinds.ADDED:
                removed.append(transaction_id)
        elif first[transaction_id] == kinds.ADDED:
            added.append(transaction_id)
        else:
            modified.append(transaction_id)
    return added, modified, removed


@get(
    "/v2/transaction/sync",
    opt=audit.account_data(scopes.read()),
    tags=["transaction"],
    summary="What changed in an account's transactions since a cursor",
    description=(
        "Start with no cursor; keep `next_cursor` and pass it as `cursor` next time. "
        "`added` and `modified` carry the transaction as it is now, `removed` the ids that are "
        "gone (a pending item that booked is removed, and the booked one names it in "
        "`pending_transaction_id`). `count` ≤ 500 changes per page; follow `has_more`."
    ),
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, E.ACCOUNT_NOT_FOUND),
)
async def sync_transactions(
    request: AnyRequest,
    account_id: Annotated[
        str | None, query("The account (required)", integer=(0, MAX_ID), empty_ok=False)
    ] = None,
    cursor: Annotated[
        str | None, query("`next_cursor` of the previous page", integer=(0, MAX_ID))
    ] = None,
    count: Annotated[
        str | None, query("Changes per page, 100 by default", integer=(1, MAX_COUNT))
    ] = None,
) -> SyncEnvelope:
    hub = hub_of(request)
    wanted = whole_number(account_id or "")
    if wanted is None:
        problem = "account_id is required" if not account_id else "account_id is not an id"
        raise ApiError(ErrorCode.BAD_REQUEST, problem, {"account_id": (account_id or "")[:40]})
    after = 0
    if cursor:
        given = whole_number(cursor)
        if given is None:
            raise ApiError(
                ErrorCode.BAD_REQUEST, "cursor is not one bankhub gave", {"cursor": cursor[:64]}
            )
        after = given
    size = 100
    if count:
        chosen = whole_number(count, MAX_COUNT)
        if chosen is None or chosen < 1:
            raise ApiError(
                ErrorCode.BAD_REQUEST,
                f"count must be from 1 to {MAX_COUNT}",
                {"count": count[:40]},
            )
        size = chosen
    async with hub.db.transaction() as session:
        _, login = await hub.authenticate_login(session, request)
        logins.require_active(login)
        account = await accounts.account_of(session, login, wanted)
        page = (
            await session.execute(
                select(
                    TransactionChange.id, TransactionChange.transaction_id, TransactionChange.kind
                )
                .where(TransactionChange.account_id == account.id, TransactionChange.id > after)
                .order_by(TransactionChange.id)
                .limit(size + 1)
            )
        ).all()
        has_more = len(page) > size
        page = page[:size]
        added, modified, removed = net_effect([(row.transaction_id, row.kind) for row in page])
        found = (
            await session.execute(
                select(*accounts.API_COLUMNS).where(
                    Transaction.account_id == account.id,
                    Transaction.id.in_(added + modified),
                )
            )
        ).all()
        current = {
            view.id: view
            for view in await accounts.opened_rows(session, hub.keyring, login.app_id, found)
        }
    audit.account_data_read(
        request,
        resource="transaction_changes",
        login_ids=[login.id],
        customer_id=login.customer_id,
        account_ids=[account.id],
        rows=len(added) + len(modified) + len(removed),
    )
    # A row changed and then purged later in the log shows up as removed on a later page.
    return SyncEnvelope(
        SyncOut(
            added=[_synced(current[i]) for i in added if i in current],
            modified=[_synced(current[i]) for i in modified if i in current],
            removed=[RemovedTransaction(i) for i in removed],
            next_cursor=str(page[-1].id if page else after),
            has_more=has_more,
        )
    )


ACCOUNT_ROUTES = [sync_transactions]
