"""Concurrency: 10,000 logins refreshed by the real background runner against a bank that answers
every call after 200 ms; wall time against the ideal (calls × latency ÷ concurrency), and the
runner process's peak memory.

The logins (each with one account and five transactions already stored, so a refresh matches
rows, touches them and adds one) are seeded straight into a fresh migrated SQLite database, due
now. A separate process (``bench._concurrency_worker``) builds the hub with the slow bench bank
and runs ``Runner.run_forever`` with ``BANKHUB_SYNC_CONCURRENCY`` = 200 until no login is due
and none is leased; it reports wall time, bank calls, outcomes and ``ru_maxrss``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bankhub.accounts.models import Account, Transaction
from bankhub.categories import categorize
from bankhub.clock import utcnow
from bankhub.customers.models import Customer
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.sync.engine import fingerprint
from bench._concurrency_bank import (
    LATENCY_SECONDS,
    SEEDED,
    SERVICE_ID,
    account_record,
    transaction_records,
)
from bench._ingest_profile import start_py_spy, stop_py_spy, summarize
from bench.harness import RESULTS, ROOT, Context, Result, absolute, at_most

#: 200 bank sessions in flight: the ideal (30,000 calls × 0.2 s ÷ 200 = 30 s) is then dominated
#: by waiting on the bank, and it is a plausible load for one process on one SQLite file; the
#: default of 8 would make the ideal 750 s
CONCURRENCY = 200
GIVE_UP_SECONDS = 900.0
RSS_LIMIT_MB = 300.0
PROFILE_SECONDS = 20
BATCH = 5_000


async def seed(url: str, logins: int) -> None:
    """An app, and ``logins`` customers with one due login, one account, five transactions."""
    now = utcnow()
    today = now.date()
    db = Database(url)
    try:
        async with db.transaction() as session:
            app = App(
                name="Concurrency bench",
                client_id=uuid.uuid4().hex,
                service_secret_hash=uuid.uuid4().hex,
                app_secret_hash=uuid.uuid4().hex,
                created_at=now,
            )
            session.add(app)
            await session.flush()
            app_id = app.id
        for start in range(1, logins + 1, BATCH):
            numbers = range(start, min(logins, start + BATCH - 1) + 1)
            customers: list[dict[str, Any]] = []
            login_rows: list[dict[str, Any]] = []
            account_rows: list[dict[str, Any]] = []
            transaction_rows: list[dict[str, Any]] = []
            for n in numbers:
                customer_id = str(uuid.UUID(int=n))
                customers.append(
                    {"id": customer_id, "app_id": app_id, "identifier": f"c{n}", "created_at": now}
                )
                login_rows.append(
                    {
                        "id": n,
                        "app_id": app_id,
                        "customer_id": customer_id,
                        "service_id": SERVICE_ID,
                        "secret_hash": uuid.uuid4().hex,
                        "status": "active",
                        "active": True,
                        "connector_state": {"n": n},
                        "last_refresh_at": now - timedelta(hours=6),
                        "last_attempt_at": now - timedelta(hours=6),
                        "next_sync_at": now - timedelta(minutes=1),
                        "unattended_count": 0,
                        "consent_notice_days": 0,
                        "created_at": now - timedelta(days=1),
                        "updated_at": now - timedelta(hours=6),
                    }
                )
                account = account_record(n)
                account_rows.append(
                    {
                        "id": n,
                        "app_id": app_id,
                        "login_id": n,
                        "bank_id": account.bank_id,
                        "name": account.name,
                        "type": str(account.type),
                        "currency": account.currency,
                        "balance": account.balance,
                        "available_balance": account.available_balance,
                        "created_at": now - timedelta(days=1),
                        "updated_at": now - timedelta(hours=6),
                    }
                )
                for record in transaction_records(n, today)[:SEEDED]:
                    transaction_rows.append(
                        {
                            "app_id": app_id,
                            "account_id": n,
                            "dedupe_key": f"b:{record.bank_id}",
                            "fingerprint": fingerprint(record, 0),
                            "original_id": record.bank_id,
                            "date": record.booking_date,
                            "value_date": record.value_date,
                            "amount": record.amount,
                            "currency": record.currency,
                            "description": record.description,
                            "merchant": record.merchant,
                            "category": categorize(
                                record.description, record.merchant, record.amount
                            ),
                            "status": str(record.status),
                            "fetched_at": now - timedelta(hours=6),
                            "created_at": now - timedelta(days=1),
                        }
                    )
            async with db.transaction() as session:
                await session.execute(insert(Customer), customers)
                await session.execute(insert(Login), login_rows)
                await session.execute(insert(Account), account_rows)
                await session.execute(insert(Transaction), transaction_rows)
    finally:
        await db.dispose()


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


def run(ctx: Context) -> list[Result]:
    started = time.monotonic()
    logins = ctx.size(10_000, 200)
    data_dir = ctx.work / "concurrency"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{data_dir / 'bankhub.sqlite3'}"
    migrate.upgrade(url)
    asyncio.run(seed(url, logins))
    seeded = time.monotonic() - started
    profile = None if ctx.tiny else RESULTS / "concurrency-profile.txt"
    if profile is not None:
        RESULTS.mkdir(parents=True, exist_ok=True)
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
            note="ru_maxrss of the runner process over the whole run (Python, bankhub, "
            f"{CONCURRENCY} syncs in flight)",
        ),
    ]
