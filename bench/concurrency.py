"""Concurrency: 10,000 logins refreshed by the real background runner against a bank that answers
every call after 200 ms; wall time against the ideal (calls × latency ÷ concurrency), and the
runner process's peak memory.

The logins (each with one account and five transactions already stored, so a refresh matches
rows, touches them and adds one) are made in a fresh migrated SQLite database by bankhub's own
services and sync engine (as a connect six hours earlier leaves them), then made due now. A
separate process (``bench._concurrency_worker``) builds the hub with the slow bench bank and runs
``Runner.run_forever`` with ``BANKHUB_SYNC_CONCURRENCY`` = 200 until no login is due and none is
leased; it reports wall time, bank calls, outcomes and its peak RSS (``VmHWM``).

Scaled out (a figure of its own, when the run has a PostgreSQL server): the same logins seeded
into a fresh PostgreSQL database, refreshed by two ``bankhub worker`` processes
(``bench._concurrency_launch``: the CLI's own worker command, with the slow bank put in), each
with ``BANKHUB_SYNC_CONCURRENCY`` = 200 and the production leases; wall time from the first
worker's start until no login is due and none is leased, against the ideal of both workers'
sessions together (calls × latency ÷ 400). Each login must have exactly one recorded run: two
workers refreshing the same login would show as a second one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import func, select

from bankhub.clock import utcnow
from bankhub.config import Environment, Settings
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bankhub.sync.engine import FetchedAccount, FetchResult
from bankhub.sync.models import SyncRun
from bench._concurrency_bank import (
    LATENCY_SECONDS,
    SEEDED,
    SERVICE_ID,
    account_record,
    catalogue,
    registry,
    transaction_records,
)
from bench._fixture import new_app, new_logins
from bench._ingest_profile import start_py_spy, stop_py_spy, summarize
from bench.harness import ROOT, Context, Result, absolute, at_most

#: 200 bank sessions in flight: the ideal (30,000 calls × 0.2 s ÷ 200 = 30 s) is then dominated
#: by waiting on the bank, and it is a plausible load for one process on one SQLite file; the
#: default of 8 would make the ideal 750 s
CONCURRENCY = 200
GIVE_UP_SECONDS = 900.0
RSS_LIMIT_MB = 300.0
PROFILE_SECONDS = 20
BATCH = 1_000
#: ``bankhub worker`` processes of the scaled-out figure
WORKERS = 2
CHECK_EVERY = 0.25


async def seed(ctx: Context, url: str, data_dir: Path, logins: int) -> None:
    """An app, and ``logins`` customers each with one login due now, its account and five
    transactions, all made by bankhub's own code: the app, keys, customers and logins by their
    services, the account, transactions and the (encrypted) connector state by the sync
    engine's ``apply`` of a first fetch six hours ago, exactly as a connect leaves them."""
    now = utcnow()
    earlier = now - timedelta(hours=6)
    settings = Settings(
        env=Environment.TEST,
        data_dir=data_dir,
        database_url=url,
        secret_key=ctx.env()["BANKHUB_SECRET_KEY"],
    )
    hub = Hub.build(
        settings, clock=lambda: earlier, registry=registry(), catalogue=catalogue(data_dir)
    )
    try:
        await hub.ready()
        async with hub.db.transaction() as session:
            app, _ = await new_app(session, hub.hasher, hub.clock, "Concurrency bench")
        for start in range(1, logins + 1, BATCH):
            numbers = range(start, min(logins, start + BATCH - 1) + 1)
            async with hub.db.transaction() as session:
                app = await session.merge(app)
                made = await new_logins(
                    session, hub.hasher, hub.clock, app, SERVICE_ID, [f"c{n}" for n in numbers]
                )
                for n, (login, _) in zip(numbers, made, strict=True):
                    fetched = FetchedAccount(
                        account_record(n), transaction_records(n, earlier.date())[:SEEDED]
                    )
                    await hub.engine.apply(
                        session, login, FetchResult([fetched], None, {"n": n}, None)
                    )
                    login.last_attempt_at = earlier
                    login.next_sync_at = now - timedelta(minutes=1)
    finally:
        await hub.close()


