"""Read: ``GET /v2/transaction`` (a 100-row page) and ``GET /v2/account``, against the
physical limit of this machine, measured on the same data in the same run.

The benchmark: a database of 1,000,000 transactions over 10,000 accounts (1,000 logins
of 10 accounts, 100 transactions each), on SQLite and on PostgreSQL, built through the real
migrations; the app, its keys, the customers and the logins are made by bankhub's own services,
the accounts and transactions by bulk inserts (SQLite ``executemany`` in one transaction,
PostgreSQL ``COPY``). bankhub runs as ``python -m bankhub serve`` (API only: no embedded
worker; on PostgreSQL as the runtime role of docs/operations.md, bound by row-level security,
the owner as its maintenance role) and answers with real authentication (client-id +
service-secret, login-secret through the keyed hashes), tenant scoping and the audit entry of
every read (S42).

Beside it, on the same database and rows, three baselines, each a server of its own started
the same way:

* **bare driver** (``read_bare.py``, the target's baseline): granian + msgspec, no framework,
  the standard ``sqlite3`` module / ``asyncpg`` (the runtime role, row-level security), the
  page by id: the least work that gives the same bytes;
* **bare driver + duties** (``read_bare.py``): the same plus the minimum of bankhub's duties
  (key and login by keyed hash, the tenant check, one audit row per request): what the duties
  cost, and so what the framework and bankhub's own code cost on top;
* **same stack** (``read_baseline.py``): Litestar + SQLAlchemy Core over aiosqlite/asyncpg with
  no auth (the former baseline; as the owner on PostgreSQL).

Before measuring, one page and one account list of each server are compared with bankhub's
answer byte for byte (the same-stack app: the same JSON document), and bankhub and the bare
driver with duties are shown to refuse another login's account.

Load: ``wrk`` on loopback, a Lua script rotating over up to 1,000 (account, login-secret)
pairs, a warm-up first; the four servers are measured in turn, ``ctx.repeats`` rounds (3 at
full size), and the medians compared: throughput ≥ 0.5 × the bare driver's, p99 ≤ 2 × its p99
(issue targets), each run listed, with p50 and the CPU per request from /proc (the server's
processes, and PostgreSQL's). A full-size run records ``py-spy`` profiles of bankhub and the
bare driver under the page load (``bench/results/read-<db>-profile.txt``).

Tiny mode: 1,000 transactions over 10 accounts (still 100-row pages), 2-second runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bankhub.accounts.details import Details, RowKeys, seal
from bankhub.config import Environment, Settings
from bankhub.security.crypto import Cipher
from bankhub.security.keyring import open_keyring
from bankhub.sync import engine
from bench import harness
from bench._fixture import BenchApp, new_app, new_logins
from bench.harness import Context, Result, at_least, at_most

PAGE = 100  # rows per page, and transactions per account
ACCOUNTS_PER_LOGIN = 10  # full size; tiny: 2 logins of 5
MAX_PAIRS = 1_000  # (account, login-secret) pairs the load rotates over
CONNECTIONS = 32
THREADS = 2
CHUNK = 50_000  # rows per executemany / COPY call
PROFILE_SECONDS = 10

# --- the data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """What the load needs to know about the data it reads."""

    app_id: int
    client_id: str
    service_secret: str
    #: (account id, login-secret of the login owning it)
    pairs: list[tuple[int, str]]
    transactions: int
    accounts: int
    #: the login id of each pair (the bare driver's ``/v2/account`` names it in the query)
    login_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Rows:
    """The bulk of the fixture in plain Python values; each database writes them its way.

    Accounts name their login by number (1..``logins``) and their app as ``APP``: the loaders
    put in the ids bankhub's services gave the app and the logins in that database.
    """

    now: datetime
    logins: int
    accounts: list[dict[str, Any]]
    #: (account id, login number) of the accounts the load reads, one per login
    pairs: list[tuple[int, int]]


#: placeholder for the app id in the rows, replaced by the real one when loading
APP = 0


@dataclass(frozen=True)
class Parties:
    """What bankhub's services made in one database: the app, its keys, the logins."""

    app: BenchApp
    #: login number → (login id, login-secret)
    logins: dict[int, tuple[int, str]]
    #: the data keyring of that database, loaded, and the server pepper's keyed hashes
    box: Cipher
    keys: RowKeys

    def dataset(self, rows: Rows) -> Dataset:
        return Dataset(
            app_id=self.app.app_id,
            client_id=self.app.client_id,
            service_secret=self.app.service_secret,
            pairs=[(account, self.logins[n][1]) for account, n in rows.pairs],
            transactions=len(rows.accounts) * PAGE,
            accounts=len(rows.accounts),
            login_ids=[self.logins[n][0] for _, n in rows.pairs],
        )

    def account_rows(self, rows: Rows) -> list[dict[str, Any]]:
        return [
            {**a, "app_id": self.app.app_id, "login_id": self.logins[a["login_id"]][0]}
            for a in rows.accounts
        ]


#: the columns the fixture writes: the sync engine's own for a new row (the details sealed, as
#: bankhub stores and reads them), with the id a bulk load sets itself, and the same details in
#: the plain columns of rows from before sealing, which the baseline (it holds no keys) reads:
#: the baseline is what the same data costs stored in clear
TRANSACTION_COLUMNS = (
    "id",
    *engine.TRANSACTION_COLUMNS,
    "original_id",
    "description",
    "merchant",
    "meta",
)

