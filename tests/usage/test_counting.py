"""API calls are counted through the real app: per app, UTC hour, outcome class and route group."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from bankhub.app import create_app
from bankhub.db import migrate
from bankhub.db.engine import Database
from bankhub.hub import Hub
from bankhub.partners import services as partners
from bankhub.partners.models import App
from bankhub.usage import counters, series, store
from bankhub.usage.models import UsageCount
from tests.conftest import BASE_URL, FakeClock, Harness, make_settings
from tests.support.asgi import asgi_transport

Expected = Counter[tuple[int | None, str, str]]


async def app_id(h: Harness, client_id: str) -> int:
    async with h.hub.db.transaction() as session:
        found = await session.execute(select(App.id).where(App.client_id == client_id))
        return int(found.scalar_one())


async def stored(db: Database, metric: str = counters.API) -> Expected:
    """Every stored count of ``metric``: (app id, outcome, detail) → total, over all hours."""
    async with db.transaction() as session:
        rows = await session.execute(
            select(
                UsageCount.app_id, UsageCount.outcome, UsageCount.detail, UsageCount.total
            ).where(UsageCount.metric == metric)
        )
        totals: Expected = Counter()
        for app, outcome, detail, total in rows.tuples():
            totals[(app, outcome, detail)] += int(total)
        return totals


def creds_headers(creds: dict[str, str]) -> dict[str, str]:
    return {
        "client-id": creds["client_id"],
        "service-secret": creds["service_secret"],
        "content-type": "application/json",
    }


def note(expected: Expected, app: int | None, response: httpx.Response, group: str) -> None:
    expected[(app, f"{response.status_code // 100}xx", group)] += 1


async def test_calls_are_counted_per_app_outcome_and_group(harness: Harness) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    other_creds = await h.new_app("other")
    other = await app_id(h, other_creds["client_id"])
    expected: Expected = Counter()

    for _ in range(3):
        response = await h.client.get("/v2/app", headers=h.headers())
        assert response.status_code == 200
        note(expected, first, response, "app")
    for n in range(2):
        response = await h.client.post(
            "/v2/customer", json={"identifier": f"c-{n}"}, headers=h.headers()
        )
        assert response.status_code == 200
        note(expected, first, response, "customers")
    response = await h.client.get("/v2/account", headers=h.headers())  # no login-secret
    assert response.status_code == 400
    note(expected, first, response, "accounts")
    response = await h.client.put(
        "/v2/app/retention", json={"retention_hours": "soon"}, headers=h.headers()
    )
    assert response.status_code == 400
    # the body is refused before the handler authenticates anyone: no app to count it for
    note(expected, None, response, "app")
    # OAuth: the token request belongs to the client that authenticated, then the bearer call
    response = await h.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(h.creds["client_id"], h.creds["service_secret"]),
    )
    assert response.status_code == 200
    note(expected, first, response, "oauth")
    bearer = {"authorization": f"Bearer {response.json()['access_token']}"}
    response = await h.client.get("/v2/event", headers=bearer)
    assert response.status_code == 200
    note(expected, first, response, "events")

    for _ in range(2):
        response = await h.client.get("/v2/app", headers=creds_headers(other_creds))
        assert response.status_code == 200
        note(expected, other, response, "app")

    # refused credentials belong to no app, even when they name one
    for secret in ("wrong", other_creds["app_secret"]):
        response = await h.client.get(
            "/v2/app", headers={"client-id": h.creds["client_id"], "service-secret": secret}
        )
        assert response.status_code >= 400
        note(expected, None, response, "app")

    # not API calls: the health check, the connect page's stylesheet, the docs
    assert (await h.client.get("/healthz")).status_code == 200
    assert (await h.client.get("/v2/connect/static/connect.css")).status_code == 200
    await h.client.get("/openapi.json")

    assert len(h.hub.usage) > 0
    assert await stored(h.hub.db) == Counter()  # nothing is written on the request path
    await store.flush(h.hub.db, h.hub.usage)
    assert len(h.hub.usage) == 0
    assert await stored(h.hub.db) == expected

    start, end = h.clock() - timedelta(hours=1), h.clock() + timedelta(minutes=1)
    async with h.hub.db.transaction() as session:
        mine = await series.api_calls(session, first, start, end)
        theirs = await series.api_calls(session, [other], start, end)
        both = await series.api_calls(session, [first, other], start, end)
        groups = await series.api_calls_by_group(session, first, start, end)
        failing = await series.api_calls_by_group(session, first, start, end, outcome="4xx")
        nobody = await series.api_calls(session, [], start, end)
    assert mine.totals() == {"2xx": 7, "3xx": 0, "4xx": 1, "5xx": 0}
    assert theirs.totals() == {"2xx": 2, "3xx": 0, "4xx": 0, "5xx": 0}
    assert both.totals()["2xx"] == 9
    assert {k: v for k, v in groups.totals().items() if v} == {
        "app": 3,
        "customers": 2,
        "accounts": 1,
        "oauth": 1,
        "events": 1,
    }
    assert {k: v for k, v in failing.totals().items() if v} == {"accounts": 1}
    assert nobody.total == 0

    # a second flush adds to the same rows instead of writing new ones
    await h.client.get("/v2/app", headers=h.headers())
    await store.flush(h.hub.db, h.hub.usage)
    expected[(first, "2xx", "app")] += 1
    assert await stored(h.hub.db) == expected
    async with h.hub.db.transaction() as session:
        assert len((await session.execute(select(UsageCount.id))).all()) == len(expected)


async def test_concurrent_requests_are_counted_exactly(harness: Harness) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    other_creds = await h.new_app("other")
    other = await app_id(h, other_creds["client_id"])
    expected: Expected = Counter()
    done = asyncio.Event()

    async def call(n: int) -> None:
        headers = h.headers() if n % 2 else creds_headers(other_creds)
        path = "/v2/app" if n % 3 else "/v2/account"  # /v2/account: 400 without a login
        response = await h.client.get(path, headers=headers)
        note(expected, first if n % 2 else other, response, "app" if n % 3 else "accounts")

    async def flush_meanwhile() -> None:
        while not done.is_set():
            await store.flush(h.hub.db, h.hub.usage)
            await asyncio.sleep(0)

    flusher = asyncio.create_task(flush_meanwhile())
    await asyncio.gather(*(call(n) for n in range(120)))
    done.set()
    await flusher
    await store.flush(h.hub.db, h.hub.usage)
    assert sum(expected.values()) == 120
    assert {k[1] for k in expected} == {"2xx", "4xx"}
    assert await stored(h.hub.db) == expected


async def test_calls_fall_in_the_utc_hour_of_the_clock(harness: Harness) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    h.clock.now = datetime(2026, 11, 20, 9, 59, 59, 999999, tzinfo=UTC)
    await h.client.get("/v2/app", headers=h.headers())
    h.clock.advance(microseconds=1)
    await h.client.get("/v2/app", headers=h.headers())
    await h.client.get("/v2/app", headers=h.headers())
    await store.flush(h.hub.db, h.hub.usage)
    async with h.hub.db.transaction() as session:
        hours = dict(
            (await session.execute(select(UsageCount.hour, UsageCount.total))).tuples().all()
        )
        # half-open ranges: an end on 10:00 sharp would leave the 10:00 hour out
        by_hour = await series.api_calls(
            session, first, datetime(2026, 11, 20, 8, tzinfo=UTC), h.clock() + timedelta(hours=1)
        )
        by_day = await series.api_calls(
            session, first, h.clock(), h.clock() + timedelta(seconds=1), "day"
        )
    assert hours == {
        datetime(2026, 11, 20, 9, tzinfo=UTC): 1,
        datetime(2026, 11, 20, 10, tzinfo=UTC): 2,
    }
    assert [(b.start.hour, b.counts["2xx"]) for b in by_hour.buckets] == [(8, 0), (9, 1), (10, 2)]
    assert [b.counts["2xx"] for b in by_day.buckets] == [3]


async def test_counting_never_fails_a_request(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("counter broke")

    monkeypatch.setattr(counters, "route_group", broken)
    response = await h.client.get("/v2/app", headers=h.headers())
    assert response.status_code == 200
    assert response.json()["data"]
    monkeypatch.undo()
    assert len(h.hub.usage) == 0


async def test_a_failed_flush_keeps_its_counts_for_the_next(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    for _ in range(4):
        await h.client.get("/v2/app", headers=h.headers())

    async def unreachable(*_args: object) -> int:
        raise ConnectionError("database gone")

    monkeypatch.setattr(store, "write", unreachable)
    with pytest.raises(ConnectionError):
        await store.flush(h.hub.db, h.hub.usage)
    monkeypatch.undo()
    await h.client.get("/v2/app", headers=h.headers())
    await store.flush(h.hub.db, h.hub.usage)
    assert await stored(h.hub.db) == Counter({(first, "2xx", "app"): 5})


async def test_an_erased_app_loses_its_counts_and_others_keep_theirs(harness: Harness) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    gone_creds = await h.new_app("leaving")
    gone = await app_id(h, gone_creds["client_id"])
    await h.client.get("/v2/app", headers=creds_headers(gone_creds))
    await store.flush(h.hub.db, h.hub.usage)
    assert await stored(h.hub.db) == Counter({(gone, "2xx", "app"): 1})
    # counted, then the app is erased before the next flush
    await h.client.get("/v2/app", headers=creds_headers(gone_creds))
    await h.client.get("/v2/app", headers=h.headers())
    async with h.hub.db.transaction() as session:
        await session.execute(delete(App).where(App.id == gone))
    assert await stored(h.hub.db) == Counter()  # its rows went with it
    await store.flush(h.hub.db, h.hub.usage)
    assert await stored(h.hub.db) == Counter({(first, "2xx", "app"): 1})
    assert len(h.hub.usage) == 0


@pytest.fixture
async def served(
    tmp_path: Path, database_url: str, clock: FakeClock, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Hub, dict[str, str]]]:
    """A hub and app credentials for a test that runs the app's own lifespan."""
    overrides = {"embedded_worker": False, **(getattr(request, "param", None) or {})}
    settings = make_settings(tmp_path, database_url, **overrides)
    await asyncio.to_thread(migrate.upgrade, settings.resolved_database_url())
    hub = Hub.build(settings, clock=clock)
    await hub.ready()
    async with hub.db.transaction() as session:
        issued = await partners.create_app(session, hub.hasher, clock, "Served app")
    try:
        yield hub, issued.as_dict()
    finally:
        await hub.close()