def run_worker(ctx: Context, url: str, data_dir: Path, profile: Path | None) -> dict[str, Any]:
    """Run the runner process to the end; its JSON report (or the reason it failed)."""
    env = ctx.env(
        BANKHUB_DATABASE_URL=url,
        BANKHUB_DATA_DIR=str(data_dir),
        BANKHUB_SYNC_CONCURRENCY=str(CONCURRENCY),
        BANKHUB_CREATE_DEMO_APP="false",
    )
    command = [ctx.python(), "-m", "bench._concurrency_worker", "--timeout", str(GIVE_UP_SECONDS)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    spy = None
    if profile is not None:
        time.sleep(3.0)  # past start-up: sample the runner at work
        if process.poll() is None:
            spy = start_py_spy(process.pid, profile, duration=PROFILE_SECONDS)
    try:
        out, err = process.communicate(timeout=GIVE_UP_SECONDS + 120)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return {"error": f"the runner process did not finish in {GIVE_UP_SECONDS + 120:.0f} s"}
    finally:
        if spy is not None:
            stop_py_spy(spy)
    lines = out.decode(errors="replace").strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        return {"error": f"the runner process failed ({process.returncode}): {' | '.join(tail)}"}
    report: dict[str, Any] = json.loads(lines[-1])
    return report


async def _pending(db: Database) -> tuple[int, int]:
    """Logins due now, and logins leased by a sync."""
    now = utcnow()
    async with db.transaction() as session:
        due = await session.scalar(
            select(func.count(Login.id)).where(Login.active.is_(True), Login.next_sync_at <= now)
        )
        leased = await session.scalar(
            select(func.count(Login.id)).where(Login.sync_lease_owner.is_not(None))
        )
    return int(due or 0), int(leased or 0)


async def _runs(db: Database) -> tuple[dict[str, int], int]:
    """Sync outcomes, and the most runs any one login had."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(SyncRun.outcome, func.count(SyncRun.id)).group_by(SyncRun.outcome)
        )
        outcomes = {str(outcome): int(count) for outcome, count in rows}
        most = await session.scalar(
            select(func.count(SyncRun.id))
            .group_by(SyncRun.login_id)
            .order_by(func.count(SyncRun.id).desc())
            .limit(1)
        )
    return outcomes, int(most or 0)


async def _watch(url: str, started: float) -> tuple[float, bool, int, int]:
    """Wait until no login is due and none is leased: (wall seconds, timed out, due, leased)."""
    db = Database(url)
    try:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            due, leased = await _pending(db)
            if due == 0 and leased == 0:
                return time.monotonic() - started, False, due, leased
            if time.monotonic() - started > GIVE_UP_SECONDS:
                return time.monotonic() - started, True, due, leased
    finally:
        await db.dispose()


async def _summary(url: str) -> tuple[dict[str, int], int]:
    db = Database(url)
    try:
        return await _runs(db)
    finally:
        await db.dispose()


def _admin(postgres_url: str) -> str:
    return postgres_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _create_database(postgres_url: str) -> str:
    name = f"concurrency_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(_admin(postgres_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return postgres_url.rsplit("/", 1)[0] + "/" + name


async def _drop_database(postgres_url: str, url: str) -> None:
    conn = await asyncpg.connect(_admin(postgres_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def run_workers(ctx: Context, url: str, data_dir: Path) -> dict[str, Any]:
    """``WORKERS`` ``bankhub worker`` processes on ``url`` until every login is refreshed."""
    processes: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    try:
        for n in range(WORKERS):
            log_path, report = data_dir / f"worker-{n}.log", data_dir / f"worker-{n}.json"
            env = ctx.env(
                BANKHUB_DATABASE_URL=url,
                BANKHUB_DATA_DIR=str(data_dir),
                BANKHUB_SYNC_CONCURRENCY=str(CONCURRENCY),
                BANKHUB_CREATE_DEMO_APP="false",
                BENCH_REPORT=str(report),
            )
            with log_path.open("wb") as log:
                process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    [ctx.python(), "-m", "bench._concurrency_launch"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            processes.append((process, log_path, report))
        deadline = time.monotonic() + 120
        while b"running" not in processes[0][1].read_bytes():
            if processes[0][0].poll() is not None or time.monotonic() > deadline:
                tail = processes[0][1].read_text(errors="replace")[-1000:]
                return {"error": f"the first worker did not start: {tail}"}
            time.sleep(0.05)
        started = time.monotonic()
        wall, timed_out, due, leased = asyncio.run(_watch(url, started))
        for process, _, _ in processes:
            process.send_signal(signal.SIGTERM)
        reports: list[dict[str, Any]] = []
        for process, log_path, report in processes:
            process.wait(60)
            if process.returncode != 0 or not report.is_file():
                tail = log_path.read_text(errors="replace")[-1000:]
                return {"error": f"a worker failed ({process.returncode}): {tail}"}
            reports.append(json.loads(report.read_text()))
    finally:
        for process, _, _ in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    outcomes, most = asyncio.run(_summary(url))
    return {
        "wall_seconds": wall,
        "calls": sum(int(r["calls"]) for r in reports),
        "calls_per_worker": [int(r["calls"]) for r in reports],
        "outcomes": outcomes,
        "most_runs_of_a_login": most,
        "timed_out": timed_out,
        "still_due": due,
        "still_leased": leased,
        "max_rss_mb": max(float(r["max_rss_mb"]) for r in reports),
    }


def run_postgres(ctx: Context, logins: int) -> list[Result]:
    """The scaled-out figure: ``WORKERS`` workers on PostgreSQL (see the module's text)."""
    assert ctx.postgres_url is not None  # noqa: S101 - only called with a server
    name = "concurrency wall time, 2 workers, postgresql"
    rss_name = "concurrency peak RSS, 2 workers, postgresql"
    data_dir = ctx.work / "concurrency-postgresql"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = asyncio.run(_create_database(ctx.postgres_url))
    try:
        migrate.upgrade(url)
        asyncio.run(seed(ctx, url, data_dir, logins))
        report = run_workers(ctx, url, data_dir)
    finally:
        asyncio.run(_drop_database(ctx.postgres_url, url))
    if "error" in report:
        failed = f"{logins:,} logins: {report['error']}"
        return [
            at_most(name, GIVE_UP_SECONDS, 0.0, "s", 2.0, failed),
            absolute(rss_name, 0.0, "MB", RSS_LIMIT_MB, lower_is_better=True, note=failed),
        ]
    calls = int(report["calls"])
    ideal = calls * LATENCY_SECONDS / (CONCURRENCY * WORKERS)
    outcomes = report["outcomes"]
    note = (
        f"{logins:,} logins as above, on PostgreSQL, refreshed by {WORKERS} `bankhub worker` "
        f"processes (BANKHUB_SYNC_CONCURRENCY={CONCURRENCY} each, production leases); "
        f"{calls:,} bank calls (per worker {report['calls_per_worker']}); ideal = calls × "
        f"latency ÷ {CONCURRENCY * WORKERS}; sync outcomes {outcomes}; at most "
        f"{report['most_runs_of_a_login']} run(s) of any login"
    )
    if report["timed_out"]:
        note += (
            f"; GAVE UP after {GIVE_UP_SECONDS:.0f} s with {report['still_due']} logins "
            f"still due and {report['still_leased']} leased"
        )
    if int(outcomes.get("ok", 0)) != logins or report["most_runs_of_a_login"] != 1:
        note += f"; only {outcomes.get('ok', 0)} of {logins} refreshes succeeded exactly once"
    return [
        at_most(name, float(report["wall_seconds"]), ideal, "s", 2.0, note),
        absolute(
            rss_name,
            float(report["max_rss_mb"]),
            "MB",
            RSS_LIMIT_MB,
            lower_is_better=True,
            note=f"the larger peak RSS (VmHWM) of the {WORKERS} worker processes",
        ),
    ]


def run(ctx: Context) -> list[Result]:
    started = time.monotonic()
    logins = ctx.logins or ctx.size(10_000, 200)
    if logins < 10_000 and not ctx.tiny:
        ctx.partial["concurrency"] = f"{logins:,} logins (--logins), not 10,000"
    data_dir = ctx.work / "concurrency"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{data_dir / 'bankhub.sqlite3'}"
    migrate.upgrade(url)
    asyncio.run(seed(ctx, url, data_dir, logins))
    seeded = time.monotonic() - started
    profile = ctx.results / "concurrency-profile.txt" if ctx.profile else None
    if profile is not None:
        ctx.results.mkdir(parents=True, exist_ok=True)
        profile.unlink(missing_ok=True)
    report = run_worker(ctx, url, data_dir, profile)
    if "error" in report:
        failed = f"{logins:,} logins: {report['error']}"
        return [
            at_most("concurrency wall time", GIVE_UP_SECONDS, 0.0, "s", 2.0, failed),
            absolute(
                "concurrency peak RSS", 0.0, "MB", RSS_LIMIT_MB, lower_is_better=True, note=failed
            ),
        ]
    calls = int(report["calls"])
    wall = float(report["wall_seconds"])
    ideal = calls * LATENCY_SECONDS / CONCURRENCY
    outcomes = report["outcomes"]
    ok = int(outcomes.get("ok", 0))
    note = (
        f"{logins:,} logins (1 account, {SEEDED} stored transactions each; each refresh matches "
        f"them and adds 1), {calls:,} bank calls of {LATENCY_SECONDS * 1000:.0f} ms "
        f"(open_session, fetch_accounts, fetch_transactions), BANKHUB_SYNC_CONCURRENCY="
        f"{CONCURRENCY}, SQLite, the real Runner.run_forever in its own process; "
        f"ideal = calls × latency ÷ concurrency; sync outcomes {outcomes}"
    )
    if report.get("timed_out"):
        note += (
            f"; GAVE UP after {GIVE_UP_SECONDS:.0f} s with {report['still_due']} logins "
            f"still due and {report['still_leased']} leased"
        )
    if ok != logins:
        note += f"; only {ok} of {logins} refreshes succeeded"
    wall_result = at_most("concurrency wall time", wall, ideal, "s", 2.0, note)
    if profile is not None:
        if not wall_result.met and profile.is_file():
            wall_result = at_most(
                "concurrency wall time",
                wall,
                ideal,
                "s",
                2.0,
                note + f"; {PROFILE_SECONDS} s of the run under " + summarize(profile),
            )
        elif profile.is_file():
            profile.unlink()
    rss = float(report["max_rss_mb"])
    scaled_out = run_postgres(ctx, logins) if ctx.postgres_url else []
    ctx.notes.append(
        f"concurrency: seeding {logins:,} logins took {seeded:.0f} s (untimed); the benchmark "
        f"took {time.monotonic() - started:.0f} s"
    )
    return [
        wall_result,
        absolute(
            "concurrency peak RSS",
            rss,
            "MB",
            RSS_LIMIT_MB,
            lower_is_better=True,
            note="peak RSS (VmHWM) of the runner process over the whole run (Python, bankhub, "
            f"{CONCURRENCY} syncs in flight)",
        ),
        *scaled_out,
    ]
