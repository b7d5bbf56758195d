"""What ``PRAGMA secure_delete=ON`` costs bankhub on SQLite (docs/security.md, "Erasure").

    .venv/bin/python -m bench.secure_delete [PER_ACCOUNT] [REPEATS]    # defaults 2000 and 3

For each repeat, ON and OFF in turns (the order alternates): a fresh database, bankhub's own
ingest path (bench/ingest.py: fetch → dedupe → categorize → upsert of 100 accounts ×
PER_ACCOUNT rows), then the erasure's cascade delete of those rows (the login), then the
checkpoint an erasure runs before it answers. Prints each run and the medians.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

import bankhub.db.engine as engine
from bankhub.clock import utcnow
from bankhub.hub import Hub
from bankhub.logins.models import Login
from bench._ingest_data import Dataset, build_dataset, catalogue, registry_for, service
from bench.ingest import Databases, add_parents, migrated, settings_for

MODE = {"secure_delete": "ON"}
_bankhub_pragmas = engine._sqlite_pragmas


def _pragmas(connection: Any, record: Any) -> None:
    _bankhub_pragmas(connection, record)
    cursor = connection.cursor()
    cursor.execute(f"PRAGMA secure_delete={MODE['secure_delete']}")
    cursor.close()


async def once(work: Path, dataset: Dataset) -> tuple[float, float, float]:
    """Seconds to ingest, to delete, and to checkpoint."""
    dbs = Databases(work, None)
    url = await migrated(dbs, "sqlite")
    hub = Hub.build(
        settings_for(url, work), registry=registry_for(dataset), catalogue=catalogue(work)
    )
    try:
        await hub.ready()
        _, login_id = await add_parents(hub.db, utcnow())
        svc = service()
        started = time.perf_counter()
        run = hub.engine.build(svc, {})
        result = await hub.engine.fetch(run, hub.engine.history_start(svc))
        async with hub.db.transaction() as session:
            login = await session.get(Login, login_id)
            assert login is not None  # noqa: S101
            await hub.engine.apply(session, login, result)
        ingest = time.perf_counter() - started
        started = time.perf_counter()
        async with hub.db.transaction() as session:
            await session.execute(text("DELETE FROM logins WHERE id = :i"), {"i": login_id})
        delete = time.perf_counter() - started
        started = time.perf_counter()
        await hub.db.scrub(())
        return ingest, delete, time.perf_counter() - started
    finally:
        await hub.close()
        await dbs.drop(url)


async def main(per_account: int, repeats: int) -> None:
    engine._sqlite_pragmas = _pragmas  # type: ignore[assignment]
    dataset = build_dataset(100, per_account, utcnow().date())
    gc.collect()
    gc.freeze()
    runs: dict[str, list[tuple[float, float, float]]] = {"ON": [], "OFF": []}
    with tempfile.TemporaryDirectory(prefix="bankhub-secure-delete-") as tmp:
        for repeat in range(repeats):
            for mode in ("ON", "OFF") if repeat % 2 == 0 else ("OFF", "ON"):
                MODE["secure_delete"] = mode
                runs[mode].append(await once(Path(tmp), dataset))
                print(mode, " ".join(f"{v:.2f}s" for v in runs[mode][-1]), flush=True)
    for mode, measured in runs.items():
        ingest, delete, checkpoint = (statistics.median(m[i] for m in measured) for i in range(3))
        print(
            f"secure_delete={mode}: ingest {dataset.rows / ingest:,.0f} rows/s, "
            f"delete {dataset.rows / delete:,.0f} rows/s, checkpoint {checkpoint:.2f} s "
            f"({dataset.rows:,} rows, median of {len(measured)})"
        )


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [2000, 3][len(arguments) :])))
