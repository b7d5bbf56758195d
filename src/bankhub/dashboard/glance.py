"""At a glance: the overview's charts, drawn on the server by ``bankhub.usage``.

A period (the last 24 hours by the hour, or the last 7 or 30 days by the day) and an app (or
every app) are chosen with a plain GET form. Each chart comes with its numbers as a table, for
screen readers and for copying; docs/usage.md says what each series counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from bankhub.usage import charts, series

Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class Period:
    key: str
    label: str
    length: timedelta
    bucket: Bucket


PERIODS = {
    p.key: p
    for p in (
        Period("24h", "Last 24 hours", timedelta(hours=24), "hour"),
        Period("7d", "Last 7 days", timedelta(days=7), "day"),
        Period("30d", "Last 30 days", timedelta(days=30), "day"),
    )
}
DEFAULT_PERIOD = "24h"


@dataclass(frozen=True, slots=True)
class Panel:
    """One chart of the page with its data table."""

    chart_id: str
    heading: str
    chart: charts.Chart


@dataclass(frozen=True, slots=True)
class Glance:
    period: Period
    start: datetime
    end: datetime
    panels: list[Panel]
    logins: series.LoginsNow


def period_of(value: str | None) -> Period:
    return PERIODS.get(value or "", PERIODS[DEFAULT_PERIOD])


async def build(
    session: AsyncSession, app_ids: Sequence[int], period: Period, now: datetime
) -> Glance:
    """Every chart of the overview for ``app_ids`` over ``period`` up to ``now`` (included)."""
    # whole UTC buckets, the current one (still filling) last
    size = timedelta(hours=1) if period.bucket == "hour" else timedelta(days=1)
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if period.bucket == "day":
        current = current.replace(hour=0)
    end = current + size
    start = end - period.length
    bucket = period.bucket
    ids = list(app_ids)
    wanted = (
        ("calls", "API calls by status", await series.api_calls(session, ids, start, end, bucket)),
        (
            "connects",
            "Connects by outcome",
            await series.connects(session, ids, start, end, bucket),
        ),
        (
            "logins",
            "Logins by status (changes)",
            await series.login_status_changes(session, ids, start, end, bucket),
        ),
        (
            "transactions",
            "Transactions ingested",
            await series.transactions_ingested(session, ids, start, end, bucket),
        ),
        (
            "webhooks",
            "Webhook attempts",
            await series.webhook_attempts(session, ids, start, end, bucket),
        ),
    )
    panels = [
        Panel(chart_id, heading, charts.render(data, chart_id=f"chart-{chart_id}", title=heading))
        for chart_id, heading, data in wanted
    ]
    return Glance(period, start, end, panels, await series.logins_now(session, ids))