@pytest.mark.parametrize("served", [{"usage_flush_seconds": 3600.0}], indirect=True)
async def test_counts_are_flushed_at_shutdown(
    served: tuple[Hub, dict[str, str]], database_url: str
) -> None:
    hub, creds = served
    app = create_app(hub)
    async with app.lifespan():
        async with httpx.AsyncClient(transport=asgi_transport(app), base_url=BASE_URL) as client:
            for _ in range(3):
                assert (
                    await client.get("/v2/app", headers=creds_headers(creds))
                ).status_code == 200
        assert await stored(hub.db) == Counter()  # an hour between flushes: none yet
    # the lifespan flushed, then closed the hub: read with a connection of our own
    db = Database(hub.settings.resolved_database_url())
    try:
        totals = await stored(db)
    finally:
        await db.dispose()
    assert sum(totals.values()) == 3
    assert {(k[1], k[2]) for k in totals} == {("2xx", "app")}


@pytest.mark.parametrize("served", [{"usage_flush_seconds": 0.05}], indirect=True)
async def test_counts_are_flushed_while_serving(served: tuple[Hub, dict[str, str]]) -> None:
    hub, creds = served
    app = create_app(hub)
    async with app.lifespan():
        async with httpx.AsyncClient(transport=asgi_transport(app), base_url=BASE_URL) as client:
            assert (await client.get("/v2/app", headers=creds_headers(creds))).status_code == 200
        async with asyncio.timeout(10):  # bounded; the flusher runs every 50 ms
            while sum((await stored(hub.db)).values()) < 1:  # noqa: ASYNC110 - polls the database
                await asyncio.sleep(0.02)
        assert len(hub.usage) == 0


