"""Ingest: a first sync of 1,000,000 transactions through bankhub's whole pipeline, against a raw
bulk insert of the same rows into the same schema.

Timed bankhub path: ``SyncEngine.fetch`` + ``SyncEngine.apply`` in one unit of work on a login in
a fresh migrated database, exactly what the first fetch after a connect does (connector records
→ dedupe → categorize → upsert, plus the change log and the event). The connector serves
100 accounts × 10,000 prepared ``TransactionRecord`` s instantly.

Baseline: the very rows bankhub stores (computed up front with bankhub's own fingerprint and
categorizer) inserted into a fresh migrated database: SQLite ``executemany`` with the sync
``sqlite3`` module in one transaction (bankhub's pragmas), PostgreSQL ``COPY``
(asyncpg ``copy_records_to_table``).
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import sqlite3
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, func, select

from bankhub.accounts.details import RowKeys
from bankhub.accounts.models import Account, Transaction
from bankhub.clock import utcnow
from bankhub.config import Environment, Settings
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bankhub.security.crypto import Box
from bankhub.security.secrets import SecretHasher
from bench._fixture import new_app, new_logins
from bench._ingest_data import (
    COLUMNS,
    SERVICE_ID,
    Dataset,
    build_dataset,
    catalogue,
    registry_for,
    service,
    stored_rows,
)
from bench._ingest_profile import profile_ingest, profile_path
from bench.harness import Context, Result, at_least

ACCOUNTS = 100
SECRET = "bench-pepper-" + "i" * 40
#: the whole benchmark should stay within this on 2 cores; repeats stop before passing it
BUDGET_SECONDS = 330.0
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measure:
    bankhub: list[float]
    baseline: list[float]
    rss_peak_mb: list[float]
    rss_before_mb: list[float]


# --- memory ---------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


class RssSampler:
    """The highest resident set size seen while the block runs (sampled every 20 ms)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self.peak = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


# --- databases ----------------------------------------------------------------------------------


class Databases:
    """Fresh databases, one per measurement: SQLite files in the work dir, PostgreSQL ones on
    the harness's server."""

    def __init__(self, work: Path, postgres_url: str | None) -> None:
        self.work = work
        self.postgres_url = postgres_url

    def admin_dsn(self) -> str:
        assert self.postgres_url is not None  # noqa: S101 - only called for postgres
        return self.postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)

    async def create(self, kind: str) -> str:
        name = f"ingest_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.work / (name + '.sqlite3')}"
        conn = await asyncpg.connect(self.admin_dsn())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        assert self.postgres_url is not None  # noqa: S101
        return self.postgres_url.rsplit("/", 1)[0] + "/" + name

    async def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        if url.startswith("sqlite"):
            base = url.split(":///", 1)[1]
            for suffix in ("", "-wal", "-shm"):
                await asyncio.to_thread(Path(base + suffix).unlink, missing_ok=True)
            return
        conn = await asyncpg.connect(self.admin_dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def migrated(dbs: Databases, kind: str) -> str:
    url = await dbs.create(kind)
    await asyncio.to_thread(migrate.upgrade, url)
    return url


async def add_parents(db: Database, now: datetime) -> tuple[int, int]:
    """An app, a customer and an active login, made by bankhub's services: ``(app_id,
    login_id)``."""
    hasher = SecretHasher(SECRET.encode())
    async with db.transaction() as session:
        app, _ = await new_app(session, hasher, lambda: now, "Ingest bench")
        ((login, _),) = await new_logins(session, hasher, lambda: now, app, SERVICE_ID, ["c1"])
        return app.id, login.id


async def count_rows(db: Database) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count(Transaction.id)))).scalar_one())


# --- bankhub --------------------------------------------------------------------------------------


def settings_for(url: str, work: Path) -> Settings:
    return Settings(env=Environment.TEST, data_dir=work, database_url=url, secret_key=SECRET)


