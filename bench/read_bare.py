"""The physical-limit baselines of ``bench/read.py``: the least work that gives bankhub's answer.

No framework: an ASGI callable on granian, started as ``bankhub serve`` starts bankhub (ASGI,
one worker, no access log, granian's default loop), the bare driver and msgspec.

* SQLite: one ``sqlite3`` connection per process, used on the event loop. Every statement
  here is a short indexed read (or one small INSERT), cheaper than a hand-off to a thread
  and back, so it runs where the request already is.
* PostgreSQL: an ``asyncpg`` pool (the size of bankhub's engine pool), whose connections
  prepare each statement once and reuse it. The role is the runtime role of
  docs/operations.md (no owner, no superuser, no ``BYPASSRLS``), so row-level security binds
  it as it binds bankhub: without duties each connection chooses the app once, for its session
  (one app is all this server serves); with duties each request chooses it in the statement
  that finds the key, local to the request's transaction, as bankhub does.

Two modes (``READ_BARE_DUTIES``):

* ``0``, *bare driver*: the page (or the login's accounts) by id, no authentication, no
  scoping, no audit: what the machine must do to read the rows and write the JSON.
* ``1``, *bare driver + duties*: the same plus the minimum of bankhub's duties on each
  request: the API key found by its keyed hash (HMAC-SHA-256 under the pepper, as
  ``bankhub.security.secrets``), live (not revoked, not expired); the login found by the keyed
  hash of its secret with the asked account in the same statement (the tenant check: the
  account must belong to that login of the key's app); one row into ``audit_log``.

The body is byte for byte bankhub's for the benchmark's rows (``bench/read.py`` checks one
page and one account list of each against bankhub's answer before measuring): the same fields
in the same order, amounts at the currency's exponent, ``meta`` re-encoded compactly, the
pending marks bankhub adds. It reads the details from the plain columns the fixture fills
beside the sealed envelope bankhub opens (the baseline holds no keys).

    READ_BARE_DATABASE=/path/db.sqlite3|postgresql://... READ_BARE_APP_ID=1 READ_BARE_DUTIES=1 \
        BANKHUB_SECRET_KEY=... python -m bench.read_bare --host 127.0.0.1 --port 8002
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import parse_qs

import msgspec

DATABASE_VARIABLE = "READ_BARE_DATABASE"
APP_ID_VARIABLE = "READ_BARE_APP_ID"
DUTIES_VARIABLE = "READ_BARE_DUTIES"
#: the pool size of ``bankhub.db.engine.make_engine`` on PostgreSQL
POOL_SIZE = 10

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TransactionOut(msgspec.Struct):
    id: int
    original_id: str
    date: str
    amount: str
    currency: str
    description: str
    category: str
    meta: dict[str, Any] | None


class TransactionList(msgspec.Struct):
    data: list[TransactionOut]
    version: str = "v2"


class AccountOut(msgspec.Struct):
    id: int
    original_id: str
    login_id: int
    name: str
    balance: str | None
    currency: str
    type: str


class AccountList(msgspec.Struct):
    data: list[AccountOut]
    version: str = "v2"


_ENCODE = msgspec.json.encode
_DECODE = msgspec.json.decode
_EXPONENTS = {"VND": 0, "JPY": 0, "KRW": 0}
_QUANTA: dict[str, Decimal] = {}


def _amount(value: Decimal | str, currency: str) -> str:
    quantum = _QUANTA.get(currency)
    if quantum is None:
        quantum = _QUANTA[currency] = Decimal(1).scaleb(-_EXPONENTS.get(currency, 2))
    return format(Decimal(value).quantize(quantum, rounding=ROUND_HALF_EVEN), "f")


def _meta(text: str | None, status: str, pending: int | None) -> dict[str, Any] | None:
    meta: dict[str, Any] | None = None if text is None else _DECODE(text)
    if status == "pending":
        meta = {**(meta or {}), "status": "pending"}
    if pending is not None:
        meta = {**(meta or {}), "pending_transaction_id": pending}
    return meta


class Refused(Exception):
    def __init__(self, status: int, code: str) -> None:
        self.status, self.body = status, _ENCODE({"error": code, "message": code, "extra": {}})


def _digest(pepper: bytes) -> Callable[[str, str], str]:
    def digest(purpose: str, secret: str) -> str:
        message = purpose.encode() + b"\x00" + secret.encode()
        return hmac.new(pepper, message, hashlib.sha256).hexdigest()

    return digest


def _audit_detail(
    resource: str,
    path: str,
    customer: str,
    login_id: int,
    account_ids: list[int],
    key_id: str,
    rows: int,
) -> str:
    return _ENCODE(
        {
            "resource": resource,
            "route": f"GET {path}",
            "customer_id": customer,
            "login_ids": [login_id],
            "account_ids": account_ids,
            "key_id": key_id,
            "rows": rows,
        }
    ).decode()


# --- the statements (bankhub's, by hand) ------------------------------------------------------

_PAGE = (
    "SELECT id, original_id, date, amount, currency, description, category, meta, status, "
    "pending_transaction_id FROM transactions WHERE app_id = {0} AND account_id = {1} "
    "ORDER BY date DESC, id DESC LIMIT {2} OFFSET {3}"
)
_ACCOUNTS = (
    "SELECT id, bank_id, login_id, name, balance, currency, type FROM accounts "
    "WHERE app_id = {0} AND login_id = {1} ORDER BY id"
)
_KEY = (
    "SELECT a.id, k.key_id FROM apps a JOIN api_keys k ON k.app_id = a.id "
    "WHERE a.client_id = {0} AND k.secret_hash = {1} AND k.kind = 'service' "
    "AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > {2})"
)
_LOGIN_ACCOUNT = (
    "SELECT l.id, l.customer_id, l.active, a.id FROM logins l LEFT JOIN accounts a "
    "ON a.app_id = l.app_id AND a.login_id = l.id AND a.id = {2} "
    "WHERE l.app_id = {0} AND l.secret_hash = {1}"
)
_LOGIN = (
    "SELECT l.id, l.customer_id, l.active FROM logins l "
    "WHERE l.app_id = {0} AND l.secret_hash = {1}"
)
_AUDIT = (
    "INSERT INTO audit_log (app_id, actor, action, target_type, target_id, detail, "
    "request_id, at) VALUES ({0}, {1}, 'read', 'login', {2}, {3}, NULL, {4})"
)


def _qmark(sql: str) -> str:
    return sql.format(*(f"?{n}" for n in range(1, 9)))


def _numbered(sql: str) -> str:
    return sql.format(*(f"${n}" for n in range(1, 9)))


# --- one request ------------------------------------------------------------------------------


class Request:
    __slots__ = ("headers", "path", "query")

    def __init__(self, scope: Scope) -> None:
        self.path: str = scope["path"]
        self.query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


Handler = Callable[[Request], Awaitable[bytes]]


def _asgi(handlers: dict[str, Handler], start: Callable[[], Awaitable[None]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        handler = handlers.get(scope["path"])
        status, body = 404, b'{"error":"NotFound"}'
        if handler is not None:
            try:
                status, body = 200, await handler(Request(scope))
            except Refused as refused:
                status, body = refused.status, refused.body
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def _paging(request: Request) -> tuple[int, int]:
    limit = int(request.query.get("per_page", "1000"))
    return limit, (int(request.query.get("page", "1")) - 1) * limit


# --- SQLite -----------------------------------------------------------------------------------


def _sqlite_now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def sqlite_app(path: str, app_id: int, duties: bool, pepper: bytes) -> Any:
    # On the loop, in autocommit: a read is one statement, the audit row its own short write
    # (WAL, synchronous=NORMAL, as bankhub's engine sets them).
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    page_sql, accounts_sql = _qmark(_PAGE), _qmark(_ACCOUNTS)
    key_sql, login_account_sql, login_sql = _qmark(_KEY), _qmark(_LOGIN_ACCOUNT), _qmark(_LOGIN)
    audit_sql = _qmark(_AUDIT)
    digest = _digest(pepper)

    def caller(request: Request) -> tuple[int, str]:
        headers = request.headers
        found = db.execute(
            key_sql,
            (
                headers.get("client-id", ""),
                digest("service-secret", headers.get("service-secret", "")),
                _sqlite_now(),
            ),
        ).fetchone()
        if found is None:
            raise Refused(401, "CredentialInvalid")
        return found[0], found[1]

    def audit(
        app: int,
        key_id: str,
        resource: str,
        request: Request,
        login: Any,
        ids: list[int],
        rows: int,
    ) -> None:
        detail = _audit_detail(resource, request.path, login[1], login[0], ids, key_id, rows)
        actor = f"app:{request.headers['client-id']}"
        db.execute(audit_sql, (app, actor, str(login[0]), detail, _sqlite_now()))

    async def transactions(request: Request) -> bytes:
        limit, offset = _paging(request)
        account_id = int(request.query["account_id"])
        app = app_id
        if duties:
            app, key_id = caller(request)
            secret = digest("login-secret", request.headers.get("login-secret", ""))
            login = db.execute(login_account_sql, (app, secret, account_id)).fetchone()
            if login is None or not login[2]:
                raise Refused(404, "LoginNotFound")
            if login[3] is None:
                raise Refused(404, "AccountNotFound")
        rows = db.execute(page_sql, (app, account_id, limit, offset)).fetchall()
        body = _ENCODE(
            TransactionList(
                [
                    TransactionOut(
                        r[0],
                        r[1],
                        r[2],
                        _amount(r[3], r[4]),
                        r[4],
                        r[5],
                        r[6],
                        _meta(r[7], r[8], r[9]),
                    )
                    for r in rows
                ]
            )
        )
        if duties:
            audit(app, key_id, "transactions", request, login, [account_id], len(rows))
        return body

    async def accounts(request: Request) -> bytes:
        app = app_id
        if duties:
            app, key_id = caller(request)
            secret = digest("login-secret", request.headers.get("login-secret", ""))
            login = db.execute(login_sql, (app, secret)).fetchone()
            if login is None or not login[2]:
                raise Refused(404, "LoginNotFound")
            login_id = login[0]
        else:
            login_id = int(request.query["login_id"])
        rows = db.execute(accounts_sql, (app, login_id)).fetchall()
        body = _ENCODE(
            AccountList(
                [
                    AccountOut(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        None if r[4] is None else _amount(r[4], r[5]),
                        r[5],
                        r[6],
                    )
                    for r in rows
                ]
            )
        )
        if duties:
            audit(app, key_id, "accounts", request, login, [r[0] for r in rows], len(rows))
        return body

    async def healthz(_: Request) -> bytes:
        return b'{"status":"ok"}'

    async def start() -> None:
        return None

    return _asgi(
        {"/v2/transaction": transactions, "/v2/account": accounts, "/healthz": healthz}, start
    )


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_app(dsn: str, app_id: int, duties: bool, pepper: bytes) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    page_sql, accounts_sql = _numbered(_PAGE), _numbered(_ACCOUNTS)
    # bankhub's key look-up chooses the tenant in the same statement (``tenancy.chosen_by``)
    key_sql = _numbered(_KEY).replace(
        " FROM apps",
        ", set_config('bankhub.app_id', a.id::text, true), "
        "set_config('bankhub.scope', '', true) FROM apps",
    )
    login_account_sql, login_sql = _numbered(_LOGIN_ACCOUNT), _numbered(_LOGIN)
    audit_sql = _numbered(_AUDIT)
    digest = _digest(pepper)
    pool: Any = None

    # Without duties one app, for each connection's whole session (the bare driver serves no
    # other): a start-up setting, which the pool's reset on release keeps.
    settings = {} if duties else {"bankhub.app_id": str(app_id)}

    async def start() -> None:
        nonlocal pool
        pool = await asyncpg.create_pool(
            dsn, min_size=POOL_SIZE, max_size=POOL_SIZE, server_settings=settings
        )

    async def caller(connection: Any, request: Request) -> tuple[int, str]:
        headers = request.headers
        found = await connection.fetchrow(
            key_sql,
            headers.get("client-id", ""),
            digest("service-secret", headers.get("service-secret", "")),
            datetime.now(UTC),
        )
        if found is None:
            raise Refused(401, "CredentialInvalid")
        return found[0], found[1]

    async def audit(
        connection: Any,
        app: int,
        key_id: str,
        resource: str,
        request: Request,
        login: Any,
        ids: list[int],
        rows: int,
    ) -> None:
        detail = _audit_detail(resource, request.path, login[1], login[0], ids, key_id, rows)
        await connection.execute(
            audit_sql,
            app,
            f"app:{request.headers['client-id']}",
            str(login[0]),
            detail,
            datetime.now(UTC),
        )

    def page(rows: list[Any]) -> bytes:
        return _ENCODE(
            TransactionList(
                [
                    TransactionOut(
                        r[0],
                        r[1],
                        _iso(r[2]),
                        _amount(r[3], r[4]),
                        r[4],
                        r[5],
                        r[6],
                        _meta(r[7], r[8], r[9]),
                    )
                    for r in rows
                ]
            )
        )

    def account_list(rows: list[Any]) -> bytes:
        return _ENCODE(
            AccountList(
                [
                    AccountOut(
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        None if r[4] is None else _amount(r[4], r[5]),
                        r[5],
                        r[6],
                    )
                    for r in rows
                ]
            )
        )

    async def transactions(request: Request) -> bytes:
        limit, offset = _paging(request)
        account_id = int(request.query["account_id"])
        async with pool.acquire() as connection:
            if not duties:
                return page(await connection.fetch(page_sql, app_id, account_id, limit, offset))
            async with connection.transaction():
                app, key_id = await caller(connection, request)
                secret = digest("login-secret", request.headers.get("login-secret", ""))
                login = await connection.fetchrow(login_account_sql, app, secret, account_id)
                if login is None or not login[2]:
                    raise Refused(404, "LoginNotFound")
                if login[3] is None:
                    raise Refused(404, "AccountNotFound")
                rows = await connection.fetch(page_sql, app, account_id, limit, offset)
                await audit(
                    connection, app, key_id, "transactions", request, login, [account_id], len(rows)
                )
        return page(rows)

    async def accounts(request: Request) -> bytes:
        async with pool.acquire() as connection:
            if not duties:
                login_id = int(request.query["login_id"])
                return account_list(await connection.fetch(accounts_sql, app_id, login_id))
            async with connection.transaction():
                app, key_id = await caller(connection, request)
                secret = digest("login-secret", request.headers.get("login-secret", ""))
                login = await connection.fetchrow(login_sql, app, secret)
                if login is None or not login[2]:
                    raise Refused(404, "LoginNotFound")
                rows = await connection.fetch(accounts_sql, app, login[0])
                ids = [r[0] for r in rows]
                await audit(connection, app, key_id, "accounts", request, login, ids, len(ids))
        return account_list(rows)

    async def healthz(_: Request) -> bytes:
        return b'{"status":"ok"}'

    return _asgi(
        {"/v2/transaction": transactions, "/v2/account": accounts, "/healthz": healthz}, start
    )


def _iso(day: date) -> str:
    return day.isoformat()


def create_app() -> Any:
    """The granian target (a factory): settings from the environment."""
    database = os.environ[DATABASE_VARIABLE]
    app_id = int(os.environ[APP_ID_VARIABLE])
    duties = os.environ.get(DUTIES_VARIABLE) == "1"
    pepper = os.environ["BANKHUB_SECRET_KEY"].encode()
    if database.startswith("postgresql"):
        return postgres_app(database, app_id, duties, pepper)
    return sqlite_app(database, app_id, duties, pepper)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.read_bare")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from granian import Granian
    from granian.constants import Interfaces

    # As ``bankhub serve`` starts bankhub (src/bankhub/cli.py): ASGI, one worker, no access log.
    Granian(
        "bench.read_bare:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
