"""Transactions' routes: ``GET /v2/transaction`` (an account's transactions, newest first) and
``GET /v2/transaction/sync`` (what changed in them since a cursor)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.response import Stream
from sqlalchemy import select

from bankhub.accounts import changes as kinds
from bankhub.accounts import services as accounts
from bankhub.accounts.changes import TransactionChange
from bankhub.accounts.models import Account, Transaction
from bankhub.accounts.schemas import TransactionListEnvelope, page_body, transaction_out
from bankhub.api.audit import account_data_read
from bankhub.api.openapi import LOGIN_AUTH, LOGIN_SECURITY, MAX_ID, E, errors, query, whole_number
from bankhub.api.principal import AuthDep, HubDep, public_url
from bankhub.api.schemas import VERSION
from bankhub.audit import services as audit
from bankhub.errors import DomainError, ErrorCode, NotFound
from bankhub.logins import services as logins
from bankhub.security import scopes

AnyRequest = Request[Any, Any, Any]
MAX_COUNT = 500

DATE = r"^\d{4}-\d{2}-\d{2}$"
_DATE = re.compile(DATE)
MAX_PAGE = 10_000_000
#: the default cap of ``per_page`` (``BANKHUB_MAX_PAGE_SIZE``)
MAX_PER_PAGE = 1000
ACCOUNT_ID = query("An account of the login; all of them when left out", integer=(0, MAX_ID))


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


def _date_param(name: str, value: str | None) -> date | None:
    if value is None or value == "":
        return None
    if not _DATE.match(value):
        raise DomainError(
            ErrorCode.BAD_REQUEST, f"{name} must be a date as YYYY-MM-DD", {name: value[:40]}
        )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise DomainError(
            ErrorCode.BAD_REQUEST, f"{name} is not a valid date", {name: value}
        ) from None


def _int_param(name: str, value: str | None, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    number = whole_number(value, high)
    if number is None or number < low:
        raise DomainError(
            ErrorCode.BAD_REQUEST,
            f"{name} must be a whole number from {low} to {high}",
            {name: value[:40]},
        )
    return number


#: rows per slice of an answer streamed without ``page``/``per_page``
STREAM_SLICE = 1000
_LIST_ENCODER = msgspec.json.Encoder()


@get(
    "/v2/transaction",
    opt=audit.account_data(scopes.read()),
    tags=["transaction"],
    summary="Transactions of an account (newest first)",
    description=(
        "`end_date` is accepted as a synonym of `to_date`. Without `page` and `per_page` the "
        "answer holds every transaction of the range (streamed as it is read, for answers "
        "longer than 1000 rows). Pages are opt-in: `page` (from 1) and `per_page` (default "
        'and maximum 1000); a `Link: <...>; rel="next"` header names the next page. '
        '`meta.status` is `"pending"` on an item the bank has not booked yet; a booked item '
        "that replaced a pending one names it in `meta.pending_transaction_id` (that id is "
        "gone from then on)."
    ),
    security=LOGIN_SECURITY,
    responses=errors(*LOGIN_AUTH, E.ACCOUNT_NOT_FOUND),
    response_headers=[
        ResponseHeader(
            name="Link",
            description='`<url>; rel="next"` when pages were asked for and more rows follow',
            required=False,
            documentation_only=True,
        )
    ],
)
async def list_transactions(
    hub: HubDep,
    auth: AuthDep,
    request: AnyRequest,
    account_id: Annotated[str | None, ACCOUNT_ID] = None,
    from_date: Annotated[str | None, query("First day, `YYYY-MM-DD`", pattern=DATE)] = None,
    to_date: Annotated[str | None, query("Last day, `YYYY-MM-DD`", pattern=DATE)] = None,
    end_date: Annotated[str | None, query("Synonym of `to_date`", pattern=DATE)] = None,
    page: Annotated[str | None, query("Page, from 1", integer=(1, MAX_PAGE))] = None,
    per_page: Annotated[
        str | None, query("Rows per page (at most 1000)", integer=(1, MAX_PER_PAGE))
    ] = None,
) -> Response[TransactionListEnvelope]:
    start = _date_param("from_date", from_date)
    if to_date and end_date and to_date != end_date:
        raise DomainError(ErrorCode.BAD_REQUEST, "to_date and end_date disagree")
    end = _date_param("to_date" if to_date else "end_date", to_date or end_date)
    if start and end and start > end:
        raise DomainError(ErrorCode.BAD_REQUEST, "from_date is after to_date")
    paged = bool(page) or bool(per_page)
    limit = _int_param(
        "per_page", per_page, hub.settings.max_page_size, 1, hub.settings.max_page_size
    )
    page_no = _int_param("page", page, 1, 1, MAX_PAGE)
    if not paged:
        limit, page_no = STREAM_SLICE, 1
    wanted = None if account_id is None else whole_number(account_id)
    async with hub.db.read() as session:
        account: Account | None = None
        if wanted is None:
            login = await auth.login_view(session)
        else:  # the login and the account in one round trip (one statement when cached)
            login, account = await auth.login_view_with_account(session, wanted)
        logins.require_active(login)
        if account_id is not None:
            if wanted is None:
                raise NotFound(
                    ErrorCode.ACCOUNT_NOT_FOUND,
                    f"Cannot find account with id: {account_id[:40]}.",
                    {"account_id": account_id[:40]},
                )
            if account is None:
                raise accounts.account_not_found(wanted)
            ids = [account.id]
        else:
            ids = [row[0] for row in await accounts.account_rows(session, login)]
        rows = await accounts.transactions_of(
            session, login, ids, start, end, (page_no - 1) * limit, limit + 1
        )
        more = len(rows) > limit
        shown = rows[:limit]
        body = None
        if paged or not more:  # the whole answer is these rows: written from them directly
            body = page_body(shown, hub.keyring, login.app_id)
        views: list[accounts.TransactionView] = []
        if body is None:
            views = await accounts.opened_rows(session, hub.keyring, login.app_id, shown)
        answered = len(shown)
        if more and not paged:
            answered = await accounts.count_transactions(session, login, ids, start, end)
        account_data_read(
            request,
            resource="transactions",
            login_ids=[login.id],
            customer_id=login.customer_id,
            account_ids=ids,
            rows=answered,
            session=audit.read_unit(session),
        )
    if more and not paged:
        rest = accounts.transaction_slices(
            hub.db, hub.keyring, login, ids, start, end, rows[limit - 1], STREAM_SLICE
        )
        # the same document as below, written a slice at a time (the schema is the envelope's)
        streamed = Stream(_streamed(views, rest), media_type=MediaType.JSON)
        return cast(Response[TransactionListEnvelope], streamed)
    headers = {}
    if more:
        params = dict(request.query_params)
        params["page"] = str(page_no + 1)
        params["per_page"] = str(limit)
        query = urlencode(params)
        headers["Link"] = f'<{public_url(hub, request)}/v2/transaction?{query}>; rel="next"'
    if body is None:
        body = _LIST_ENCODER.encode(TransactionListEnvelope([transaction_out(r) for r in views]))
    return cast(
        Response[TransactionListEnvelope],
        Response(body, headers=headers, media_type=MediaType.JSON),
    )


async def _streamed(
    first: list[accounts.TransactionView], rest: AsyncIterator[list[accounts.TransactionView]]
) -> AsyncIterator[bytes]:
    """The seed's ``{"data": [...], "version": "v2"}``, a slice of rows at a time: only one
    slice is ever in memory. A failure after the first bytes ends the answer short (invalid
    JSON), never as a well-formed document missing rows."""
    yield b'{"data":[' + _LIST_ENCODER.encode([transaction_out(r) for r in first])[1:-1]
    async for views in rest:
        yield b"," + _LIST_ENCODER.encode([transaction_out(r) for r in views])[1:-1]
    yield b'],"version":"' + VERSION.encode() + b'"}'


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
    hub: HubDep,
    auth: AuthDep,
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
    wanted = whole_number(account_id or "")
    if wanted is None:
        problem = "account_id is required" if not account_id else "account_id is not an id"
        raise DomainError(ErrorCode.BAD_REQUEST, problem, {"account_id": (account_id or "")[:40]})
    after = 0
    if cursor:
        given = whole_number(cursor)
        if given is None:
            raise DomainError(
                ErrorCode.BAD_REQUEST, "cursor is not one bankhub gave", {"cursor": cursor[:64]}
            )
        after = given
    size = 100
    if count:
        chosen = whole_number(count, MAX_COUNT)
        if chosen is None or chosen < 1:
            raise DomainError(
                ErrorCode.BAD_REQUEST,
                f"count must be from 1 to {MAX_COUNT}",
                {"count": count[:40]},
            )
        size = chosen
    async with hub.db.transaction() as session:
        _, login = await auth.login(session)
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
    account_data_read(
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


TRANSACTION_ROUTES = [list_transactions, sync_transactions]