def test_route_groups_and_outcome_classes() -> None:
    group = counters.route_group
    assert group("/v2/transaction/sync") == "transactions"
    assert group("/v2/transaction") == "transactions"
    assert group("/v2/account") == "accounts"
    assert group("/v2/login/refresh") == "logins"
    assert group("/v2/customer/export") == "customers"
    assert group("/v2/token/reconnect") == "connect"
    assert group("/v2/connect/session") == "connect"
    assert group("/oauth/token") == "oauth"
    assert group("/v2/keys/key_1/roll") == "keys"
    assert group("/v2/event/3/replay") == "events"
    assert group("/v2/somewhere") == "other"
    for skipped in ("/healthz", "/docs", "/media/services/x.png", "/v2/connect/static/a.css"):
        assert group(skipped) is None
    assert [counters.outcome_class(s) for s in (101, 200, 304, 429, 503, 600)] == [
        None,
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        None,
    ]
    assert set(counters._V2_GROUPS.values()) | {"oauth", "other"} == set(counters.ROUTE_GROUPS)


@pytest.mark.parametrize(
    "harness",
    [
        {
            "rate_limits_enabled": True,
            "rate_limit_per_credential": "3/minute",
            "rate_limit_per_ip": "2/minute",
        }
    ],
    indirect=True,
)
async def test_answers_of_the_edges_and_unknown_routes_are_counted(harness: Harness) -> None:
    h = harness
    first = await app_id(h, h.creds["client_id"])
    statuses = [(await h.client.get("/v2/app", headers=h.headers())).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    wrong = {**h.headers(), "service-secret": "not-the-secret"}
    statuses = [(await h.client.get("/v2/app", headers=wrong)).status_code for _ in range(3)]
    assert statuses == [400, 400, 429]
    assert (await h.client.get("/v2/nowhere", headers=h.headers())).status_code == 404
    await store.flush(h.hub.db, h.hub.usage)
    # the key's limit counts once the app is known, so its 429s are the app's; refused
    # credentials and the address's 429 are nobody's
    assert await stored(h.hub.db) == Counter(
        {
            (first, "2xx", "app"): 3,
            (first, "4xx", "app"): 2,
            (None, "4xx", "app"): 3,
            (None, "4xx", "other"): 1,
        }
    )


async def test_each_request_starts_without_an_app() -> None:
    """A task serving several requests (keep-alive) never carries one's app into the next."""
    counted = counters.Counters()
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    hook = counters.hook(counted, lambda: now)
    start: Any = {"type": "http.response.start", "status": 200, "headers": []}
    body: Any = {"type": "http.response.body", "body": b""}
    api: Any = {"path": "/v2/app"}
    health: Any = {"path": "/healthz"}
    counters.attribute(7)
    await hook(start, api)
    await hook(body, api)
    refused: Any = {**start, "status": 401}
    await hook(refused, api)
    await hook(start, health)
    hour = counters.hour_of(now)
    assert counted.take() == {
        (hour, 7, "api", "2xx", "app"): 1,
        (hour, None, "api", "4xx", "app"): 1,
    }
