"""Time series for the dashboard: counts per UTC hour or day over a range, gaps filled with zeros.

Every function takes a session, the app id(s) whose data to count (never anything else: an
empty list gives an all-zero series), a UTC range and a bucket size, and returns a ``Series``::

    calls = await series.api_calls(session, [app.id], start, end, "hour")
    for bucket in calls.buckets:
        bucket.start, bucket.counts["2xx"], bucket.total

The range is widened to whole buckets: ``start`` is rounded down and ``end`` up to the bucket
size, and a bucket holds what happened in ``[bucket.start, bucket.start + size)``. Days are UTC
days. At most ``MAX_BUCKETS`` buckets per series.

Where each series' numbers come from (docs/usage.md has the long version):

* ``api_calls``, ``api_calls_by_group``: the ``usage_counts`` rows the request counter writes.
* ``connects``: the same table; the connect page counts how each session ended.
* ``transactions_ingested``: the ``new`` count of ``transactions.new`` events (one per fetch that
  added rows: a connect's first fetch, a refresh, a statement upload).
* ``login_status_changes``: ``login.status`` events, by the status a login moved to;
  ``logins_now`` is the current count of logins per status.
* ``webhook_attempts``: each delivery attempt, delivered or not, when it was made;
  ``webhook_deliveries``: each delivery by when it was queued, by where it ended up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    extract,
    func,
    literal_column,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.events import services as events
from bankhub.events.models import Event
from bankhub.logins import services as logins
from bankhub.logins.models import Login
from bankhub.usage import counters
from bankhub.usage.models import UsageCount
from bankhub.webhooks.models import WebhookAttempt, WebhookDelivery

BucketSize = Literal["hour", "day"]
BUCKET_SECONDS: Final[Mapping[str, int]] = {"hour": 3600, "day": 86400}
#: the most buckets one series may have (400 days of hours)
MAX_BUCKETS: Final = 400 * 24
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

API_LABELS: Final = {
    "2xx": "2xx success",
    "3xx": "3xx redirect",
    "4xx": "4xx client error",
    "5xx": "5xx server error",
}
CONNECT_LABELS: Final = {
    counters.CONNECT_SUCCESS: "Connected",
    counters.CONNECT_FAILED: "Failed",
    counters.CONNECT_CANCELLED: "Cancelled by the user",
    counters.CONNECT_ABANDONED: "Abandoned",
}
STATUS_LABELS: Final = {
    "active": "Active",
    "wrong_credentials": "Wrong credentials",
    "password_expired": "Password expired",  # a status label  # nosec B105
    "account_locked": "Account locked",
    "consent_expired": "Consent expired",
    "session_expired": "Session expired",
    "provider_unavailable": "Bank unavailable",
    "rate_limited": "Rate limited by the bank",
}
GROUP_LABELS: Final = {
    "transactions": "Transactions",
    "accounts": "Accounts",
    "logins": "Logins",
    "customers": "Customers",
    "connect": "Connect",
    "oauth": "OAuth",
    "keys": "API keys",
    "events": "Events",
    "statements": "Statements",
    "app": "App settings",
    "services": "Services",
    "other": "Other",
}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket: its UTC start and a count for every key of the series (zero when none)."""

    start: datetime
    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per bucket for a fixed, ordered set of keys (a chart's legend)."""

    name: str
    title: str
    keys: tuple[str, ...]
    bucket: BucketSize
    start: datetime
    end: datetime
    buckets: list[Bucket]
    #: human names of the keys, for legends and table headers
    labels: Mapping[str, str] = field(default_factory=dict)

    def label(self, key: str) -> str:
        return self.labels.get(key, key)

    def totals(self) -> dict[str, int]:
        return {key: sum(b.counts[key] for b in self.buckets) for key in self.keys}

    @property
    def total(self) -> int:
        return sum(b.total for b in self.buckets)


@dataclass(frozen=True, slots=True)
class Span:
    """A range widened to whole buckets: ``count`` buckets from bucket number ``first``."""

    bucket: BucketSize
    first: int
    count: int

    @property
    def seconds(self) -> int:
        return BUCKET_SECONDS[self.bucket]

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.first * self.seconds, UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.count * self.seconds)

    def starts(self) -> list[datetime]:
        return [self.start + timedelta(seconds=i * self.seconds) for i in range(self.count)]