_MERCHANTS = (
    "LIDL",
    "ALDI SUED",
    "REWE",
    "CARREFOUR",
    "TESCO STORES",
    "SHELL",
    "ARAL",
    "AMAZON EU SARL",
    "NETFLIX.COM",
    "SPOTIFY AB",
    "UBER *TRIP",
    "DB VERTRIEB GMBH",
    "STARBUCKS",
    "IKEA",
    "DECATHLON",
    "APPLE.COM/BILL",
    "VINMART",
    "HIGHLANDS COFFEE",
    "GRAB*FOOD",
    "ZARA",
)
_CITIES = ("BERLIN", "MUENCHEN", "PARIS", "LONDON", "HANOI", "HO CHI MINH", "WIEN", "MADRID")
_CATEGORIES = (
    "groceries",
    "transport",
    "shopping",
    "entertainment",
    "restaurants",
    "utilities",
    "income",
    "transfer",
    "other",
)
_CURRENCIES = ("EUR", "EUR", "EUR", "USD", "GBP", "VND")
_ACCOUNT_TYPES = ("current", "savings", "credit_card")


def _secret_key(ctx: Context) -> bytes:
    return ctx.env()["BANKHUB_SECRET_KEY"].encode()


def _service_id() -> int:
    from bankhub.catalogue import default_catalogue

    return default_catalogue().services[0].id


