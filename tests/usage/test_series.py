"""Each series from real data (connects, syncs, webhooks), zero-filled, with exact bucket edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from bankhub.accounts.changes import ADDED, TransactionChange
from bankhub.accounts.models import Transaction
from bankhub.jobs.runner import Runner
from bankhub.partners.models import App
from bankhub.usage import counters, series, store
from bankhub.usage.models import UsageCount
from bankhub.webhooks import services as webhooks
from tests.api.connect_client import (
    ConnectDriver,
    connect,
    create_customer,
    create_token,
    reconnect,
)
from tests.conftest import Harness
from tests.support.raw_http import Receiver

DAY = timedelta(days=1)


async def first_app(h: Harness) -> int:
    async with h.hub.db.transaction() as session:
        found = await session.execute(select(App.id).where(App.client_id == h.creds["client_id"]))
        return int(found.scalar_one())


async def around(
    h: Harness, name: str, bucket: series.BucketSize = "day", **kwargs: object
) -> series.Series:
    """A series of the harness app over the day before and after the clock."""
    function = getattr(series, name)
    async with h.hub.db.transaction() as session:
        result: series.Series = await function(
            session, await first_app(h), h.clock() - DAY, h.clock() + DAY, bucket, **kwargs
        )
    return result


def nonzero(s: series.Series) -> dict[str, int]:
    return {k: v for k, v in s.totals().items() if v}


async def test_connects_by_outcome(harness: Harness) -> None:
    h = harness
    app = await first_app(h)
    payload = await connect(h, "user_good")  # success (new)
    await reconnect(h, payload["secret"], "user_good")  # success (reconnect)

    h.client.cookies.clear()
    cancelled = ConnectDriver(h)
    await cancelled.open(await create_token(h, await create_customer(h, "cancels")))
    await cancelled.agree()
    assert (await cancelled.cancel()).payload["status"] == "cancelled"

    h.client.cookies.clear()
    locked = ConnectDriver(h)
    await locked.open(await create_token(h, await create_customer(h, "locked")))
    await locked.agree()
    await locked.login("user_locked")  # the bank refuses: the session ends failed

    h.client.cookies.clear()
    idle = ConnectDriver(h)
    await idle.open(await create_token(h, await create_customer(h, "leaves")))
    await idle.agree()
    h.clock.advance(minutes=6)  # past the connect page's idle limit
    await idle.show()  # the next visit finds it gone (and sweeps it)
    assert idle.status == 400

    await store.flush(h.hub.db, h.hub.usage)
    everything = await around(h, "connects")
    assert everything.totals() == {"success": 2, "failed": 1, "cancelled": 1, "abandoned": 1}
    assert nonzero(await around(h, "connects", kind="reconnect")) == {"success": 1}
    assert nonzero(await around(h, "connects", kind="new")) == {
        "success": 1,
        "failed": 1,
        "cancelled": 1,
        "abandoned": 1,
    }
    # the connect page's own requests are the app's calls too; only the visit after the
    # session expired has no session, so no app, to count it for
    async with h.hub.db.transaction() as session:
        rows = (
            await session.execute(
                select(UsageCount.app_id, UsageCount.outcome, UsageCount.total).where(
                    UsageCount.metric == counters.API, UsageCount.detail == "connect"
                )
            )
        ).tuples()
        by_app: dict[tuple[int | None, str], int] = {}
        for app_id, outcome, total in rows:
            by_app[(app_id, outcome)] = by_app.get((app_id, outcome), 0) + total
    assert by_app[(app, "2xx")] > 0
    assert by_app[(app, "3xx")] > 0  # the pages' redirects
    assert {k: v for k, v in by_app.items() if k[0] is None} == {(None, "4xx"): 1}


async def test_transactions_ingested_per_fetch(harness: Harness) -> None:
    h = harness
    start = h.clock()
    payload = await connect(h, "user_dynamic")
    async with h.hub.db.transaction() as session:
        first_fetch = int((await session.execute(select(func.count(Transaction.id)))).scalar_one())
    assert first_fetch > 0
    h.clock.advance(hours=2)
    response = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=payload["secret"])
    )
    assert response.status_code == 200
    async with h.hub.db.transaction() as session:
        added = int(
            (
                await session.execute(
                    select(func.count(TransactionChange.id)).where(TransactionChange.kind == ADDED)
                )
            ).scalar_one()
        )
        hourly = await series.transactions_ingested(
            session, await first_app(h), start, start + timedelta(hours=3), "hour"
        )
    assert added > first_fetch  # the refresh added rows
    assert [b.counts["new"] for b in hourly.buckets] == [first_fetch, 0, added - first_fetch]
    assert hourly.total == added


async def test_login_statuses_now_and_their_changes(harness: Harness) -> None:
    h = harness
    await connect(h, "user_good")
    short = await connect(h, "user_consent_short")
    h.clock.advance(minutes=6)
    response = await h.client.put(
        "/v2/login/refresh", headers=h.headers(login_secret=short["secret"])
    )
    assert response.json()["data"]["status"] == "login_consent_expired"
    response = await h.client.put(
        "/v2/login/deactivate", headers=h.headers(login_secret=short["secret"])
    )
    assert response.status_code == 200

    changes = await around(h, "login_status_changes", "hour")
    assert nonzero(changes) == {"consent_expired": 1}
    [bucket] = [b for b in changes.buckets if b.total]
    assert bucket.start == h.clock().replace(minute=0, second=0, microsecond=0)
    async with h.hub.db.transaction() as session:
        now = await series.logins_now(session, await first_app(h))
        other = await series.logins_now(session, [])
    assert {k: v for k, v in now.by_status.items() if v} == {"active": 1, "consent_expired": 1}
    assert now.total == 2
    assert now.deactivated == 1
    assert other.total == 0
    assert set(other.by_status) == set(series.STATUS_LABELS)


@pytest.mark.parametrize("harness", [{"webhook_timeout_seconds": 2.0}], indirect=True)
async def test_webhook_attempts_and_deliveries(harness: Harness, receiver: Receiver) -> None:
    h = harness
    app = await first_app(h)
    async with h.hub.db.transaction() as session:
        await webhooks.create_endpoint(
            session, h.hub.keyring, h.clock(), app, receiver.url + "/hooks", None, allow_http=True
        )
    await connect(h, "user_good")  # one transactions.new event: one delivery
    runner = Runner(h.hub)
    receiver.status = 500
    assert (await runner.run_once()).deliveries == 0

    pending = await around(h, "webhook_deliveries")
    assert nonzero(pending) == {"pending": 1}
    failed_at = h.clock()
    h.clock.advance(hours=2)  # past the first retry's delay
    receiver.status = 200
    assert (await runner.run_once()).deliveries == 1
    assert len(receiver.received) == 2

    attempts = await around(h, "webhook_attempts", "hour")
    assert nonzero(attempts) == {"delivered": 1, "failed": 1}
    by_hour = {b.start: b.counts for b in attempts.buckets if b.total}
    hour = failed_at.replace(minute=0, second=0, microsecond=0)
    assert by_hour == {
        hour: {"delivered": 0, "failed": 1},
        hour + timedelta(hours=2): {"delivered": 1, "failed": 0},
    }
    deliveries = await around(h, "webhook_deliveries", "hour")
    assert nonzero(deliveries) == {"delivered": 1}
    assert [b.start for b in deliveries.buckets if b.total] == [hour]  # when it was queued


async def put_counts(h: Harness, app: int, at: list[datetime]) -> None:
    for when in at:
        h.hub.usage.api(when, app, 200, "transactions")
    await store.flush(h.hub.db, h.hub.usage)


async def test_buckets_are_zero_filled_and_aligned(harness: Harness) -> None:
    h = harness
    app = await first_app(h)
    t = datetime(2026, 11, 20, tzinfo=UTC)
    await put_counts(
        h,
        app,
        [
            t + timedelta(hours=8, minutes=59, seconds=59, microseconds=999999),
            t + timedelta(hours=9),
            t + timedelta(hours=11, minutes=30),
            t + timedelta(hours=23, minutes=59, seconds=59),
            t + DAY,  # midnight: the next day
        ],
    )
    async with h.hub.db.transaction() as session:
        # an unaligned range widens to whole hours: 08:00 .. 12:00
        hours = await series.api_calls(
            session, app, t + timedelta(hours=8, minutes=30), t + timedelta(hours=11, minutes=10)
        )
        days = await series.api_calls(session, app, t - DAY, t + 2 * DAY, "day")
        # the same instant in another zone means the same UTC buckets
        cet = timezone(timedelta(hours=1))
        local = await series.api_calls(
            session,
            app,
            datetime(2026, 11, 20, 9, 30, tzinfo=cet),
            datetime(2026, 11, 20, 12, 10, tzinfo=cet),
        )
        edge = await series.api_calls(session, app, t + timedelta(hours=9), t + timedelta(hours=10))
    assert [(b.start.hour, b.counts["2xx"]) for b in hours.buckets] == [
        (8, 1),
        (9, 1),
        (10, 0),
        (11, 1),
    ]
    assert all(b.counts["4xx"] == 0 and b.start.tzinfo is UTC for b in hours.buckets)
    assert (hours.start, hours.end) == (t + timedelta(hours=8), t + timedelta(hours=12))
    assert [(b.start.day, b.counts["2xx"]) for b in days.buckets] == [(19, 0), (20, 4), (21, 1)]
    assert local.buckets == hours.buckets
    assert [b.counts["2xx"] for b in edge.buckets] == [1]  # [09:00, 10:00): 08:59:59.999999 out


async def test_series_are_scoped_to_the_apps_asked_for(harness: Harness) -> None:
    h = harness
    app = await first_app(h)
    other = await h.new_app("other")
    async with h.hub.db.transaction() as session:
        other_id = int(
            (
                await session.execute(select(App.id).where(App.client_id == other["client_id"]))
            ).scalar_one()
        )
    t = h.clock()
    await put_counts(h, app, [t, t])
    await put_counts(h, other_id, [t])
    h.hub.usage.api(t, None, 401, "transactions")  # no app: in nobody's series
    await store.flush(h.hub.db, h.hub.usage)
    async with h.hub.db.transaction() as session:
        mine = await series.api_calls(session, app, t, t + DAY)
        theirs = await series.api_calls(session, [other_id], t, t + DAY)
        both = await series.api_calls(session, (app, other_id, app), t, t + DAY)
        none = await series.api_calls(session, [], t, t + DAY)
        unknown = await series.api_calls(session, [0], t, t + DAY)
    assert (mine.total, theirs.total, both.total, none.total, unknown.total) == (2, 1, 3, 0, 0)


@pytest.mark.parametrize(
    ("start", "end", "bucket", "message"),
    [
        (datetime(2026, 11, 20), datetime(2026, 11, 21, tzinfo=UTC), "hour", "aware"),  # noqa: DTZ001
        (datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC), "hour", "after"),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 20, tzinfo=UTC), "day", "after"),
        (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC), "week", "bucket"),
        (datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "hour", "buckets"),
    ],
)
def test_bad_ranges_are_refused_clearly(
    start: datetime, end: datetime, bucket: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        series.span(start, end, bucket)


def test_long_ranges_fit_in_days_and_app_ids_must_be_numbers() -> None:
    window = series.span(datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "day")
    assert window.count == 731
    with pytest.raises(ValueError, match="integers"):
        series._app_list(["1"])  # type: ignore[list-item]  # wrong on purpose: the run-time check
    with pytest.raises(ValueError, match="integers"):
        series._app_list([True])
