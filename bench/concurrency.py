"""Concurrency: 10,000 logins refreshed by the real background runner against a bank that answers
every call after 200 ms; wall time against the ideal (calls × latency ÷ concurrency), and the
runner process's peak memory.

The logins (each with one account and five transactions already stored, so a refresh matches
rows, touches them and adds one) are made in a fresh migrated SQLite database by bankhub's own
services and sync engine (as a connect six hours earlier leaves them), then made due now. A
separate process (``bench._concurrency_worker``) builds the hub with the slow bench bank and runs
``Runner.run_forever`` with ``BANKHUB_SYNC_CONCURRENCY`` = 200 until no login is due and none is
leased; it reports wall time, bank calls, outcomes and its peak RSS (``VmHWM``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bankhub.clock import utcnow
from bankhub.config import Environment, Settings
from bankhub.db import migrate
from bankhub.hub import Hub
from bankhub.sync.engine import FetchedAccount, FetchResult
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
    profile = None if ctx.tiny else ctx.results / "concurrency-profile.txt"
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
    ]
