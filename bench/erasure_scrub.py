"""What the clean-up after an erasure costs (docs/security.md, "Erasure").

    .venv/bin/python -m bench.erasure_scrub [ROWS_PER_ACCOUNT] [ERASED_PER_ACCOUNT]

On SQLite and on a throwaway PostgreSQL server: one login with 100 accounts × ROWS_PER_ACCOUNT
transactions stays, a second login with 100 × ERASED_PER_ACCOUNT is erased (bankhub's ingest
path for both, bench/ingest.py); prints how long the delete took and how long
``Database.scrub`` (the TRUNCATE checkpoint; the VACUUM (INDEX_CLEANUP ON) of the erased
tables, then the CHECKPOINT the server's superuser may run) took after it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bankhub.clock import utcnow
from bankhub.hub import Hub
from bankhub.lifecycle import erasure
from bankhub.logins.models import Login
from bankhub.partners.models import App
from bankhub.security.secrets import SecretHasher
from bench._fixture import new_logins
from bench._ingest_data import SERVICE_ID, build_dataset, catalogue, registry_for, service
from bench.ingest import SECRET, Databases, add_parents, migrated, settings_for


async def ingest(url: str, work: Path, login_id: int, per_account: int) -> None:
    dataset = build_dataset(100, per_account, utcnow().date())
    hub = Hub.build(
        settings_for(url, work), registry=registry_for(dataset), catalogue=catalogue(work)
    )
    try:
        await hub.ready()
        svc = service()
        result = await hub.engine.fetch(hub.engine.build(svc, {}), hub.engine.history_start(svc))
        async with hub.db.transaction() as session:
            login = await session.get(Login, login_id)
            assert login is not None  # noqa: S101
            await hub.engine.apply(session, login, result)
    finally:
        await hub.close()


async def measure(dbs: Databases, kind: str, work: Path, kept: int, erased: int) -> None:
    url = await migrated(dbs, kind)
    try:
        hub = Hub.build(settings_for(url, work), catalogue=catalogue(work))
        app_id, kept_login = await add_parents(hub.db, utcnow())
        async with hub.db.transaction() as session:
            app = await session.get(App, app_id)
            assert app is not None  # noqa: S101
            ((login, _),) = await new_logins(
                session, SecretHasher(SECRET.encode()), utcnow, app, SERVICE_ID, ["c2"]
            )
            erased_login = login.id
        await hub.close()
        await ingest(url, work, kept_login, kept)
        await ingest(url, work, erased_login, erased)
        hub = Hub.build(settings_for(url, work), catalogue=catalogue(work))
        try:
            started = time.perf_counter()
            async with hub.db.transaction() as session:
                await session.execute(text("DELETE FROM logins WHERE id = :i"), {"i": erased_login})
            deleted = time.perf_counter() - started
            started = time.perf_counter()
            done = await erasure.scrub(hub.db)
            scrubbed = time.perf_counter() - started
        finally:
            await hub.close()
        print(
            f"{kind}: {100 * kept:,} rows kept, {100 * erased:,} erased: delete {deleted:.2f} s, "
            f"clean-up {scrubbed:.2f} s ({'complete' if done.complete else done})",
            flush=True,
        )
    finally:
        await dbs.drop(url)


async def main(kept: int, erased: int) -> None:
    from tests.support.postgres import PostgresServer

    with tempfile.TemporaryDirectory(prefix="bankhub-erasure-") as tmp, PostgresServer() as pg:
        work = Path(tmp)
        dbs = Databases(work, pg.url)
        for kind in ("sqlite", "postgresql"):
            await measure(dbs, kind, work, kept, erased)


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(arguments + [2000, 10][len(arguments) :])))
