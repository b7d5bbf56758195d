"""What checking signatures costs an unsigned request of an app without keys, in µs.

python -m bench.signatures [--requests N]

One process, SQLite, the application served in-process (no network, so the difference is
not lost in a socket's noise): ``GET /v2/app`` with the app's service key, in rounds that
alternate the signature check on and off (``app.state.signatures``), and the check itself
alone once the app's absence of keys is cached. Then the cost of a request signed with
Ed25519 (verification, digest, nonce) for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy import select

from bankhub.app import create_app
from bankhub.config import Environment, Settings
from bankhub.db import migrate, tenancy
from bankhub.hub import Hub
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.signatures.guard import SignatureGuard
from bankhub.signatures.verify import SignedRequest

BASE = "http://bench.local"


async def _rounds(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        answer = await client.get("/v2/app", headers=headers)
        assert answer.status_code == 200, answer.text  # noqa: S101
    return (time.perf_counter() - start) / n * 1e6


async def main(requests: int, tmp: str) -> None:
    url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
    settings = Settings(
        env=Environment.TEST,
        data_dir=Path(tmp),
        database_url=url,
        secret_key=secrets.token_urlsafe(32),
        public_url=BASE,
    )
    hub = Hub.build(settings)
    await hub.ready()
    with tenancy.everything():
        async with hub.db.transaction() as session:
            issued = (await partners.create_app(session, hub.hasher, hub.clock, "b")).as_dict()
    app = create_app(hub)
    guard = app.state.signatures
    assert isinstance(guard, SignatureGuard)  # noqa: S101
    headers = {"client-id": issued["client_id"], "service-secret": issued["service_secret"]}
    transport = httpx.ASGITransport(app=cast(Any, app))
    on: list[float] = []
    off: list[float] = []
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        await _rounds(client, headers, 50)  # warm-up
        for _ in range(5):
            app.state.signatures = None
            off.append(await _rounds(client, headers, requests))
            app.state.signatures = guard
            on.append(await _rounds(client, headers, requests))
        with tenancy.everything():
            async with hub.db.transaction() as session:
                app_id = int(
                    await session.scalar(select(App.id).where(App.client_id == issued["client_id"]))
                    or 0
                )
        empty: dict[str, list[str]] = {}
        n = 100_000
        async with hub.db.transaction() as session:
            await guard.check(session, app_id, empty, _never)
            start = time.perf_counter()
            for _ in range(n):
                await guard.check(session, app_id, empty, _never)
            alone = (time.perf_counter() - start) / n * 1e6
    await hub.close()
    print(f"GET /v2/app, unsigned, app without keys, {requests} requests x 5 rounds each")
    print(f"  signature check off: median {statistics.median(off):8.1f} µs/request")
    print(f"  signature check on:  median {statistics.median(on):8.1f} µs/request")
    print(f"  the check alone (cached absence of keys): {alone:.2f} µs/request")
    print(f"  measured {datetime.now(UTC).isoformat(timespec='seconds')}")


async def _never() -> SignedRequest:
    raise AssertionError("an unsigned request never builds the signed request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.signatures")
    parser.add_argument("--requests", type=int, default=400)
    with tempfile.TemporaryDirectory() as directory:
        migrate.upgrade(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
        asyncio.run(main(parser.parse_args().requests, directory))