async def bankhub_once(
    dbs: Databases,
    kind: str,
    dataset: Dataset,
    work: Path,
    statements: Counter[str] | None = None,
) -> tuple[float, float, float]:
    """Seconds for the first fetch + apply, peak RSS during it and RSS before it (MB).

    With ``statements``, counts the SQL statements sent to the database by their first words.
    """
    url = await migrated(dbs, kind)
    hub = Hub.build(
        settings_for(url, work), registry=registry_for(dataset), catalogue=catalogue(work)
    )
    if statements is not None:
        counter = statements

        def count(_conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
            counter[" ".join(sql.split()[:3])] += 1

        event.listen(hub.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await hub.ready()  # the data keyring: account details are sealed under it
        _, login_id = await add_parents(hub.db, utcnow())
        svc = service()
        gc.collect()
        with RssSampler() as sampler:
            before = sampler.peak
            started = time.perf_counter()
            run = hub.engine.build(svc, {})
            result = await hub.engine.fetch(run, hub.engine.history_start(svc))
            async with hub.db.transaction() as session:
                login = await session.get(Login, login_id)
                assert login is not None  # noqa: S101
                summary = await hub.engine.apply(session, login, result)
            elapsed = time.perf_counter() - started
            del result
        stored = await count_rows(hub.db)
        if summary.inserted != dataset.rows or stored != dataset.rows:
            raise RuntimeError(f"bankhub stored {stored} of {dataset.rows} rows")
        return elapsed, sampler.peak, before
    finally:
        await hub.close()
        await dbs.drop(url)


# --- the baseline ---------------------------------------------------------------------------------


async def baseline_parents(url: str, dataset: Dataset, now: datetime) -> tuple[int, dict[str, int]]:
    """The parents and the 100 accounts the baseline's rows point at."""
    db = Database(url)
    try:
        app_id, login_id = await add_parents(db, now)
        async with db.transaction() as session:
            accounts = [
                Account(
                    app_id=app_id,
                    login_id=login_id,
                    bank_id=record.bank_id,
                    name=record.name,
                    type=str(record.type),
                    currency=record.currency,
                    balance=record.balance,
                    created_at=now,
                    updated_at=now,
                )
                for record in dataset.accounts
            ]
            session.add_all(accounts)
            await session.flush()
            return app_id, {a.bank_id or "": a.id for a in accounts}
    finally:
        await db.dispose()


def sqlite_copy(path: str, rows: list[tuple[Any, ...]]) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
            "secure_delete=ON",
        ):
            conn.execute(f"PRAGMA {pragma}")
        sql = (
            f"INSERT INTO transactions ({', '.join(COLUMNS)}) "  # noqa: S608 - constant names
            f"VALUES ({', '.join('?' for _ in COLUMNS)})"
        )
        started = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        conn.close()


async def postgres_copy(dsn: str, rows: list[tuple[Any, ...]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("transactions", records=rows, columns=COLUMNS)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def baseline_once(dbs: Databases, kind: str, dataset: Dataset) -> float:
    url = await migrated(dbs, kind)
    try:
        now = datetime.now(UTC)
        app_id, account_ids = await baseline_parents(url, dataset, now)
        keys = RowKeys(SecretHasher(SECRET.encode()))
        rows = stored_rows(
            dataset, app_id, account_ids, now, kind, Box.from_secret(SECRET.encode()), keys
        )
        gc.collect()
        if kind == "sqlite":
            elapsed = await asyncio.to_thread(sqlite_copy, url.split(":///", 1)[1], rows)
        else:
            elapsed = await postgres_copy(url.replace("+asyncpg", "", 1), rows)
        del rows
        db = Database(url)
        try:
            stored = await count_rows(db)
        finally:
            await db.dispose()
        if stored != dataset.rows:
            raise RuntimeError(f"the baseline stored {stored} of {dataset.rows} rows")
        return elapsed
    finally:
        await dbs.drop(url)


# --- the benchmark ------------------------------------------------------------------------------


def run(ctx: Context) -> list[Result]:
    started = time.monotonic()
    per_account = ctx.size(10_000, 100)
    built = time.perf_counter()
    dataset = build_dataset(ACCOUNTS, per_account, utcnow().date())
    build_seconds = time.perf_counter() - built
    # The prepared records are the fixture, not bankhub's: keep the collector from walking them.
    gc.collect()
    gc.freeze()
    dbs = Databases(ctx.work, ctx.postgres_url)
    kinds = ["sqlite"] + (["postgresql"] if ctx.postgres_url else [])
    measures = {kind: Measure([], [], [], []) for kind in kinds}
    done = 0
    try:
        for repeat in range(ctx.repeats):
            for kind in kinds:
                m = measures[kind]
                order = ("baseline", "bankhub") if repeat % 2 == 0 else ("bankhub", "baseline")
                for which in order:
                    if which == "baseline":
                        m.baseline.append(asyncio.run(baseline_once(dbs, kind, dataset)))
                    else:
                        record_bankhub(m, asyncio.run(bankhub_once(dbs, kind, dataset, ctx.work)))
            done += 1
            spent = time.monotonic() - started
            if not ctx.tiny and spent / done * (done + 1) > BUDGET_SECONDS:
                break
        if done < ctx.repeats:
            ctx.partial["ingest"] = (
                f"{done} run(s) of each, not {ctx.repeats}: the ~6 min budget on 2 cores"
            )
        results: list[Result] = []
        for kind in kinds:
            m = measures[kind]
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            bankhub_s, baseline_s = statistics.median(m.bankhub), statistics.median(m.baseline)
            note = (
                f"{dataset.rows:,} rows ({ACCOUNTS} accounts × {per_account:,}); "
                f"median of {done} run(s) of each"
                + ("" if done == ctx.repeats else f" (not {ctx.repeats}: ~6 min budget on 2 cores)")
                + f": bankhub {bankhub_s:.1f} s, baseline {baseline_s:.1f} s "
                f"({'executemany, sqlite3' if kind == 'sqlite' else 'COPY, asyncpg'}); "
                f"process RSS during bankhub's ingest: peak {max(m.rss_peak_mb):.0f} MB "
                f"(of which {min(m.rss_before_mb):.0f} MB before it started: the prepared "
                f"records), ru_maxrss {maxrss:.0f} MB; bankhub seals each row's details and each "
                "account's IBAN as it stores them (the baseline inserts the same sealed rows, "
                "made before its clock starts)"
            )
            result = at_least(
                f"ingest {kind}",
                dataset.rows / bankhub_s,
                dataset.rows / baseline_s,
                "rows/s",
                0.50,
                note,
            )
            if not result.met and ctx.profile:
                output = profile_path(ctx.results, f"ingest-{kind}")
                summary = asyncio.run(profile(dbs, kind, dataset, ctx.work, output))
                result = at_least(
                    result.name,
                    dataset.rows / bankhub_s,
                    dataset.rows / baseline_s,
                    "rows/s",
                    0.50,
                    note + "; " + summary,
                )
            results.append(result)
        ctx.notes.append(
            f"ingest: building the {dataset.rows:,} records took {build_seconds:.1f} s (untimed); "
            f"the benchmark took {time.monotonic() - started:.0f} s"
        )
        return results
    finally:
        gc.unfreeze()
        del dataset
        gc.collect()


def record_bankhub(m: Measure, measured: tuple[float, float, float]) -> None:
    elapsed, peak, before = measured
    m.bankhub.append(elapsed)
    m.rss_peak_mb.append(peak)
    m.rss_before_mb.append(before)


PROFILE_ACCOUNTS = 5


async def profile(dbs: Databases, kind: str, dataset: Dataset, work: Path, output: Path) -> str:
    """A profiled rerun on the first few accounts (same 10,000 rows per account), with the
    statements it sent counted: what the time goes to, bounded to about a minute."""
    part = Dataset(
        dataset.accounts[:PROFILE_ACCOUNTS],
        {
            a.bank_id or "": dataset.transactions[a.bank_id or ""]
            for a in dataset.accounts[:PROFILE_ACCOUNTS]
        },
    )
    statements: Counter[str] = Counter()
    summary = await profile_ingest(partial(bankhub_once, dbs, kind, part, work, statements), output)
    sent = ", ".join(f"{n:,} × {sql}" for sql, n in statements.most_common(3))
    return f"profiled rerun of {part.rows:,} rows: statements sent: {sent}; {summary}"