def span(start: datetime, end: datetime, bucket: str) -> Span:
    """Check a range and widen it to whole buckets (``ValueError`` saying what is wrong)."""
    if bucket not in BUCKET_SECONDS:
        raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"{name} must be a timezone-aware datetime")
    if end <= start:
        raise ValueError("end must be after start")
    size = BUCKET_SECONDS[bucket] * 1_000_000
    first = _micros(start) // size
    count = -(-_micros(end) // size) - first
    if count > MAX_BUCKETS:
        raise ValueError(
            f"{count} {bucket} buckets is more than {MAX_BUCKETS}; use a shorter range or days"
        )
    return Span(cast(BucketSize, bucket), first, count)


def _micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def _app_list(app_ids: int | Iterable[int]) -> list[int]:
    ids = [app_ids] if isinstance(app_ids, int) else list(app_ids)
    for app_id in ids:
        if not isinstance(app_id, int) or isinstance(app_id, bool):
            raise ValueError(f"app ids must be integers, not {app_id!r}")
    return sorted(set(ids))


def _bucket_number(session: AsyncSession, column: Any, seconds: int) -> ColumnElement[int]:
    """The bucket a UTC timestamp column falls in: whole ``seconds`` since the epoch."""
    size: ColumnElement[Any] = literal_column(str(int(seconds)))
    if session.get_bind().dialect.name == "postgresql":
        return sql_cast(func.floor(extract("epoch", column) / size), BigInteger)
    # SQLite keeps UTC timestamps as text; strftime('%s') reads them as UTC seconds.
    return sql_cast(sql_cast(func.strftime("%s", column), Integer).op("/")(size), Integer)


async def _counted(
    session: AsyncSession,
    inner: Select[Any],
) -> dict[tuple[int, str], int]:
    """Sum ``inner``'s ``v`` per (``b``, ``k``). Grouping outside a subquery keeps PostgreSQL
    from seeing two differently bound copies of the same expression."""
    sub = inner.subquery()
    query = select(sub.c.b, sub.c.k, func.sum(sub.c.v)).group_by(sub.c.b, sub.c.k)
    return {
        (int(b), str(k)): int(v or 0)
        for b, k, v in (await session.execute(query)).tuples()
        if k is not None
    }


def _series(
    name: str,
    title: str,
    keys: Iterable[str],
    labels: Mapping[str, str],
    window: Span,
    counts: Mapping[tuple[int, str], int],
) -> Series:
    ordered = list(keys)
    extra = sorted({k for _, k in counts} - set(ordered))
    ordered += extra
    buckets = [
        Bucket(start, {key: counts.get((window.first + i, key), 0) for key in ordered})
        for i, start in enumerate(window.starts())
    ]
    return Series(
        name=name,
        title=title,
        keys=tuple(ordered),
        bucket=window.bucket,
        start=window.start,
        end=window.end,
        buckets=buckets,
        labels=dict(labels),
    )


async def _usage(
    session: AsyncSession,
    apps: list[int],
    window: Span,
    metric: str,
    by: Literal["outcome", "detail"],
    **match: str | None,
) -> dict[tuple[int, str], int]:
    if not apps:
        return {}
    key = UsageCount.outcome if by == "outcome" else UsageCount.detail
    inner: Select[Any] = select(
        _bucket_number(session, UsageCount.hour, window.seconds).label("b"),
        key.label("k"),
        UsageCount.total.label("v"),
    ).where(
        # app_id is the tenant: it never matches the unattributed rows (null), whatever the
        # ids; app_key lets the (app_key, metric, hour, ...) index find the rows
        UsageCount.app_id.in_(apps),
        UsageCount.app_key.in_(apps),
        UsageCount.metric == metric,
        UsageCount.hour >= window.start,
        UsageCount.hour < window.end,
    )
    for column, value in match.items():
        if value is not None:
            inner = inner.where(getattr(UsageCount, column) == value)
    return await _counted(session, inner)


async def api_calls(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
    *,
    group: str | None = None,
) -> Series:
    """API calls by outcome class (``2xx``, ``3xx``, ``4xx``, ``5xx``); ``group`` keeps one
    route group (``transactions``, ``accounts``, ... see ``counters.ROUTE_GROUPS``)."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts = await _usage(session, apps, window, counters.API, "outcome", detail=group)
    title = "API calls" if group is None else f"API calls: {GROUP_LABELS.get(group, group)}"
    return _series("api_calls", title, counters.OUTCOME_CLASSES, API_LABELS, window, counts)


async def api_calls_by_group(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
    *,
    outcome: str | None = None,
) -> Series:
    """API calls by route group; ``outcome`` keeps one class (``4xx`` shows what fails)."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts = await _usage(session, apps, window, counters.API, "detail", outcome=outcome)
    title = "API calls by route" if outcome is None else f"API calls by route: {outcome}"
    return _series("api_calls_by_group", title, counters.ROUTE_GROUPS, GROUP_LABELS, window, counts)


async def connects(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
    *,
    kind: Literal["new", "reconnect"] | None = None,
) -> Series:
    """Connect sessions by how they ended: ``success``, ``failed`` (the bank refused, or too
    many wrong answers), ``cancelled`` (by the user), ``abandoned`` (idle until it expired)."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts = await _usage(session, apps, window, counters.CONNECT, "outcome", detail=kind)
    title = {None: "Connects", "new": "New connects", "reconnect": "Reconnects"}[kind]
    return _series("connects", title, counters.CONNECT_OUTCOMES, CONNECT_LABELS, window, counts)


async def transactions_ingested(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
) -> Series:
    """New transactions stored, from the ``new`` count of ``transactions.new`` events."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts: dict[tuple[int, str], int] = {}
    if apps:
        inner: Select[Any] = select(
            _bucket_number(session, Event.created_at, window.seconds).label("b"),
            literal_column("'new'").label("k"),
            Event.payload["new"].as_integer().label("v"),
        ).where(
            Event.app_id.in_(apps),
            Event.type == events.NEW_TRANSACTIONS,
            Event.created_at >= window.start,
            Event.created_at < window.end,
        )
        counts = await _counted(session, inner)
    return _series(
        "transactions_ingested",
        "Transactions ingested",
        ("new",),
        {"new": "New transactions"},
        window,
        counts,
    )


async def login_status_changes(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
) -> Series:
    """How many logins moved to each status per bucket (``login.status`` events).

    A change, not a level: a login that fails three refreshes in a row counts once, when its
    status changed; a new login starts ``active`` without a change.
    """
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts: dict[tuple[int, str], int] = {}
    if apps:
        inner: Select[Any] = select(
            _bucket_number(session, Event.created_at, window.seconds).label("b"),
            Event.payload["status"].as_string().label("k"),
            literal_column("1").label("v"),
        ).where(
            Event.app_id.in_(apps),
            Event.type == events.LOGIN_STATUS,
            Event.created_at >= window.start,
            Event.created_at < window.end,
        )
        raw = await _counted(session, inner)
        for (b, status), n in raw.items():
            key = (b, status.removeprefix("login_"))
            counts[key] = counts.get(key, 0) + n
    return _series(
        "login_status_changes",
        "Login status changes",
        logins.STATUSES,
        STATUS_LABELS,
        window,
        counts,
    )


@dataclass(frozen=True, slots=True)
class LoginsNow:
    """The app(s)' logins right now: a count per status, and how many are deactivated."""

    by_status: dict[str, int]
    deactivated: int

    @property
    def total(self) -> int:
        return sum(self.by_status.values())


async def logins_now(session: AsyncSession, app_ids: int | Iterable[int]) -> LoginsNow:
    """A snapshot of the logins table; every known status is present (zero when none)."""
    apps = _app_list(app_ids)
    by_status = dict.fromkeys(logins.STATUSES, 0)
    deactivated = 0
    if apps:
        rows = await session.execute(
            select(Login.status, Login.active, func.count(Login.id))
            .where(Login.app_id.in_(apps))
            .group_by(Login.status, Login.active)
        )
        for status, active, n in rows.tuples():
            by_status[status] = by_status.get(status, 0) + int(n)
            if not active:
                deactivated += int(n)
    return LoginsNow(by_status, deactivated)


async def webhook_attempts(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
) -> Series:
    """Delivery attempts by when they were made: ``delivered`` (a 2xx answer) or ``failed``
    (anything else: an error status, a timeout, a refused address, 410 Gone, an attempt cut
    short by a crash). An attempt still under way (``sending``) is not counted yet."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts: dict[tuple[int, str], int] = {}
    if apps:
        inner: Select[Any] = select(
            _bucket_number(session, WebhookAttempt.attempted_at, window.seconds).label("b"),
            WebhookAttempt.outcome.label("k"),
            literal_column("1").label("v"),
        ).where(
            WebhookAttempt.app_id.in_(apps),
            WebhookAttempt.attempted_at >= window.start,
            WebhookAttempt.attempted_at < window.end,
            WebhookAttempt.outcome != "sending",
        )
        for (b, outcome), n in (await _counted(session, inner)).items():
            key = (b, "delivered" if outcome == "delivered" else "failed")
            counts[key] = counts.get(key, 0) + n
    return _series(
        "webhook_attempts",
        "Webhook delivery attempts",
        ("delivered", "failed"),
        {"delivered": "Delivered", "failed": "Failed"},
        window,
        counts,
    )


async def webhook_deliveries(
    session: AsyncSession,
    app_ids: int | Iterable[int],
    start: datetime,
    end: datetime,
    bucket: BucketSize = "hour",
) -> Series:
    """Deliveries (one per event and endpoint) by when they were queued, by where they are now:
    ``delivered``, ``failed`` (retries exhausted, refused or the endpoint gone) or ``pending``
    (still being retried). Recent buckets change while their retries run."""
    window, apps = span(start, end, bucket), _app_list(app_ids)
    counts: dict[tuple[int, str], int] = {}
    if apps:
        inner: Select[Any] = select(
            _bucket_number(session, WebhookDelivery.created_at, window.seconds).label("b"),
            WebhookDelivery.status.label("k"),
            literal_column("1").label("v"),
        ).where(
            WebhookDelivery.app_id.in_(apps),
            WebhookDelivery.created_at >= window.start,
            WebhookDelivery.created_at < window.end,
        )
        for (b, status), n in (await _counted(session, inner)).items():
            key = (b, status if status in ("delivered", "pending") else "failed")
            counts[key] = counts.get(key, 0) + n
    return _series(
        "webhook_deliveries",
        "Webhook deliveries",
        ("delivered", "failed", "pending"),
        {"delivered": "Delivered", "failed": "Failed", "pending": "Still retrying"},
        window,
        counts,
    )
