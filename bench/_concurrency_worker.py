"""The process the concurrency benchmark measures: bankhub's real runner, alone.

    BANKHUB_DATABASE_URL=... BANKHUB_SYNC_CONCURRENCY=200 python -m bench._concurrency_worker \
        --timeout 900

Builds the hub from the ``BANKHUB_*`` settings with the slow bench bank, runs
``Runner.run_forever`` until no login is due and none is leased (or the timeout), and prints one
line of JSON: wall time, bank calls, sync outcomes, peak RSS (``VmHWM``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from bankhub.config import Settings
from bankhub.hub import Hub
from bankhub.jobs.runner import Runner
from bankhub.logins.models import Login
from bankhub.sync.models import SyncRun
from bench._concurrency_bank import SlowBank, catalogue, registry

CHECK_EVERY = 0.25


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``). Not ``ru_maxrss``: that survives the exec
    that started this process, so it would report the parent's size at the fork (the bench's
    own process, which holds the ingest benchmark's million records when run after it)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


async def pending(hub: Hub) -> tuple[int, int]:
    """Logins due now, and logins leased by a sync."""
    now = hub.clock()
    async with hub.db.transaction() as session:
        due = (
            await session.execute(
                select(func.count(Login.id)).where(
                    Login.active.is_(True), Login.next_sync_at <= now
                )
            )
        ).scalar_one()
        leased = (
            await session.execute(
                select(func.count(Login.id)).where(Login.sync_lease_owner.is_not(None))
            )
        ).scalar_one()
    return int(due), int(leased)


async def main(give_up_seconds: float) -> dict[str, object]:
    settings = Settings()
    hub = Hub.build(settings, registry=registry(), catalogue=catalogue(Path(settings.data_dir)))
    try:
        runner = Runner(hub)
        stop = asyncio.Event()
        started = time.monotonic()
        task = asyncio.create_task(runner.run_forever(stop))
        timed_out = False
        due = leased = -1
        while True:
            await asyncio.sleep(CHECK_EVERY)
            due, leased = await pending(hub)
            if due == 0 and leased == 0:
                break
            if time.monotonic() - started > give_up_seconds:
                timed_out = True
                break
        wall = time.monotonic() - started
        stop.set()
        await task
        async with hub.db.transaction() as session:
            rows = await session.execute(
                select(SyncRun.outcome, func.count(SyncRun.id)).group_by(SyncRun.outcome)
            )
            outcomes = {str(outcome): int(count) for outcome, count in rows}
        return {
            "wall_seconds": wall,
            "calls": SlowBank.calls,
            "outcomes": outcomes,
            "concurrency": runner.syncs.slots,
            "timed_out": timed_out,
            "still_due": due,
            "still_leased": leased,
            "max_rss_mb": peak_rss_mb(),
        }
    finally:
        await hub.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.timeout))), flush=True)
    sys.exit(0)
