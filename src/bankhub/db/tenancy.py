"""Whose data a unit of work touches, told to PostgreSQL for row-level security (S14).

Every query already filters by the authenticated app (S13). On PostgreSQL the database checks it
a second time: the tenant tables carry policies (migration ``rls1``) that show and accept only
the rows of the app named by the transaction-local setting ``bankhub.app_id``, or every row
when ``bankhub.scope`` is ``all``. This module decides those two settings.

The choice lives in a context variable, so it follows the work wherever it goes (tasks started
from a request inherit it) without being passed through every call:

* nothing chosen: a request before authentication. Only the credential lookups may read (the
  ``apps``, ``api_keys``, OAuth grant and connect-token tables; see ``docs/security.md``);
  every tenant table shows no row and accepts none.
* an app id: chosen by :func:`enter` once ``Hub.principal`` (or the connect page, or the OAuth
  client check) knows the app. Every later transaction of the same request starts with it.
* :data:`ALL`: the operator's and the runner's work that spans apps (CLI, claiming due syncs and
  deliveries, retention), chosen with :func:`everything`.

The settings are sent once per transaction, by a session event when the transaction begins
(``after_begin``), or by :func:`enter` in the transaction that authenticated. SQLite has no
row-level security; there nothing is sent and the choice only documents the intent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Final

from sqlalchemy import ColumnElement, String, cast, event, func, literal, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session, SessionTransaction

#: the scope of operator and runner work that spans every app
ALL: Final = "all"

Tenant = int | str | None

_current: ContextVar[Tenant] = ContextVar("bankhub_tenant", default=None)

#: what the transaction of a session was last told (``session.info`` key)
_SENT = "bankhub.tenant"
_SET = text(
    "select set_config('bankhub.app_id', :app_id, true), set_config('bankhub.scope', :scope, true)"
)


def current() -> Tenant:
    return _current.get()


def _values(tenant: Tenant) -> dict[str, str]:
    if tenant == ALL:
        return {"app_id": "", "scope": ALL}
    return {"app_id": "" if tenant is None else str(int(tenant)), "scope": ""}


def choose(tenant: Tenant) -> None:
    """From now on, in this task and the tasks it starts, transactions act for ``tenant``.

    Requests choose without undoing: :func:`fresh_start` gives each request a fresh start.
    """
    _current.set(tenant)


@contextmanager
def acting_for(tenant: Tenant) -> Iterator[None]:
    """Transactions begun inside the block act for ``tenant``; the previous choice returns
    after it."""
    token = _current.set(tenant)
    try:
        yield
    finally:
        _current.reset(token)


def everything() -> Any:
    """The operator's or the runner's view: every app's rows (``bankhub.scope = 'all'``)."""
    return acting_for(ALL)


async def enter(session: AsyncSession, app_id: int) -> None:
    """The app is known: this transaction and the rest of the request act for it.

    At most one statement, and none when the transaction already began for this app.
    """
    choose(app_id)
    if session.bind.dialect.name != "postgresql" or not session.in_transaction():
        return  # the transaction, when it begins, is told by ``after_begin``
    if session.info.get(_SENT) == app_id:
        return
    await session.execute(_SET, _values(app_id))
    session.info[_SENT] = app_id


def chosen_by(
    app_id: ColumnElement[int] | InstrumentedAttribute[int],
) -> tuple[ColumnElement[str], ColumnElement[str]]:
    """Columns that tell the transaction, in the very statement that finds the app, to act
    for it from the next statement on (PostgreSQL): the credential lookup saves the round trip
    of :func:`enter`. Only for a statement that finds at most one app; the statement's caller
    then calls :func:`entered` with the app found."""
    return (
        func.set_config(literal("bankhub.app_id"), cast(app_id, String), True),
        func.set_config(literal("bankhub.scope"), literal(""), True),
    )


def entered(session: AsyncSession, app_id: int) -> None:
    """A statement with :func:`chosen_by`'s columns found ``app_id``: the transaction acts for
    it already, so :func:`enter` sends nothing more."""
    session.info[_SENT] = app_id


def sent(session: AsyncSession) -> Tenant:
    """The app this session's transaction was last told it acts for (None: not told)."""
    value: Tenant = session.info.get(_SENT)
    return value


async def span_every_app(connection: AsyncConnection) -> None:
    """The transaction just begun on a Core ``connection`` (not a session) acts for every app:
    the audit writer's batches hold entries of many apps."""
    if connection.dialect.name == "postgresql":
        await connection.execute(_SET, _values(ALL))


def _after_begin(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    tenant = _current.get()
    session.info[_SENT] = tenant
    if tenant is not None:
        connection.execute(_SET, _values(tenant))


class TenantSession(Session):
    """Sessions of a PostgreSQL database: each transaction says whose rows it may touch."""


event.listen(TenantSession, "after_begin", _after_begin)


def fresh_start() -> Token[Tenant]:
    """As a request starts (the API's edge): no tenant, whatever ran before it in the same
    context; :func:`restore` with the token as it ends leaves no choice behind."""
    return _current.set(None)


def restore(token: Token[Tenant]) -> None:
    _current.reset(token)


def tenant_table_sql(table: str) -> list[str]:
    """What a migration runs on PostgreSQL to put a new table with ``app_id`` behind the wall of
    migration ``rls1``: forced row-level security and its ``tenant_rows`` policy."""
    rule = (
        "app_id = nullif(current_setting('bankhub.app_id', true), '')::bigint"
        " OR coalesce(current_setting('bankhub.scope', true), '') = 'all'"
    )
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_rows ON {table} AS PERMISSIVE FOR ALL"
        f" USING ({rule}) WITH CHECK ({rule})",
    ]