def _make_rows(ctx: Context) -> Rows:
    now = datetime.now(UTC)
    n_accounts = ctx.size(10_000, 10)
    n_logins = ctx.size(n_accounts // ACCOUNTS_PER_LOGIN, 2)
    accounts: list[dict[str, Any]] = []
    rng = random.Random(20_240_601)  # noqa: S311 - fixture data, not security
    per_login = max(1, n_accounts // n_logins)
    for n in range(1, n_accounts + 1):
        login = min(n_logins, (n - 1) // per_login + 1)
        currency = rng.choice(_CURRENCIES)
        accounts.append(
            {
                "id": n,
                "app_id": APP,
                "login_id": login,
                "bank_id": f"acc-{uuid.UUID(int=rng.getrandbits(128))}",
                "name": f"{rng.choice(('Girokonto', 'Savings', 'Visa Card'))} {n}",
                "type": rng.choice(_ACCOUNT_TYPES),
                "currency": currency,
                "balance": Decimal(rng.randint(-50_000, 5_000_000)) / 100,
                "number_masked": f"•••• {n % 10_000:04d}",
                "created_at": now,
                "updated_at": now,
            }
        )
    # One account of each login (a different position in each), up to MAX_PAIRS of them.
    step = max(1, n_logins // MAX_PAIRS)
    pairs = [
        (accounts[(login - 1) * per_login + login % per_login]["id"], login)
        for login in range(1, n_logins + 1, step)
    ][:MAX_PAIRS]
    return Rows(now, n_logins, accounts, pairs)


async def _make_parties(ctx: Context, url: str, rows: Rows) -> Parties:
    """The app with its keys and the customers with their logins, by bankhub's own services
    (the database is migrated and empty)."""
    from bankhub.db.engine import Database
    from bankhub.security.secrets import SecretHasher

    hasher = SecretHasher(_secret_key(ctx))

    def clock() -> datetime:
        return rows.now

    db = Database(url)
    try:
        async with db.transaction() as session:
            # A year: nothing of the fixture is ever due for purging while the benchmark runs.
            app, bench_app = await new_app(
                session, hasher, clock, "bench read", retention_hours=24 * 365
            )
            made = await new_logins(
                session,
                hasher,
                clock,
                app,
                _service_id(),
                [f"user-{n:06d}" for n in range(1, rows.logins + 1)],
            )
            logins = {n: (login.id, secret) for n, (login, secret) in enumerate(made, start=1)}
        # the keyring bankhub serve will load (BANKHUB_ENV=test: the KEK from the pepper)
        settings = Settings(env=Environment.TEST, secret_key=_secret_key(ctx).decode())
        async with db.transaction() as session:
            box = await open_keyring(settings, session)
        return Parties(bench_app, logins, box, RowKeys(hasher))
    finally:
        await db.dispose()


def _transactions(rows: Rows, parties: Parties, *, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    """100 transactions per account over the last year, in the order of TRANSACTION_COLUMNS.

    Rows are written account by account, as a first connect's back-fill writes them. Values are
    what the database's driver takes: for SQLite what bankhub's column types store (ISO dates,
    amounts as canonical decimal text, naive UTC timestamps), for PostgreSQL Python objects.
    The fingerprint is random hex of the real length (a content hash is as random to an index).
    """
    rng = random.Random(7)  # noqa: S311 - fixture data, not security
    rand, bits = rng.random, rng.getrandbits
    today = rows.now.date()
    days = [today - timedelta(days=368 - k) for k in range(369)]
    day_value: list[Any] = [d.isoformat() for d in days] if sqlite else days
    day_label = [f"{d.day:02d}.{d.month:02d}" for d in days]
    now: Any = _sqlite_value(rows.now) if sqlite else rows.now
    metas = [{"mcc": str(rng.randrange(1000, 9999))} for _ in range(97)]
    meta_texts = [json.dumps(meta) for meta in metas]
    app_id, box, keys = parties.app.app_id, parties.box, parties.keys
    n_merchants, n_cities, n_categories = len(_MERCHANTS), len(_CITIES), len(_CATEGORIES)
    tx_id = 0
    for account in rows.accounts:
        account_id, currency = account["id"], account["currency"]
        whole = currency == "VND"
        offsets = sorted(int(rand() * 365) for _ in range(PAGE))
        for seq, offset in enumerate(offsets):
            tx_id += 1
            merchant = _MERCHANTS[int(rand() * n_merchants)]
            income = rand() < 0.08
            if income:
                cents = 10_000 + int(rand() * 390_000)
                description = f"SEPA CREDIT SALARY {merchant} REF {int(rand() * 1e8):08d}"
                category = "income"
            else:
                cents = -50 - int(rand() * 24_950)
                description = (
                    f"CARD PAYMENT {merchant} {_CITIES[int(rand() * n_cities)]} "
                    f"{day_label[offset]} {int(rand() * 1e6):06d}"
                )
                category = _CATEGORIES[int(rand() * n_categories)]
            if whole:
                text = f"{cents * 250}"
            else:
                sign, cents = ("-", -cents) if cents < 0 else ("", cents)
                text = f"{sign}{cents // 100}.{cents % 100:02d}"
            bank_id = f"tx-{account_id}-{seq}"
            dedupe_key = keys.bank_key(bank_id)
            meta = tx_id % 97 if seq % 3 == 0 else None
            fields = Details(bank_id, description, merchant, None if meta is None else metas[meta])
            yield (
                tx_id,
                app_id,
                account_id,
                dedupe_key,
                f"{bits(160):040x}",
                seal(box, app_id, account_id, dedupe_key, fields),
                day_value[offset],
                day_value[offset + int(rand() * 3)],
                text if sqlite else Decimal(text),
                currency,
                category,
                "booked",
                None,  # pending_transaction_id
                now,
                now,
                bank_id,
                description,
                merchant,
                None if meta is None else meta_texts[meta],
            )


def _chunks(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- SQLite -------------------------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite dialect and bankhub's column types store."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return int(value)
    return value


def _sqlite_insert(db: sqlite3.Connection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    db.executemany(sql, [tuple(_sqlite_value(row[c]) for c in columns) for row in rows])


def load_sqlite(ctx: Context, path: Path, rows: Rows) -> tuple[str, Dataset]:
    from bankhub.db.migrate import upgrade

    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    parties = asyncio.run(_make_parties(ctx, url, rows))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        # Bulk-load settings for this connection only (the file stays in WAL mode, as bankhub
        # leaves it): no fsync, and a page cache large enough for the random-key indexes.
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")
        db.execute("BEGIN")
        _sqlite_insert(db, "accounts", parties.account_rows(rows))
        sql = (
            f"INSERT INTO transactions ({', '.join(TRANSACTION_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(TRANSACTION_COLUMNS))})"
        )
        # The secondary indexes are built after the rows, from the migrations' own definitions.
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'transactions' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        for chunk in _chunks(_transactions(rows, parties, sqlite=True), CHUNK):
            db.executemany(sql, chunk)
        for _, create in indexes:
            db.execute(create)
        db.execute("COMMIT")
        db.execute("ANALYZE")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return url, parties.dataset(rows)


# --- PostgreSQL ---------------------------------------------------------------------------------


async def _create_pg_database(admin_dsn: str, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _fill_pg(dsn: str, rows: Rows, parties: Parties) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            # Bulk load: no per-row foreign-key triggers (the rows are consistent by
            # construction), and the secondary indexes built after the rows from their own
            # definitions (those backing constraints stay).
            await connection.execute("SET LOCAL session_replication_role = replica")
            indexes = await connection.fetch(
                "SELECT i.indexrelid::regclass::text AS name, "
                "pg_get_indexdef(i.indexrelid) AS create FROM pg_index i "
                "WHERE i.indrelid = 'transactions'::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"
            )
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["name"]}"')
            accounts = parties.account_rows(rows)
            columns = list(accounts[0])
            await connection.copy_records_to_table(
                "accounts",
                records=[tuple(r[c] for c in columns) for r in accounts],
                columns=columns,
            )
            for chunk in _chunks(_transactions(rows, parties, sqlite=False), CHUNK):
                await connection.copy_records_to_table(
                    "transactions", records=chunk, columns=list(TRANSACTION_COLUMNS)
                )
            for index in indexes:
                await connection.execute(index["create"])
            for table in ("accounts", "transactions"):
                await connection.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


#: the runtime role bankhub and the bare driver serve with on PostgreSQL (docs/operations.md,
#: "PostgreSQL roles and row-level security"): rights on rows, no ownership, no BYPASSRLS
RUNTIME_ROLE = "bench_runtime"


@dataclass(frozen=True)
class PgUrls:
    #: the owner of the tables (the cluster's superuser here): migrations, the fixture
    owner: str
    #: the runtime role, bound by row-level security: what bankhub and the bare driver use
    runtime: str


def load_postgres(ctx: Context, rows: Rows) -> tuple[PgUrls, Dataset]:
    from bankhub.db.migrate import upgrade
    from bankhub.db.roles import grant_app_role

    if ctx.postgres_url is None:
        raise RuntimeError("no PostgreSQL server")
    base = make_url(ctx.postgres_url)
    name = f"bench_read_{uuid.uuid4().hex[:8]}"
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    asyncio.run(_create_pg_database(admin_dsn, name))
    url = base.set(database=name)
    rendered = url.render_as_string(hide_password=False)
    upgrade(rendered)
    parties = asyncio.run(_make_parties(ctx, rendered, rows))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    asyncio.run(_fill_pg(dsn, rows, parties))
    asyncio.run(grant_app_role(rendered, RUNTIME_ROLE))
    runtime = url.set(username=RUNTIME_ROLE).render_as_string(hide_password=False)
    return PgUrls(rendered, runtime), parties.dataset(rows)


# --- load ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    rps: float
    p99_ms: float
    requests: int
    #: CPU time per request of the server's processes, and of the database server
    #: (PostgreSQL's processes; SQLite runs inside the server), in ms
    server_cpu_ms: float = 0.0
    database_cpu_ms: float = 0.0
    p50_ms: float = 0.0


#: the routes measured: ``GET /v2/transaction`` (one account's 100-row page) and
#: ``GET /v2/account`` (the login's accounts)
ROUTES = ("transaction", "account")

#: the servers measured, each on the same database and rows: bankhub, the bare driver
#: (``read_bare.py``), the bare driver with bankhub's minimum duties, the same-stack app
#: (``read_baseline.py``: Litestar + SQLAlchemy Core, no auth)
BANKHUB, BARE, DUTIES, STACK = "bankhub", "bare driver", "bare driver + duties", "same stack"
TARGETS = (BANKHUB, BARE, DUTIES, STACK)
#: which of them send bankhub's credentials
AUTHENTICATED = {BANKHUB: True, BARE: False, DUTIES: True, STACK: False}


def _path(account_id: int) -> str:
    return f"/v2/transaction?account_id={account_id}&per_page={PAGE}"


def _route_path(route: str, target: str, account_id: int, login_id: int) -> str:
    if route == "transaction":
        return _path(account_id)
    # without credentials the login is named in the query (bankhub ignores no such parameter:
    # it never sees one)
    return "/v2/account" if AUTHENTICATED[target] else f"/v2/account?login_id={login_id}"


def _lua(
    dataset: Dataset, *, authenticated: bool, route: str = "transaction", target: str = BANKHUB
) -> str:
    """A wrk script: pre-built requests, each thread starting at a different pair."""
    lines = []
    login_ids = dataset.login_ids or [0] * len(dataset.pairs)
    for (account_id, secret), login_id in zip(dataset.pairs, login_ids, strict=True):
        headers = (
            f'["client-id"]="{dataset.client_id}", '
            f'["service-secret"]="{dataset.service_secret}", '
            f'["login-secret"]="{secret}"'
            if authenticated
            else ""
        )
        path = _route_path(route, target, account_id, login_id)
        lines.append(f'  {{"{path}", {{{headers}}}}},')
    return (
        "local pairs = {\n" + "\n".join(lines) + "\n}\n"
        "local threads = 0\n"
        "function setup(thread)\n"
        "  thread:set('start', threads * 97)\n"
        "  threads = threads + 1\n"
        "end\n"
        "local requests = {}\n"
        "local i = 0\n"
        "function init(args)\n"
        "  for n, pair in ipairs(pairs) do\n"
        "    requests[n] = wrk.format('GET', pair[1], pair[2])\n"
        "  end\n"
        "  i = (start or 0) % #requests\n"
        "end\n"
        "function request()\n"
        "  i = i % #requests + 1\n"
        "  return requests[i]\n"
        "end\n"
    )


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match[1]) * _UNITS_MS[match[2]]


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or p99 is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if bad is not None:
        raise RuntimeError(f"{bad[1]} requests failed under load:\n{output}")
    return Load(float(rps[1]), _ms(p99[1]), int(total[1]), p50_ms=_ms(p50[1]) if p50 else 0.0)


def wrk(ctx: Context, port: int, script: Path, seconds: float) -> Load:
    if ctx.wrk is None:
        raise RuntimeError("no wrk")
    command = [
        ctx.wrk,
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    done = subprocess.run(  # noqa: S603 - our own arguments
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    )
    return parse_wrk(done.stdout)


def _requests(dataset: Dataset, route: str, target: str) -> list[tuple[str, dict[str, str]]]:
    """The requests a load rotates over, as (path, headers)."""
    base = {"client-id": dataset.client_id, "service-secret": dataset.service_secret}
    login_ids = dataset.login_ids or [0] * len(dataset.pairs)
    return [
        (
            _route_path(route, target, account_id, login_id),
            {**base, "login-secret": secret} if AUTHENTICATED[target] else {},
        )
        for (account_id, secret), login_id in zip(dataset.pairs, login_ids, strict=True)
    ]


async def _python_load(
    requests: list[tuple[str, dict[str, str]]], port: int, seconds: float
) -> Load:
    """wrk's stand-in when it is missing: keep-alive connections, closed loop, the same requests."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)

    async def user(client: httpx.AsyncClient, start: int) -> None:
        n = start
        while time.monotonic() < stop:
            path, headers = requests[n % len(requests)]
            n += 1
            began = time.perf_counter()
            response = await client.get(path, headers=headers)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code} under load: {response.text[:300]}")

    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:
        await asyncio.gather(*(user(client, 97 * k) for k in range(CONNECTIONS)))
    elapsed = time.monotonic() - started
    return Load(
        len(latencies) / elapsed,
        harness.percentile(latencies, 99) * 1000,
        len(latencies),
        p50_ms=harness.percentile(latencies, 50) * 1000,
    )


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    #: the wrk script of each route
    scripts: dict[str, Path]
    process: subprocess.Popen[bytes]
    #: "sqlite" or "postgresql"
    database: str
    #: the requests of each route (the Python load's, and the check's)
    requests: dict[str, list[tuple[str, dict[str, str]]]] = field(default_factory=dict)


def measure(ctx: Context, target: Target, route: str, seconds: float) -> Load:
    """One load of ``seconds``, with the CPU time it cost the server and the database."""
    database = ctx.postgres_pid if target.database == "postgresql" else None
    server_before = harness.cpu_seconds(target.process.pid)
    database_before = harness.cpu_seconds(database, reaped=True) if database else 0.0
    if ctx.wrk is not None:
        load = wrk(ctx, target.port, target.scripts[route], seconds)
    else:
        load = asyncio.run(_python_load(target.requests[route], target.port, seconds))
    requests = max(1, load.requests)
    server = harness.cpu_seconds(target.process.pid) - server_before
    used = harness.cpu_seconds(database, reaped=True) - database_before if database else 0.0
    return dataclasses.replace(
        load, server_cpu_ms=1000 * server / requests, database_cpu_ms=1000 * used / requests
    )


def _cpu(loads: list[Load], db: str) -> str:
    server = statistics.median(x.server_cpu_ms for x in loads)
    if db != "postgresql":
        return f"{server:.2f} ms (server and SQLite)"
    database = statistics.median(x.database_cpu_ms for x in loads)
    return f"{server:.2f} ms server + {database:.2f} ms PostgreSQL"


def check_by_hand(targets: dict[str, Target], dataset: Dataset) -> None:
    """One request of each route to each server: 200, a full answer, and the very same bytes as
    bankhub's (the same-stack app: the same JSON document), so no baseline can drift from
    what bankhub answers."""
    index = len(dataset.pairs) // 2
    for route in ROUTES:
        bodies: dict[str, httpx.Response] = {}
        for name, target in targets.items():
            path, headers = target.requests[route][index]
            response = httpx.get(f"http://127.0.0.1:{target.port}{path}", headers=headers)
            rows = len(response.json().get("data", [])) if response.status_code == 200 else 0
            if response.status_code != 200 or rows < (PAGE if route == "transaction" else 1):
                raise RuntimeError(f"{name} {path}: {response.status_code} {response.text[:500]}")
            bodies[name] = response
        ours = bodies[BANKHUB]
        for name, response in bodies.items():
            if name == STACK:
                same = response.json() == ours.json()
            else:
                same = response.content == ours.content
            if not same:
                raise RuntimeError(
                    f"{route}: bankhub and the {name} answer differently:\n"
                    f"{ours.content[:400]!r}\n{response.content[:400]!r}"
                )
    # The scoping is real: another login's secret does not read this account, in bankhub and
    # in the bare driver with duties.
    account_id = dataset.pairs[index][0]
    if account_id != dataset.pairs[0][0]:
        for name in (BANKHUB, DUTIES):
            target = targets[name]
            _, headers = target.requests["transaction"][index]
            other = {**headers, "login-secret": dataset.pairs[0][1]}
            refused = httpx.get(f"http://127.0.0.1:{target.port}{_path(account_id)}", headers=other)
            if refused.status_code == 200:
                raise RuntimeError(f"{name} served an account to a login that does not own it")


# --- profile ------------------------------------------------------------------------------------

PROFILE_RATE = 200  # samples per second and thread

#: where a sample's time goes: the innermost frame of a known package names it
_AREAS = (
    ("aiosqlite/", "aiosqlite + SQLite (driver thread)"),
    ("asyncpg/", "asyncpg"),
    ("sqlalchemy/orm/", "SQLAlchemy ORM"),
    ("sqlalchemy/ext/asyncio/", "SQLAlchemy asyncio session/engine"),
    ("sqlalchemy/", "SQLAlchemy Core (compile, execute, result, pool)"),
    ("litestar/", "Litestar"),
    ("msgspec/", "msgspec"),
    ("granian/", "granian (Python side)"),
    ("bench/", "baseline app code"),
)
_STDLIB_AREAS = (
    (("asyncio/", "selectors.py"), "asyncio event loop"),
    (("threading.py", "queue.py", "logging/"), "other threads (logging, waits)"),
    (("multiprocessing/",), "granian supervisor"),
)


def _area(frames: Sequence[str]) -> str:
    for frame in reversed(frames):
        path = frame[frame.rfind("(") + 1 : -1]
        if path.startswith("bankhub/"):
            return path.removesuffix(".py")
        for prefix, area in _AREAS:
            if path.startswith(prefix):
                return area
    leaf = frames[-1]
    for prefixes, area in _STDLIB_AREAS:
        if any(p in leaf for p in prefixes):
            return area
    return "other (stdlib)"


@dataclass
class Profile:
    """py-spy's folded stacks of one server under load, with the requests served meanwhile."""

    folded: str
    requests: float
    #: CPU time per request of each group of the server's threads (/proc, during the same
    #: load), in ms; and of the database server's processes (PostgreSQL)
    threads: dict[str, float] = field(default_factory=dict)
    database_cpu_ms: float = 0.0
    samples: int = field(default=0, init=False)
    stacks: list[tuple[list[str], int]] = field(default_factory=list, init=False)
    #: the samples of the worker's main thread (granian's event loop: all the Python work of a
    #: request but the driver's thread)
    loop_stacks: list[tuple[list[str], int]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for line in self.folded.splitlines():
            stack, _, count_text = line.rpartition(" ")
            parts = stack.split(";")
            frames = [f for f in parts if not f.startswith(("process ", "thread "))]
            if frames and count_text.isdigit():
                self.stacks.append((frames, int(count_text)))
                self.samples += int(count_text)
                worker = sum(f.startswith("process ") for f in parts) >= 2
                if worker and frames[0].startswith("_run_module_as_main "):
                    self.loop_stacks.append((frames, int(count_text)))

    def ms_per_request(self, samples: int) -> float:
        return samples / PROFILE_RATE * 1000 / max(1.0, self.requests)

    def areas(self) -> Counter[str]:
        areas: Counter[str] = Counter()
        for frames, count in self.stacks:
            areas[_area(frames)] += count
        return areas

    def own(self) -> Counter[str]:
        own: Counter[str] = Counter()
        for frames, count in self.stacks:
            own[frames[-1]] += count
        return own

    def inclusive(self, only: str = "") -> Counter[str]:
        inclusive: Counter[str] = Counter()
        for frames, count in self.stacks:
            for frame in set(frames):
                if only in frame:
                    inclusive[frame] += count
        return inclusive

    def tails(self, depth: int = 4) -> Counter[str]:
        tails: Counter[str] = Counter()
        for frames, count in self.stacks:
            tails[" ← ".join(reversed(frames[-depth:]))] += count
        return tails


#: where a request's time goes, by what bankhub is doing (the first rule that matches any
#: frame of a sample's stack): the read path's map (bench/README.md, "Where a read's time goes")
_DUTIES = (
    ("audit entry (recorded, written)", ("(bankhub/audit/", "account_data_read ")),
    (
        "auth look-ups (key and app, login and account)",
        ("principal (bankhub/api/auth.py)", "login_view_with_account ", "login_by_secret "),
    ),
    ("page query (transactions_of)", ("transactions_of ",)),
    ("opening sealed rows (opened_rows: AES-GCM, JSON of details)", ("opened_rows ",)),
    ("JSON encoding of the answer", ("encode_json ", "(msgspec/", "to_asgi_response ")),
    (
        "transaction begin/commit and session",
        ("_unit (bankhub/db/engine.py)", "transaction (bankhub/db/engine.py)"),
    ),
    ("aiosqlite's thread (SQLite's own work, the queue)", ("run (aiosqlite/core.py)",)),
)
#: the package of a sample's innermost frame, within a duty
_LAYERS = (
    ("sqlalchemy/", "SQLAlchemy"),
    ("aiosqlite/", "aiosqlite"),
    ("asyncpg/", "asyncpg"),
    ("litestar/", "Litestar"),
    ("asyncio/", "asyncio"),
)


def _duty(frames: Sequence[str]) -> str:
    for name, needles in _DUTIES:
        if any(needle in frame for frame in frames for needle in needles):
            return name
    leaf = frames[-1]
    if "litestar/" in leaf or "granian/" in leaf:
        return "framework (Litestar routing, middleware, DI; granian)"
    if "asyncio/" in leaf or "selectors.py" in leaf:
        return "event loop (callbacks, waking for I/O and thread results)"
    if "(bankhub/" in leaf:
        return "other bankhub code (hooks, request context, route)"
    return "other"


def _layer(frames: Sequence[str]) -> str:
    leaf = frames[-1]
    for prefix, name in _LAYERS:
        if f"({prefix}" in leaf or f"/{prefix}" in leaf:
            return name
    return "bankhub" if "(bankhub/" in leaf else "other"


def read_map(profile: Profile) -> list[str]:
    """A numbered breakdown of bankhub's CPU per request: the event loop's thread by duty (its
    CPU time from /proc, shared out by py-spy's samples of that thread, each split by the
    package that was running), then the other threads and the database from /proc.

    py-spy's samples are wall-clock: on a loaded machine a thread waiting for a CPU is sampled
    too, so its counts give shares, and /proc the microseconds."""
    duties: Counter[str] = Counter()
    layers: dict[str, Counter[str]] = {}
    for frames, count in profile.loop_stacks:
        duty = _duty(frames)
        duties[duty] += count
        layers.setdefault(duty, Counter())[_layer(frames)] += count
    loop_samples = max(1, sum(duties.values()))
    loop_ms = profile.threads.get(LOOP_THREAD, 0.0)
    total_ms = sum(profile.threads.values()) + profile.database_cpu_ms
    rows: list[tuple[float, str]] = []
    for duty, count in duties.items():
        us = 1000 * loop_ms * count / loop_samples
        split = ", ".join(
            f"{name} {1000 * loop_ms * k / loop_samples:.0f}"
            for name, k in layers[duty].most_common(4)
        )
        rows.append((us, f"event loop: {duty} ({split})"))
    for name, ms in profile.threads.items():
        if name != LOOP_THREAD:
            rows.append((1000 * ms, f"thread(s) {name}"))
    if profile.database_cpu_ms:
        rows.append((1000 * profile.database_cpu_ms, "PostgreSQL's processes"))
    rows.sort(reverse=True)
    lines = [f"{'µs/req':>8} {'share':>6}  where (of which: package running, µs)"]
    for n, (us, label) in enumerate(rows, start=1):
        share = 100 * us / (1000 * total_ms) if total_ms else 0.0
        lines.append(f"{us:8.0f} {share:5.1f}%  {n}. {label}")
    lines.append(f"{1000 * total_ms:8.0f} 100.0%  CPU per request (/proc)")
    return lines


def summarize(ours: Profile, bare: Profile, top: int = 25) -> str:
    """Thread time per request by area, bankhub against the baseline, then bankhub's hot spots."""

    def rows(profile: Profile, counter: Counter[str]) -> list[str]:
        return [
            f"{100 * n / max(1, profile.samples):6.1f}%  {profile.ms_per_request(n):7.3f} ms  "
            f"{frame}"
            for frame, n in counter.most_common(top)
        ]

    our_areas, bare_areas = ours.areas(), bare.areas()
    names = sorted(set(our_areas) | set(bare_areas), key=lambda a: -our_areas[a])
    comparison = [f"{'bankhub':>9} {'baseline':>9} {'extra':>9}  (ms of thread time per request)"]
    for name in [*names, "TOTAL"]:
        a = ours.ms_per_request(ours.samples if name == "TOTAL" else our_areas[name])
        b = bare.ms_per_request(bare.samples if name == "TOTAL" else bare_areas[name])
        comparison.append(f"{a:9.3f} {b:9.3f} {a - b:+9.3f}  {name}")
    return "\n".join(
        [
            f"bankhub: {ours.samples} samples over {ours.requests:.0f} requests; "
            f"baseline: {bare.samples} samples over {bare.requests:.0f} requests",
            "(all threads of each server; busy time only, idle waits excluded; an area is the "
            "innermost frame's package, bankhub modules by name)",
            "",
            "-- where the time goes, per request --",
            *comparison,
            "",
            "-- bankhub: the read path's map (CPU per request; the event loop by duty) --",
            *read_map(ours),
            "",
            "-- bankhub: its own functions, inclusive (event-loop time under them) --",
            *rows(ours, ours.inclusive("(bankhub/")),
            "",
            "-- bankhub: self time (the frame itself was running) --",
            *rows(ours, ours.own()),
            "",
            "-- bankhub: hottest stack tails (innermost first) --",
            *rows(ours, ours.tails()),
            "",
            "-- baseline: self time --",
            *rows(bare, bare.own()),
            "",
        ]
    )


def _py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    if found.exists():
        return str(found)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "py-spy"],
        capture_output=True,
        check=False,
        timeout=300,
    )
    if installed.returncode == 0 and found.exists():
        return str(found)
    return shutil.which("py-spy")


def record(ctx: Context, spy: str, target: Target, out: Path) -> Profile:
    """py-spy on a server (granian's supervisor and worker) during one load run."""
    seconds = 2 if ctx.tiny else PROFILE_SECONDS
    recorder = subprocess.Popen(  # noqa: S603 - our own arguments
        [
            spy,
            "record",
            "--pid",
            str(target.process.pid),
            "--subprocesses",
            "--nolineno",
            "--rate",
            str(PROFILE_RATE),
            "--duration",
            str(seconds),
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    time.sleep(0.5)
    before = thread_cpu(target.process.pid)
    load = measure(ctx, target, "transaction", seconds + 1)
    after = thread_cpu(target.process.pid)
    log, _ = recorder.communicate(timeout=seconds + 60)
    if recorder.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {log.decode()[-1000:]}")
    requests = max(1, load.requests)
    threads: dict[str, float] = {}
    for key, (group, used) in after.items():
        spent = 1000 * (used - before.get(key, (group, 0.0))[1]) / requests
        threads[group] = threads.get(group, 0.0) + spent
    return Profile(
        out.read_text(),
        load.rps * seconds,
        {k: v for k, v in threads.items() if v > 0.001},
        load.database_cpu_ms,
    )


#: the group of the worker process's main thread (granian runs the event loop there)
LOOP_THREAD = "event loop (the worker's main thread)"


def thread_cpu(pid: int) -> dict[tuple[int, int], tuple[str, float]]:
    """CPU seconds of every thread of ``pid``'s process tree, with its group: the worker's main
    thread, or the thread's name (aiosqlite's threads are Python threads named after the
    process's; granian's own are its runtime's)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[tuple[int, int], tuple[str, float]] = {}
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{current}/task/{task}/comm") as comm:
                    name = comm.read().strip()
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
            except OSError:
                continue
            main = int(task) == current and current != pid
            group = (
                LOOP_THREAD if main else f"'{name}'" + (" (supervisor)" if current == pid else "")
            )
            found[(current, int(task))] = (group, (int(fields[11]) + int(fields[12])) / tick)
    return found


def profile(ctx: Context, bankhub: Target, baseline: Target, db: str) -> str:
    """Profiles of bankhub and the baseline under load; a pointer to the summary."""
    spy = _py_spy()
    if spy is None:
        return "py-spy unavailable: no profile"
    ctx.results.mkdir(parents=True, exist_ok=True)
    summary = ctx.results / f"read-{db}-profile.txt"
    try:
        ours = record(ctx, spy, bankhub, ctx.results / f"read-{db}-bankhub.folded")
        bare = record(ctx, spy, baseline, ctx.results / f"read-{db}-baseline.folded")
    except (RuntimeError, subprocess.SubprocessError) as exc:
        summary.write_text(f"{exc}\n")
        return f"profiling failed, see {summary}"
    summary.write_text(
        f"GET /v2/transaction on {db}: py-spy at {PROFILE_RATE} Hz under the same wrk load "
        f"(raw stacks: read-{db}-bankhub.folded, read-{db}-baseline.folded)\n\n"
        + summarize(ours, bare)
    )
    return f"profile: {summary}"


# --- the benchmark ------------------------------------------------------------------------------


def _median(loads: list[Load], attribute: str) -> float:
    return float(statistics.median(getattr(x, attribute) for x in loads))


def _figures(loads: list[Load], db: str) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "rps": round(_median(loads, "rps"), 1),
        "runs": [round(x.rps, 1) for x in loads],
        "p50_ms": round(_median(loads, "p50_ms"), 2),
        "p99_ms": round(_median(loads, "p99_ms"), 2),
        "p99_runs": [round(x.p99_ms, 2) for x in loads],
        "server_cpu_ms": round(_median(loads, "server_cpu_ms"), 3),
    }
    if db == "postgresql":
        figures["database_cpu_ms"] = round(_median(loads, "database_cpu_ms"), 3)
    return figures


def route_results(
    db: str, route: str, loads: dict[str, list[Load]], seconds: float
) -> list[Result]:
    """bankhub against the bare driver (the target), with every baseline's figures and
    bankhub's ratio to each beside it."""
    figures = {name: _figures(runs, db) for name, runs in loads.items()}
    ours = figures[BANKHUB]
    for name, theirs in figures.items():
        if name != BANKHUB:
            theirs["bankhub_ratio"] = round(ours["rps"] / theirs["rps"], 3) if theirs["rps"] else 0
            theirs["bankhub_p99_ratio"] = (
                round(ours["p99_ms"] / theirs["p99_ms"], 3) if theirs["p99_ms"] else 0
            )
    path = "/v2/transaction (100-row page)" if route == "transaction" else "/v2/account"
    note = f"GET {path}, {CONNECTIONS} connections, {seconds:g} s per run; " + "; ".join(
        f"{name} {f['rps']:.0f} req/s (runs {', '.join(f'{r:.0f}' for r in f['runs'])}), "
        f"p50 {f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, CPU per request "
        f"{_cpu(loads[name], db)}"
        + ("" if name == BANKHUB else f", bankhub {f['bankhub_ratio']:.2f}×")
        for name, f in figures.items()
    )
    label = f"read {db} {route}"
    throughput = at_least(
        f"{label} throughput", ours["rps"], figures[BARE]["rps"], "req/s", 0.5, note
    )
    latency = at_most(f"{label} p99", ours["p99_ms"], figures[BARE]["p99_ms"], "ms", 2.0)
    return [
        dataclasses.replace(throughput, runs=ours["runs"], detail={"servers": figures}),
        dataclasses.replace(latency, runs=ours["p99_runs"]),
    ]


def bench_database(ctx: Context, db: str, urls: PgUrls, dataset: Dataset) -> list[Result]:
    """bankhub and its three baselines on one database, each route in alternating rounds."""
    seconds = 2.0 if ctx.tiny else 10.0
    warmup = 1.0 if ctx.tiny else 2.0
    data_dir = ctx.work / f"read-{db}-data"
    data_dir.mkdir(exist_ok=True)
    env = ctx.env(
        BANKHUB_DATA_DIR=str(data_dir),
        BANKHUB_DATABASE_URL=urls.runtime,
        BANKHUB_MIGRATION_DATABASE_URL=urls.owner,
        BANKHUB_EMBEDDED_WORKER="false",
        BANKHUB_CREATE_DEMO_APP="false",
    )
    bare_database = urls.runtime
    if db == "postgresql":
        bare_database = (
            make_url(urls.runtime)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
    else:
        bare_database = make_url(urls.runtime).database or ""
    bare_env = {**env, "READ_BARE_DATABASE": bare_database, "READ_BARE_APP_ID": str(dataset.app_id)}
    commands = {
        BANKHUB: ([ctx.python(), "-m", "bankhub", "serve", "--host", "127.0.0.1"], env),
        BARE: ([ctx.python(), "-m", "bench.read_bare"], {**bare_env, "READ_BARE_DUTIES": "0"}),
        DUTIES: ([ctx.python(), "-m", "bench.read_bare"], {**bare_env, "READ_BARE_DUTIES": "1"}),
        # the same-stack app reads as the owner: it chooses no tenant, so row-level security
        # would show it nothing (it is the old baseline, kept as it was)
        STACK: (
            [ctx.python(), "-m", "bench.read_baseline", "--host", "127.0.0.1"],
            {
                **env,
                "READ_BASELINE_DATABASE_URL": urls.owner,
                "READ_BASELINE_APP_ID": str(dataset.app_id),
            },
        ),
    }
    with contextlib.ExitStack() as stack:
        targets: dict[str, Target] = {}
        for name in TARGETS:
            command, target_env = commands[name]
            port = harness.free_port()
            if "--host" not in command:
                command = [*command, "--host", "127.0.0.1"]
            process = stack.enter_context(
                harness.server([*command, "--port", str(port)], target_env, port)
            )
            scripts = {}
            for route in ROUTES:
                script = ctx.work / f"read-{db}-{route}-{name.replace(' ', '-')}.lua"
                script.write_text(
                    _lua(dataset, authenticated=AUTHENTICATED[name], route=route, target=name)
                )
                scripts[route] = script
            requests = {route: _requests(dataset, route, name) for route in ROUTES}
            targets[name] = Target(name, port, scripts, process, db, requests)
        check_by_hand(targets, dataset)
        results: list[Result] = []
        for route in ROUTES:
            for target in targets.values():
                measure(ctx, target, route, warmup)
            loads: dict[str, list[Load]] = {name: [] for name in TARGETS}
            for _ in range(ctx.repeats):  # alternate, so drift hits every server alike
                for name, target in targets.items():
                    loads[name].append(measure(ctx, target, route, seconds))
            results += route_results(db, route, loads, seconds)
        if ctx.profile:
            pointer = profile(ctx, targets[BANKHUB], targets[BARE], db)
            results[0] = dataclasses.replace(results[0], note=f"{results[0].note}; {pointer}")
    return results


def run(ctx: Context) -> list[Result]:
    if ctx.wrk is None:
        ctx.notes.append(
            "read: wrk not found; the load came from a Python (httpx) load generator instead, "
            "which is slower than the servers it loads: the ratios understate the gap"
        )
    started = time.monotonic()
    rows = _make_rows(ctx)
    results: list[Result] = []

    began = time.monotonic()
    sqlite_url, dataset = load_sqlite(ctx, ctx.work / "read.sqlite3", rows)
    loaded = [f"SQLite {time.monotonic() - began:.1f} s"]
    results += bench_database(ctx, "sqlite", PgUrls(sqlite_url, sqlite_url), dataset)

    if ctx.postgres_url is None:
        ctx.notes.append("read: no PostgreSQL server; the PostgreSQL read benchmark did not run")
    else:
        began = time.monotonic()
        pg_urls, dataset = load_postgres(ctx, rows)
        loaded.append(f"PostgreSQL {time.monotonic() - began:.1f} s")
        results += bench_database(ctx, "postgresql", pg_urls, dataset)
    ctx.notes.append(
        f"read: data load ({dataset.transactions:,} transactions, "
        f"{dataset.accounts:,} accounts, migrations and bankhub's services for the app, "
        f"keys, customers and logins included): {', '.join(loaded)}; "
        f"whole read benchmark {time.monotonic() - started:.0f} s; bankhub and the bare "
        f"driver serve PostgreSQL as the runtime role ({RUNTIME_ROLE}, row-level security), "
        "the same-stack app as the owner"
    )
    return results
